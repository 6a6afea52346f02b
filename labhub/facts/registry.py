"""
Facts about the lab's private registry, read over HTTP from the host. Paired with
``labhub.operations.registry``.

``RegistryContents`` reads a whole registry (API v2) in one remote command: the host runs
``labhub/registry/client.py`` with ``python3`` (standard library only, its source sent in a
heredoc), which reads the catalog and every tag list to their last page and every manifest and
image config in parallel through a bounded pool, and prints one JSON document. Given the compose
service, it also reads the registry's storage folder (the manifests no tag points at, the blobs
on disk). ``RegistryPruneState`` tells whether a prune is running or was interrupted.
"""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

from labhub.commands import (
    command_line,
    container_command,
    mount_command,
    registry_client_command,
    shell,
    variable,
)
from labhub.registry.client import ACCEPT, DEFAULT_PAGE_SIZE, DEFAULT_WORKERS

# Beside the registry's configuration on the host (``hub_dir/registry``): held (flock) by the
# prune's deletions and collection, so that nothing else starts or stops the registry meanwhile;
# present from a prune's first deletion until its collection finished; the deletions to make.
PRUNE_LOCK = "prune.lock"
PRUNE_PENDING = "prune-pending"
PRUNE_PLAN = "prune-plan.json"


def collector_name(project: str) -> str:
    """The container the registry's garbage collector runs in (one name: a leftover is found)."""
    return f"{project}-registry-gc"


def registry_data_command(project: str, service: str, data_path: str) -> str:
    """Shell (for ``labhub.commands.shell``): sets ``cid`` (the registry's container) and
    ``data`` (where its ``data_path`` volume is on the host; empty when there is no such
    container)."""
    return (
        f"cid=$({container_command(project, service)}); data=; "
        f'[ -z "$cid" ] || data=$({mount_command(variable("cid"), data_path)})'
    )


class RegistryTag(FactBase[dict]):
    """
    A tag in a Docker registry (API v2) the host reaches over HTTP: the HTTP status of its
    manifest (``0`` when the registry does not answer) and the manifest's digest when it exists.

    .. code:: python

        {"status": 200, "digest": "sha256:d2a8..."}
    """

    requires_command = "curl"

    def command(self, registry: str, repository: str, tag: str) -> str:
        url = f"http://{registry}/v2/{repository}/manifests/{tag}"
        return (
            command_line("curl", "-sS", "-I", "--max-time", "10", "-H", "Accept: " + ACCEPT, url)
            + " 2>/dev/null || true"
        )

    def process(self, output) -> dict:
        status, digest = 0, None
        for line in output:
            if line.startswith("HTTP/"):
                status = int(line.split()[1])
            elif line.lower().startswith("docker-content-digest:"):
                digest = line.split(":", 1)[1].strip()
        return {"status": status, "digest": digest if status == 200 else None}


class RegistryContents(FactBase[dict]):
    """
    Every repository (catalog) of a registry the host reaches over HTTP, every tag, the digest
    each tag points at, and for each manifest its kind, what it references, its image's creation
    time (from the image config; an index's from its newest platform image) and size (config and
    layers; an index's: the blobs of its platform images). With ``probe_delete``, also whether the
    registry allows deletes (``"enabled"``, ``"disabled"``, ``"read-only"``), asked with a DELETE
    of a digest no manifest has, which changes nothing. When the registry cannot be read, a
    single ``error`` (``kind``: ``unreachable``, ``auth``, ``protocol``...).

    .. code:: python

        {
            "registry": "http://127.0.0.1:5000",
            "repositories": {"lab": {"1.0": "sha256:9f86...", "latest": "sha256:9f86..."}},
            "manifests": {"lab": {"sha256:9f86...": {
                "kind": "image", "media_type": "application/vnd.oci.image.manifest.v1+json",
                "manifest_size": 501, "created": "2025-01-20T10:00:00Z", "size": 104857600,
                "config": {"digest": "sha256:5d41...", "size": 1470, "media_type": "..."},
                "blobs": {"sha256:5d41...": 1470, "sha256:7d79...": 104856130},
                "children": [],
            }}},
            "vanished": [],
            "delete": "enabled",
            "requests": 4,
        }
    """

    requires_command = "python3"

    def command(
        self,
        url: str,
        probe_delete: bool = False,
        workers: int = DEFAULT_WORKERS,
        page_size: int = DEFAULT_PAGE_SIZE,
        project: str | None = None,
        service: str | None = None,
        data_path: str | None = None,
    ) -> str:
        argv = ["collect", url, "--workers", str(int(workers)), "--page-size", str(int(page_size))]
        if probe_delete:
            argv.append("--probe-delete")
        if not (project and service and data_path):
            return shell(registry_client_command(*argv), "true")
        # The storage folder as the host sees it, when the registry is this compose service's.
        return shell(
            registry_data_command(project, service, data_path),
            registry_client_command(*argv, "--storage", variable("data")),
            "true",
        )

    def process(self, output) -> dict:
        text = "\n".join(output).strip()
        if not text:
            return {
                "error": {
                    "kind": "protocol",
                    "message": "the registry reader printed nothing",
                    "status": None,
                    "code": None,
                }
            }
        return json.loads(text.splitlines()[-1])


class RegistryPruneState(FactBase[dict]):
    """
    Whether a registry prune runs or was interrupted on the host: ``locked`` (the pid holding
    the prune's lock: a prune is running), ``pending`` (the phase a prune reached without
    finishing its collection: ``deleting`` or ``collecting``), ``collector`` (the state of a
    garbage collector's container an interrupted prune left), ``registry`` (the state of the
    registry service's container), ``interrupted`` (a prune was killed during its collection:
    a collector is left, or the registry it stopped is), and ``leftovers`` (with ``pending``: the
    ``[repo, digest]`` platform manifests its plan deleted with their indexes, which a prune
    killed between an index and them left untagged).

    .. code:: python

        {"locked": None, "pending": "collecting", "collector": "exited", "registry": "exited",
         "interrupted": True, "leftovers": [["lab", "sha256:9f86..."]]}
    """

    requires_command = "docker"

    @staticmethod
    def default() -> dict:
        return {
            "locked": None,
            "pending": None,
            "collector": None,
            "registry": None,
            "interrupted": False,
            "leftovers": [],
        }

    def command(self, state_dir: str, project: str, service: str) -> str:
        lock = shlex.quote(f"{state_dir}/{PRUNE_LOCK}")
        pending = shlex.quote(f"{state_dir}/{PRUNE_PENDING}")
        collector = shlex.quote(collector_name(project))
        plan = shlex.quote(f"{state_dir}/{PRUNE_PLAN}")
        children = (
            "import json, sys\n"
            "for d in json.load(open(sys.argv[1])).get('deletions') or []:\n"
            "    for c in d.get('children') or []: print('leftover', d['repo'], c)"
        )
        return shell(
            f'if [ -f {pending} ]; then echo "pending $(head -c 32 {pending})"; fi',
            f"if [ -f {pending} ] && [ -f {plan} ]; then "
            f"python3 -c {shlex.quote(children)} {plan} 2>/dev/null; fi",
            f"if [ -f {lock} ] && ! flock -n {lock} true 2>/dev/null; then "
            f'echo "locked $(head -c 32 {lock})"; fi',
            f"docker container inspect --format 'collector {{{{.State.Status}}}}' {collector} "
            "2>/dev/null",
            f"cid=$({container_command(project, service)})",
            '[ -z "$cid" ] || docker inspect --format \'registry {{.State.Status}}\' "$cid"',
            "true",
        )

    def process(self, output) -> dict:
        state = self.default()
        for line in output:
            key, _, value = line.strip().partition(" ")
            if key == "leftover" and len(value.split()) == 2:
                state["leftovers"].append(value.split())
            elif key in state and key != "leftovers":
                state[key] = value.strip() or key
        # Killed during its collection: a collector left, or the registry stopped for it.
        state["interrupted"] = bool(
            state["collector"]
            or (state["pending"] == "collecting" and state["registry"] not in (None, "running"))
        )
        return state
