"""
Facts about images in the host's Docker engine and in a registry the host reaches over HTTP.
"""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

from labhub.registry.client import ACCEPT


class DockerImage(FactBase[dict | None]):
    """
    An image of the host's engine: its id, labels and registry digests, or ``None`` when absent.

    .. code:: python

        {
            "id": "sha256:4b1c...",
            "labels": {"org.labhub.context-hash": "9f86..."},
            "repo_digests": ["127.0.0.1:5000/lab@sha256:d2a8..."],
        }
    """

    def requires_command(self, image: str) -> str:
        return "docker"

    def command(self, image: str) -> str:
        template = (
            '{"id": {{json .Id}}, "labels": {{json .Config.Labels}}, '
            '"repo_digests": {{json .RepoDigests}}}'
        )
        return (f"docker image inspect --format {shlex.quote(template)} {shlex.quote(image)} "
                "2>/dev/null || true")

    def process(self, output) -> dict | None:
        text = "\n".join(output).strip()
        if not text:
            return None
        image = json.loads(text)
        image["labels"] = image["labels"] or {}
        image["repo_digests"] = image["repo_digests"] or []
        return image


class RegistryTag(FactBase[dict]):
    """
    A tag in a Docker registry (API v2) the host reaches over HTTP: the HTTP status of its
    manifest (``0`` when the registry does not answer) and the manifest's digest when it exists.

    .. code:: python

        {"status": 200, "digest": "sha256:d2a8..."}
    """

    def requires_command(self, registry: str, repository: str, tag: str) -> str:
        return "curl"

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
