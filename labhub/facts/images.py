"""
Facts about the images of the host's Docker engine that pyinfra's ``DockerImage`` and
``DockerContainers`` do not give in one read. Paired with ``labhub.operations.images``.
"""

from __future__ import annotations

import json

from pyinfra.api import FactBase


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

    default = list
    requires_command = "docker"

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
                containers.append(
                    {
                        "name": values[0].lstrip("/"),
                        "status": values[1],
                        "image": values[2],
                        "image_id": values[3],
                    }
                )
            elif kind == "I" and len(values) == 2:
                digests[values[0]] = values[1] or []
        for container in containers:
            container["repo_digests"] = digests.get(container["image_id"], [])
        return containers
