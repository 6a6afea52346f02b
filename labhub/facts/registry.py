"""
Facts about the lab's private registry, read over HTTP from the host. Paired with
``labhub.operations.registry``.

``RegistryContents`` reads a whole registry (API v2) in one remote command: the host runs
``labhub/registry/client.py`` with ``python3`` (standard library only, its source sent in a
heredoc), which reads the catalog and every tag list to their last page and every manifest and
image config in parallel through a bounded pool, and prints one JSON document.
"""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

from labhub.registry import remote_program
from labhub.registry.client import ACCEPT, DEFAULT_PAGE_SIZE, DEFAULT_WORKERS


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
            f"curl -sS -I --max-time 10 -H {shlex.quote('Accept: ' + ACCEPT)} "
            f"{shlex.quote(url)} 2>/dev/null || true"
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
