"""
Prune the lab's private registry on demand: report, and on request delete, the stale images.

    pyinfra inventory.py tasks/registry_prune.py                                # report only
    pyinfra inventory.py tasks/registry_prune.py --data registry_prune_apply=true

The policy is the ``registry_prune`` setting (keep_last, keep_tags, older_than_days). Whatever it
says, every image in ``lab_images`` and every image a container of the host uses (running or
stopped) is kept, and a digest goes only when every tag pointing at it is stale.

Without ``registry_prune_apply`` (and always with ``--dry``) nothing is deleted: the task logs a
table of every tag (repository, tag, short digest, created, size, keep and why, or delete) and
what deleting would free. With it, the stale manifests are deleted by digest (each only if its
tags did not move since they were read), the registry is stopped, its garbage collector runs, it
starts again, and the space freed on disk is logged.
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

contents = host.get_fact(RegistryContents, url=project.registry_url, probe_delete=True)
if contents is None:
    raise OperationError(f"{host.name}: python3 is not installed: labhub reads the registry with it")
if contents.get("error"):
    error = error_from_dict(contents["error"])
    raise OperationError(f"{host.name}: cannot read the registry at {project.registry_url} "
                         f"({error.kind}): {error.message}")

prune = settings.registry_prune
used = policy.in_use(settings.lab_images, host.get_fact(ContainerImages) or [],
                     policy.registry_hosts(settings.registry_address))
plan = policy.plan(contents, prune.keep_last, prune.keep_tags, prune.older_than_days, used,
                   registry_major=project.registry_major)

host.log(f"registry {project.registry_url}: {len(contents['repositories'])} repositories, "
         f"{len(plan.rows)} tags, read with {contents['requests']} requests")
for line in policy.format_report(plan, apply).splitlines():
    host.log(line)
for tag in contents.get("vanished") or []:
    host.log(f"{tag} vanished while the registry was read")

refusals = {
    "disabled": "the registry has deletes disabled (405 UNSUPPORTED): set storage.delete.enabled: "
                "true in its configuration",
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
    )
    registry.garbage_collect(
        name="Collect the registry's garbage (registry stopped) and start it again",
        compose_file=project.compose_file,
        project=project.project,
        service=stack.REGISTRY_SERVICE,
        config_path=project.registry_config_path,
        config_file=project.registry_config_file,
        data_path=stack.REGISTRY_DATA_PATH,
        url=project.registry_url,
        _if=deleted.did_change,
    )
