"""
Delete stale images from the lab's private registry and collect their blobs, and bring the
registry back from a prune that was interrupted. Paired with ``labhub.facts.registry``.

A prune is safe to kill at any point: deletions only remove manifests the plan says are stale,
and the collection runs with the registry stopped (no push can race it) in a container of a
known name. Both hold a lock (``flock`` on ``hub_dir/registry/prune.lock``), which the kernel
drops when they die, and a marker (``prune-pending``) stays from the first deletion until the
collection finished; ``recovered`` (run by tasks/hub.py and tasks/registry_prune.py) removes a
collector that was left behind and starts the registry again, and the next applied prune
collects what the interrupted one did not.
"""

from __future__ import annotations

import json
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import OperationError, operation
from pyinfra.operations import files

from labhub.commands import (
    Word,
    command_line,
    compose_command,
    http_wait_command,
    mount_command,
    registry_client_command,
    reported,
    shell,
    variable,
)
from labhub.facts.registry import (
    PRUNE_LOCK,
    PRUNE_PENDING,
    PRUNE_PLAN,
    RegistryPruneState,
    collector_name,
    registry_data_command,
)
from labhub.registry.client import DEFAULT_WORKERS
from labhub.registry.policy import human_size, short_digest
from labhub.stack import REGISTRY_DATA_PATH, Stack

GC_MARKER = "labhub-registry-gc"


def locked_command(state_dir: str, phase: str | None = None) -> str:
    """
    Shell lines that take the prune's lock for the rest of the command (children inherit it;
    the kernel drops it when the last of them dies) or stop, and record ``phase`` in the
    pending marker.
    """
    lock = shlex.quote(f"{state_dir}/{PRUNE_LOCK}")
    busy = shlex.quote(
        f"a registry prune is running on this host (it holds {state_dir}/"
        f"{PRUNE_LOCK}): wait for it to finish"
    )
    lines = [f"exec 9>>{lock} && flock -n 9 || {{ echo {busy} >&2; exit 1; }}", f"echo $$ > {lock}"]
    if phase:
        lines.append(f"echo {shlex.quote(phase)} > {shlex.quote(f'{state_dir}/{PRUNE_PENDING}')}")
    return "\n".join(lines)


def delete_command(url: str, state_dir: str, workers: int = DEFAULT_WORKERS) -> str:
    """The host's command that runs the deletions listed in the plan file: its size does not
    depend on how many there are."""
    plan = f"{state_dir}/{PRUNE_PLAN}"
    program = registry_client_command("delete", url, "--workers", str(int(workers)), "--plan", plan)
    return (
        locked_command(state_dir, "deleting")
        + "\n"
        + program
        + f"status=$?; [ $status != 0 ] || rm -f {shlex.quote(plan)}; exit $status"
    )


def _answers_again(url: str, wait: int, otherwise: str) -> str:
    """Shell: waits for the registry to answer again after it was started; ``otherwise`` runs
    when it does not."""
    return (
        f"{{ {http_wait_command([url + '/v2/'], wait)}; }} >/dev/null || "
        f'{{ echo "the registry did not answer again" >&2; {otherwise}; }}'
    )


def _report_deletions(host, status: bool, output) -> None:
    result = None
    for line in reversed(output.stdout_lines):
        if line.startswith("{"):
            result = json.loads(line)
            break
    if result is None:
        return
    host.log(
        f"deleted {result['deleted']} stale manifest(s) ({result['tags']} tag(s)"
        + (
            f", {result['children_deleted']} platform manifest(s)"
            if result["children_deleted"]
            else ""
        )
        + ")"
    )
    for item in result.get("skipped") or []:
        host.log(f"left {item['repo']}@{short_digest(item['digest'])} alone: {item['reason']}")
    if result.get("error"):
        host.log(f"registry error: {result['error']['message']}")


def _report_gc(host, status: bool, output) -> None:
    lines = output.stdout_lines
    for line in reversed(lines):
        if line.startswith(GC_MARKER):
            values = dict(part.split("=", 1) for part in line.split()[1:])
            before, after = int(values["before"]), int(values["after"])
            if before < 0 or after < 0:
                host.log("garbage collection ran; the registry's blobs could not be measured")
            else:
                host.log(
                    f"garbage collection freed {human_size(before - after)} "
                    f"({before - after} bytes) of blobs on disk: {before} -> {after} bytes"
                )
            return


def prune_state(host, stack: Stack, state_dir: str) -> dict:
    """The registry prune's state on the host (``RegistryPruneState``), refused while another
    prune holds its lock."""
    state = host.get_fact(
        RegistryPruneState,
        state_dir=state_dir,
        project=stack.project,
        service=stack.registry_service,
    )
    if state["locked"]:
        raise OperationError(
            f"a registry prune is already running on this host (pid {state['locked']}, holding "
            f"{state_dir}/{PRUNE_LOCK}): wait for it to finish"
        )
    return state


@operation()
def delete_manifests(
    url: str, deletions: list[dict], state_dir: str, workers: int = DEFAULT_WORKERS
):
    """
    Delete manifests of a registry by digest (which removes every tag pointing at them), and the
    platform manifests listed with each. The deletions are uploaded as a file beside the
    registry's configuration and read there by the registry client on the host, so no command
    line grows with their number; progress is printed a batch at a time. Just before, each
    repository's tags are read again: a digest whose tags moved, or that gained a tag, is left
    alone and reported. Holds the prune's lock, and leaves the pending marker for the collection.

    + url: the registry's base URL as the host reaches it
    + deletions: ``{"repo", "digest", "tags", "children"}`` items (``labhub.registry.policy``)
    + state_dir: the folder of the prune's lock, marker and plan (``hub_dir/registry``)
    + workers: parallel requests

    **Example:**

    .. code:: python

        registry.delete_manifests(
            name="Delete stale images",
            url="http://127.0.0.1:5000",
            deletions=[{"repo": "lab", "digest": "sha256:9f86...", "tags": ["0.9"],
                        "children": []}],
            state_dir="/opt/labhub/registry",
        )
    """
    if not deletions:
        host.noop("no stale manifests to delete")
        return
    plan = json.dumps({"deletions": deletions}, sort_keys=True) + "\n"
    yield from files.put._inner(src=StringIO(plan), dest=f"{state_dir}/{PRUNE_PLAN}", mode="0600")
    yield reported(delete_command(url, state_dir, workers), _report_deletions, live=True)


@operation()
def recovered(stack: Stack, state_dir: str, url: str | None = None, wait: int = 60):
    """
    Bring the registry back from a prune that was killed during its garbage collection: remove
    the collector's container it left (the registry is stopped, so nothing races it) and start
    the registry. Refuses while a prune runs (its lock is held): starting the registry under a
    running collection could lose a blob a push reuses. Nothing to do otherwise.

    + stack: the compose project with the registry's service
    + state_dir: the folder of the prune's lock and marker (``hub_dir/registry``)
    + url: the registry's base URL as the host reaches it: wait until it answers
    + wait: seconds to wait for it

    **Example:**

    .. code:: python

        registry.recovered(
            name="Bring the registry back from an interrupted prune",
            stack=Stack.from_settings(settings),
            state_dir="/opt/labhub/registry",
        )
    """
    compose_file, project, service = stack.compose_file, stack.project, stack.registry_service
    state = prune_state(host, stack, state_dir)
    if not state["interrupted"]:
        host.noop("no interrupted registry prune to recover from")
        return
    host.log(
        f"a registry prune was interrupted during garbage collection (collector "
        f"{state['collector'] or 'gone'}, registry {state['registry']}): starting the "
        "registry again"
    )
    lines = [
        locked_command(state_dir),
        f"{command_line('docker', 'rm', '-f', collector_name(project))} >/dev/null 2>&1 || true",
    ]
    if state["registry"] is not None:
        lines.append(compose_command(compose_file, project, "start", service))
    if url and state["registry"] is not None:
        lines.append(_answers_again(url, wait, "exit 1"))
    yield shell(*lines)


@operation(is_idempotent=False)
def garbage_collect(stack: Stack, state_dir: str, url: str | None = None, wait: int = 60):
    """
    Run a compose service's registry garbage collector with the registry stopped (no push can
    race it), start the registry again (a fresh process: no stale blob descriptor cache answers
    for a collected blob), and report the space freed as measured on disk (the bytes of the
    blobs in the data volume before and after: what the collector deletes). Never
    ``--delete-untagged``: it breaks kept multi-platform images on registry 2.

    Holds the prune's lock; the collector runs in a container named ``<project>-registry-gc``,
    and one an interrupted run left is removed first. The pending marker is removed once the
    collection succeeded and the registry answers again.

    + stack: the compose project with the registry's service; the registry's configuration
      is read where its file on the host (``stack.registry_config_file``) is mounted, else at
      the path of its major version (``stack.registry_config_path``)
    + state_dir: the folder of the prune's lock and marker (``hub_dir/registry``)
    + url: the registry's base URL as the host reaches it: wait until it answers again
    + wait: seconds to wait for it

    **Example:**

    .. code:: python

        registry.garbage_collect(
            name="Collect the registry's garbage",
            stack=Stack.from_settings(settings),
            state_dir="/opt/labhub/registry",
        )
    """
    compose_file, project, service = stack.compose_file, stack.project, stack.registry_service
    config_path, config_file = stack.registry_config_path, stack.registry_config_file
    data_path = REGISTRY_DATA_PATH

    def compose(*args: Word) -> str:
        return compose_command(compose_file, project, *args)

    collector = collector_name(project)
    missing = f"no container of service {service} in {compose_file}"
    lines = [
        locked_command(state_dir, "collecting"),
        registry_data_command(project, service, data_path),
        f'[ -n "$cid" ] || {{ {command_line("echo", missing)} >&2; exit 1; }}',
        f"cfg={shlex.quote(config_path)}",
        f"mounted=$({mount_command(variable('cid'), config_file, field='Source', out='Destination')})"
        '; [ -z "$mounted" ] || cfg="$mounted"',
        # The blobs' bytes (the files the collector deletes), not folders.
        'size() { if [ -n "$data" ] && [ -d "$data" ]; then find "$data" -path "*/v2/blobs/*" '
        "-type f -printf '%s\\n' | awk '{s += $1} END {printf \"%.0f\\n\", s}'; "
        "else echo -1; fi; }",
        "before=$(size)",
        f"{command_line('docker', 'rm', '-f', collector)} >/dev/null 2>&1 || true",
        f"{compose('stop', service)} || exit 1",
        "status=0",
        compose(
            "run",
            "--rm",
            "--no-deps",
            "-T",
            "--name",
            collector,
            service,
            "garbage-collect",
            variable("cfg"),
        )
        + " >&2 || status=$?",
        f"{compose('start', service)} || status=1",
        "after=$(size)",
    ]
    if url:
        lines.append(_answers_again(url, wait, "status=1"))
    lines += [
        f'[ "$status" != 0 ] || rm -f {shlex.quote(f"{state_dir}/{PRUNE_PENDING}")}',
        f'echo "{GC_MARKER} before=$before after=$after status=$status"',
        'exit "$status"',
    ]
    yield reported(shell(*lines), _report_gc)
