"""
Prune the lab's private registry on demand: report, and on request delete, the stale images.

    pyinfra inventory.py tasks/registry_prune.py                                # report only
    pyinfra inventory.py tasks/registry_prune.py --data registry_prune_apply=true

The policy is the ``registry_prune`` setting (keep_last, keep_tags, older_than_days). Whatever it
says, every image in ``lab_images`` and every image a container of the host uses (running or
stopped) is kept, and a digest goes only when every tag pointing at it is stale.

Without ``registry_prune_apply`` (and always with ``--dry``) nothing is deleted: the task logs a
table of every tag (repository, tag, short digest, created, size, keep and why, or delete) and
what garbage collection would free (the blobs no remaining manifest, tagged or not, references).
With it, the stale manifests are deleted by digest (each only if its tags did not move since they
were read; the list is uploaded as a file, progress is printed a batch at a time), the registry
is stopped, its garbage collector runs, it starts again, and the space freed on disk is logged.

A prune killed at any point is picked up by the next run: a registry left stopped by a killed
collection is started again (with ``registry_prune_apply``, after the collection is run to its
end), a collection that did not finish runs even when nothing is left to delete, and the
platform manifests of an index a killed prune deleted (left untagged) are deleted with the
next prune's deletions.
tasks/hub.py starts such a registry again too.
"""

from pyinfra import host
from pyinfra.api.exceptions import OperationError

from labhub import stack
from labhub.facts.images import ContainerImages
from labhub.facts.registry import RegistryContents
from labhub.operations import registry
from labhub.registry import policy
from labhub.registry.client import error_from_dict
from labhub.settings import get_settings

settings = get_settings(host)
project = stack.Stack.from_settings(settings)
apply = settings.registry_prune_apply
state_dir = project.path("registry")
# The registry's compose service, its prune's folder, and where it answers once started again.
registry_at = dict(stack=project, state_dir=state_dir, url=project.registry_url)

state = registry.prune_state(host, project, state_dir)

if state["interrupted"]:
    # The registry cannot be read while it is stopped: finish (or undo) the collection first.
    host.log(
        "a registry prune was interrupted during garbage collection: the registry is "
        f"{state['registry'] or 'gone'}"
    )
    if apply:
        registry.garbage_collect(
            name="Finish the interrupted garbage collection and start the registry again",
            **registry_at,
        )
    else:
        registry.recovered(name="Start the registry again", **registry_at)
        host.log(
            "run the task again for the report; registry_prune_apply=true finishes the collection"
        )
else:
    contents = host.get_fact(
        RegistryContents,
        url=project.registry_url,
        probe_delete=True,
        project=project.project,
        service=project.registry_service,
        data_path=stack.REGISTRY_DATA_PATH,
    )
    if contents is None:
        raise OperationError(
            f"{host.name}: python3 is not installed: labhub reads the registry with it"
        )
    if contents.get("error"):
        error = error_from_dict(contents["error"])
        raise OperationError(
            f"{host.name}: cannot read the registry at {project.registry_url} "
            f"({error.kind}): {error.message}"
        )

    plan = policy.plan_for(
        settings,
        contents,
        host.get_fact(ContainerImages) or [],
        project.registry_major,
        leftovers=[tuple(pair) for pair in state["leftovers"]],
    )

    host.log(
        f"registry {project.registry_url}: {len(contents['repositories'])} repositories, "
        f"{len(plan.rows)} tags, read with {contents['requests']} requests"
    )
    for line in policy.format_report(plan, apply).splitlines():
        host.log(line)
    for tag in contents.get("vanished") or []:
        host.log(f"{tag} vanished while the registry was read")
    if state["pending"]:
        host.log(
            f"a previous prune stopped before its garbage collection finished (it was "
            f"{state['pending']})" + ("" if apply else ": registry_prune_apply=true finishes it")
        )

    refusals = {
        "disabled": "the registry has deletes disabled (405 UNSUPPORTED): set "
        "storage.delete.enabled: true in its configuration",
        "read-only": "the registry is in read-only maintenance mode (plain 405): turn "
        "storage.maintenance.readonly off",
    }
    refusal = refusals.get(contents.get("delete") or "")
    if refusal and plan.deletions:
        if apply:
            raise OperationError(f"{host.name}: {refusal}; nothing was deleted")
        host.log(f"note: {refusal}; registry_prune_apply=true would fail")

    if apply and plan.deletions:
        deleted = registry.delete_manifests(
            name=f"Delete {len(plan.deletions)} stale image(s) from the registry by digest",
            url=project.registry_url,
            deletions=[deletion.as_dict() for deletion in plan.deletions],
            state_dir=state_dir,
        )
        # After a prune that stopped before its collection finished, collect even when these
        # deletions all turn out to be done already.
        after = {} if state["pending"] else {"_if": deleted.did_change}
        registry.garbage_collect(
            name="Collect the registry's garbage (registry stopped) and start it again",
            **after,
            **registry_at,
        )
    elif apply and state["pending"]:
        registry.garbage_collect(
            name="Finish the interrupted garbage collection (registry stopped)", **registry_at
        )
