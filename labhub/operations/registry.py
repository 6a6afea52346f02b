"""
Delete stale images from the lab's private registry and collect their blobs. Paired with
``labhub.facts.registry``.
"""

from __future__ import annotations

import json
import shlex

from functools import partial

from pyinfra import host
from pyinfra.api import operation

from labhub.commands import reported
from labhub.facts.compose import compose_command, http_wait_command
from labhub.registry import remote_program
from labhub.registry.client import DEFAULT_WORKERS
from labhub.registry.policy import human_size, short_digest
from labhub.stack import REGISTRY_DATA_PATH

GC_MARKER = "labhub-registry-gc"


def _report_deletions(host, status: bool, output) -> None:
    lines = output.stdout_lines
    result = None
    for line in reversed(lines):
        if line.startswith("{"):
            result = json.loads(line)
            break
    if result is None:
        return
    for item in result.get("deleted") or []:
        children = item.get("children_deleted") or []
        host.log(f"deleted {item['repo']}@{short_digest(item['digest'])} "
                 f"(tags {', '.join(item['tags'])}"
                 + (f"; {len(children)} platform manifest(s)" if children else "") + ")")
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
                host.log("garbage collection ran; the registry's data folder could not be measured")
            else:
                host.log(f"garbage collection freed {human_size(before - after)} "
                         f"({before - after} bytes) on disk: {before} -> {after} bytes")
            return


@operation()
def delete_manifests(url: str, deletions: list[dict], workers: int = DEFAULT_WORKERS):
    """
    Delete manifests of a registry by digest (which removes every tag pointing at them), and the
    platform manifests listed with each. Just before, each repository's tags are read again: a
    digest whose tags moved, or that gained a tag, is left alone and reported.

    + url: the registry's base URL as the host reaches it
    + deletions: ``{"repo", "digest", "tags", "children"}`` items (``labhub.registry.policy``)
    + workers: parallel requests

    **Example:**

    .. code:: python

        registry.delete_manifests(
            name="Delete stale images",
            url="http://127.0.0.1:5000",
            deletions=[{"repo": "lab", "digest": "sha256:9f86...", "tags": ["0.9"],
                        "children": []}],
        )
    """
    if not deletions:
        host.noop("no stale manifests to delete")
        return
    program = remote_program(["delete", url, "--workers", str(int(workers))],
                             plan={"deletions": deletions})
    yield reported(program, _report_deletions)


@operation(is_idempotent=False)
def garbage_collect(compose_file: str, project: str, service: str, config_path: str,
                    config_file: str | None = None, data_path: str = REGISTRY_DATA_PATH,
                    url: str | None = None, wait: int = 60):
    """
    Run a compose service's registry garbage collector with the registry stopped (no push can
    race it), start the registry again (a fresh process: no stale blob descriptor cache answers
    for a collected blob), and report the space freed as measured on disk (``du -sb`` of the
    data volume before and after). Never ``--delete-untagged``: it breaks kept multi-platform
    images on registry 2.

    + compose_file: the compose file on the host
    + project: the compose project name
    + service: the registry's service
    + config_path: the registry's configuration path inside the container when it cannot be read
      from the container's mounts (``/etc/docker/registry/config.yml`` for registry:2,
      ``/etc/distribution/config.yml`` for registry:3)
    + config_file: the configuration file on the host; the path it is mounted at is used
    + data_path: where the registry keeps its data inside the container
    + url: the registry's base URL as the host reaches it: wait until it answers again
    + wait: seconds to wait for it

    **Example:**

    .. code:: python

        registry.garbage_collect(
            name="Collect the registry's garbage",
            compose_file="/opt/labhub/compose.yaml",
            project="labhub",
            service="registry",
            config_path="/etc/docker/registry/config.yml",
        )
    """
    compose = partial(compose_command, compose_file, project)

    def mount_template(match_field: str, value: str, out_field: str) -> str:
        return shlex.quote(f"{{{{range .Mounts}}}}{{{{if eq .{match_field} {json.dumps(value)}}}}}"
                           f"{{{{.{out_field}}}}}{{{{end}}}}{{{{end}}}}")

    lines = [
        f'cid=$({compose("ps", "-a", "-q", service)})',
        f'[ -n "$cid" ] || {{ echo {shlex.quote(f"no container of service {service} in {compose_file}")} >&2; '
        "exit 1; }",
        f'data=$(docker inspect --format {mount_template("Destination", data_path, "Source")} '
        '"$cid")',
        f"cfg={shlex.quote(config_path)}",
    ]
    if config_file:
        lines.append(
            f'mounted=$(docker inspect --format {mount_template("Source", config_file, "Destination")}'
            ' "$cid"); [ -z "$mounted" ] || cfg="$mounted"')
    lines += [
        'size() { if [ -n "$data" ] && [ -d "$data" ]; then du -sb "$data" | cut -f1; '
        "else echo -1; fi; }",
        "before=$(size)",
        f"{compose('stop', service)} || exit 1",
        "status=0",
        f'{compose("run", "--rm", "--no-deps", "-T", service, "garbage-collect")} "$cfg" >&2 '
        "|| status=$?",
        f"{compose('start', service)} || status=1",
        "after=$(size)",
    ]
    if url:
        lines.append(
            f'code=$({http_wait_command(url + "/v2/", wait)}); [ "$code" = 200 ] || '
            '{ echo "the registry did not answer again" >&2; status=1; }')
    lines += [
        f'echo "{GC_MARKER} before=$before after=$after status=$status"',
        'exit "$status"',
    ]
    yield reported("\n".join(lines), _report_gc)
