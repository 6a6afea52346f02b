"""
Facts about a docker compose v2 project on the host and the HTTP services it publishes. Paired
with ``labhub.operations.compose``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from pyinfra.api import FactBase

from labhub.commands import command_line, compose_command, http_wait_command, shell
from labhub.facts import read

if TYPE_CHECKING:
    from labhub.stack import Stack

# Between the two parts of ComposeProject's output; neither part can print it.
_SEPARATOR = "--labhub-compose-containers--"


class ServiceDict(TypedDict):
    wanted_hash: str | None
    state: str | None
    config_hash: str | None
    image: str | None


# Ends the compose file given on standard input; a YAML dump never holds it.
_HEREDOC = "LABHUB_COMPOSE_FILE"


class ComposeProject(FactBase[dict[str, ServiceDict]]):
    """
    The services of a compose project: the configuration hash the compose file ``content`` gives
    each (the one compose labels containers with; None: not in the file), and the state,
    configuration hash and image of each service's container (None: no container). One command
    reads both. The file is given as it is about to be written, not read on the host, so that a
    dry run compares the containers with it too.

    .. code:: python

        {
            "hub": {"wanted_hash": "5c1f...", "state": "running", "config_hash": "5c1f...",
                    "image": "labhub/hub:2b9d0c3e1f4a"},
            "registry": {"wanted_hash": "a07e...", "state": None, "config_hash": None,
                         "image": None},
        }
    """

    default = dict
    requires_command = "docker"

    def command(self, compose_file: str, project: str, content: str) -> str:
        template = (
            '{{.Label "com.docker.compose.service"}} {{.State}} '
            '{{.Label "com.docker.compose.config-hash"}} {{.Image}}'
        )
        # Not one-off containers (``compose run``, such as the registry's garbage collector).
        containers = command_line(
            "docker",
            "ps",
            "--all",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--filter",
            "label=com.docker.compose.oneoff=False",
            "--format",
            template,
        )
        assert _HEREDOC not in content
        # Relative paths in the file are relative to its folder, as when compose reads the file.
        hashes = compose_command(
            "-",
            project,
            "--project-directory",
            compose_file.rsplit("/", 1)[0] or "/",
            "config",
            "--hash",
            "*",
        )
        return (
            f"{hashes} <<'{_HEREDOC}' && echo {_SEPARATOR} && {containers}\n"
            f"{content.rstrip()}\n{_HEREDOC}\n"
        )

    def process(self, output) -> dict[str, ServiceDict]:
        services: dict[str, ServiceDict] = {}
        containers = False
        for line in output:
            parts = line.split()
            if line.strip() == _SEPARATOR:
                containers = True
            elif not containers and len(parts) == 2:
                services[parts[0]] = {
                    "wanted_hash": parts[1],
                    "state": None,
                    "config_hash": None,
                    "image": None,
                }
            elif containers and len(parts) == 4:
                service = services.setdefault(
                    parts[0],
                    {"wanted_hash": None, "state": None, "config_hash": None, "image": None},
                )
                service["state"], service["config_hash"], service["image"] = parts[1:]
        return services


def services_of(host, stack: Stack, content: str) -> dict[str, ServiceDict]:
    """The stack's services as ``ComposeProject`` reads them against the compose file
    ``content``: one read for the run, until an operation changes the host."""
    return read(
        host,
        ComposeProject,
        compose_file=stack.compose_file,
        project=stack.project,
        content=content,
    )


class HttpStatuses(FactBase[dict[str, int]]):
    """
    The HTTP status each URL answers the host with, asked together: at once when they all answer
    200, else again each second for up to ``wait`` seconds until they do (``0``: no answer).

    .. code:: python

        {"http://127.0.0.1:8000/hub/health": 200, "http://127.0.0.1:5000/v2/": 0}
    """

    requires_command = "curl"
    default = dict

    def command(self, urls: list[str], wait: int = 0) -> str:
        return shell(http_wait_command(urls, wait), "true")

    def process(self, output) -> dict[str, int]:
        statuses = {}
        for line in output:
            code, _, url = line.strip().partition(" ")
            if url:
                statuses[url] = int(code) if code.isdigit() else 0
        return statuses


class HttpStatus(FactBase[int]):
    """
    The HTTP status one URL answers the host with, with curl's own arguments (a CA to trust, a
    pinned key, a name to resolve), waiting up to ``wait`` seconds for a 200 (``0``: no answer,
    or not with the certificate those arguments accept).

    .. code:: python

        200
    """

    requires_command = "curl"

    def command(self, url: str, wait: int = 0, curl_args: tuple[str, ...] = ()) -> str:
        return shell(http_wait_command({url: curl_args}, wait), "true")

    def process(self, output) -> int:
        code = "".join(output[:1]).partition(" ")[0]
        return int(code) if code.isdigit() else 0


class ComposeLogs(FactBase[str]):
    """
    The last lines a compose service logged (for error messages).

    .. code:: python

        "hub-1  | [I 2026-11-30 10:00:00.000 JupyterHub app:3300] JupyterHub is now running"
    """

    default = str

    requires_command = "docker"

    def command(self, compose_file: str, project: str, service: str, lines: int = 30) -> str:
        logs = compose_command(
            compose_file, project, "logs", "--no-color", "--tail", str(int(lines)), service
        )
        return f"{logs} 2>&1 || true"

    def process(self, output) -> str:
        return "\n".join(output)
