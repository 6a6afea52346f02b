"""
Facts about the lab's private registry and the images the host's containers use.

``RegistryContents`` reads a whole registry (API v2) in one remote command: the host runs
``labhub/registry/client.py`` with ``python3`` (standard library only, its source sent in a
heredoc), which reads the catalog and every tag list to their last page and every manifest and
image config in parallel through a bounded pool, and prints one JSON document.
"""

from __future__ import annotations

import json

from pyinfra.api import FactBase, ShortFactBase

from labhub.registry import remote_program
from labhub.registry.client import DEFAULT_PAGE_SIZE, DEFAULT_WORKERS


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

    def requires_command(self, url: str, probe_delete: bool = False,
                         workers: int = DEFAULT_WORKERS,
                         page_size: int = DEFAULT_PAGE_SIZE) -> str:
        return "python3"

    def command(self, url: str, probe_delete: bool = False, workers: int = DEFAULT_WORKERS,
                page_size: int = DEFAULT_PAGE_SIZE) -> str:
        argv = ["collect", url, "--workers", str(int(workers)), "--page-size",
                str(int(page_size))]
        if probe_delete:
            argv.append("--probe-delete")
        return remote_program(argv, always_succeed=True)

    def process(self, output) -> dict:
        text = "\n".join(output).strip()
        if not text:
            return {"error": {"kind": "protocol", "message": "the registry reader printed nothing",
                              "status": None, "code": None}}
        return json.loads(text.splitlines()[-1])


class RegistryTags(ShortFactBase[dict]):
    """
    Every repository of a registry and its tags, each with the digest it points at (from
    ``RegistryContents``; ``{}`` for a repository left without tags).

    .. code:: python

        {"lab": {"1.0": "sha256:9f86...", "latest": "sha256:9f86..."}, "old": {}}
    """

    fact = RegistryContents

    def process_data(self, data) -> dict:
        return (data or {}).get("repositories") or {}


class ContainerImages(FactBase[list]):
    """
    Every container of the host's Docker engine, running or stopped: its name, state, the
    reference it was created from and its image's registry digests (``RepoDigests``). An empty
    list when the host has no engine; the host fails when the engine does not answer, rather than
    answer "no containers".

    .. code:: python

        [
            {
                "name": "jupyter-alice",
                "status": "exited",
                "image": "127.0.0.1:5000/lab:1.0",
                "image_id": "sha256:4b1c...",
                "repo_digests": ["127.0.0.1:5000/lab@sha256:9f86..."],
            },
        ]
    """

    def requires_command(self) -> str:
        return "docker"

    def command(self) -> str:
        container = "C {{json .Name}} {{json .State.Status}} {{json .Config.Image}} {{json .Image}}"
        image = "I {{json .Id}} {{json .RepoDigests}}"
        return (
            'ids=$(docker ps -aq --no-trunc) || exit 1; [ -n "$ids" ] || exit 0; '
            f"docker container inspect --format '{container}' $ids 2>/dev/null; "
            f"docker image inspect --format '{image}' "
            "$(docker container inspect --format '{{.Image}}' $ids 2>/dev/null | sort -u) "
            "2>/dev/null; true"
        )

    def process(self, output) -> list:
        containers = []
        digests: dict[str, list[str]] = {}
        decoder = json.JSONDecoder()
        for line in output:
            kind, _, rest = line.strip().partition(" ")
            values = []
            rest = rest.strip()
            while rest:
                value, end = decoder.raw_decode(rest)
                values.append(value)
                rest = rest[end:].strip()
            if kind == "C" and len(values) == 4:
                containers.append({"name": values[0].lstrip("/"), "status": values[1],
                                   "image": values[2], "image_id": values[3]})
            elif kind == "I" and len(values) == 2:
                digests[values[0]] = values[1] or []
        for container in containers:
            container["repo_digests"] = digests.get(container["image_id"], [])
        return containers
