"""
Facts about the hub stack on the host: the compose project's services, and whether an HTTP
endpoint answers.
"""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase


class ComposeServices(FactBase[dict]):
    """
    The containers of a compose project by service: state and compose's configuration hash.

    .. code:: python

        {"hub": {"state": "running", "config_hash": "5c1f..."}}
    """

    @staticmethod
    def default() -> dict:
        return {}

    def requires_command(self, project: str) -> str:
        return "docker"

    def command(self, project: str) -> str:
        template = ('{{.Label "com.docker.compose.service"}} {{.State}} '
                    '{{.Label "com.docker.compose.config-hash"}}')
        return (f"docker ps --all --filter {shlex.quote(f'label=com.docker.compose.project={project}')}"
                f" --format {shlex.quote(template)}")

    def process(self, output) -> dict:
        services = {}
        for line in output:
            parts = line.split()
            if len(parts) == 3:
                services[parts[0]] = {"state": parts[1], "config_hash": parts[2]}
        return services


class ComposeConfigHashes(FactBase[dict]):
    """
    The configuration hash compose gives each service of a compose file (the one it labels
    containers with), or an empty dict when the file does not exist yet.

    .. code:: python

        {"hub": "5c1f...", "registry": "a07e..."}
    """

    @staticmethod
    def default() -> dict:
        return {}

    def requires_command(self, compose_file: str) -> str:
        return "docker"

    def command(self, compose_file: str) -> str:
        path = shlex.quote(compose_file)
        return f"! test -f {path} || docker compose -f {path} config --hash '*'"

    def process(self, output) -> dict:
        return dict(line.split() for line in output if len(line.split()) == 2)


class HttpStatus(FactBase[int]):
    """
    The HTTP status an URL answers the host with, waiting up to ``wait`` seconds for a 200
    (``0``: no answer).

    .. code:: python

        200
    """

    def requires_command(self, url: str, wait: int = 0) -> str:
        return "curl"

    def command(self, url: str, wait: int = 0) -> str:
        quoted = shlex.quote(url)
        return (
            f"end=$(($(date +%s) + {int(wait)})); "
            f"while :; do code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 {quoted}); "
            '[ "$code" = 200 ] || [ "$(date +%s)" -ge "$end" ] && break; sleep 1; done; '
            'echo "${code:-000}"'
        )

    def process(self, output) -> int:
        text = "".join(output).strip()
        return int(text) if text.isdigit() else 0


class ComposeLogs(FactBase[str]):
    """
    The last lines a compose service logged (for error messages).
    """

    def requires_command(self, compose_file: str, service: str, lines: int = 30) -> str:
        return "docker"

    def command(self, compose_file: str, service: str, lines: int = 30) -> str:
        return (f"docker compose -f {shlex.quote(compose_file)} logs --no-color "
                f"--tail {int(lines)} {shlex.quote(service)} 2>&1 || true")

    def process(self, output) -> str:
        return "\n".join(output)
