"""
A docker compose v2 project brought up only when it is not already up as its file says, and
health checks of the services it publishes.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import OperationError, StringCommand, operation
from pyinfra.api.command import QuoteString

from labhub.facts.hub import ComposeConfigHashes, ComposeLogs, ComposeServices, HttpStatus


@operation()
def up(compose_file: str, project: str):
    """
    ``docker compose up -d`` when a service of the compose file has no running container or one
    made from another configuration (compose's configuration hash), as compose itself decides
    what to recreate. pyinfra's ``docker.compose`` runs it every time and so always changes.

    + compose_file: the compose file on the host
    + project: the project name the file sets (``name:``)

    **Example:**

    .. code:: python

        compose.up(
            name="Start the hub stack",
            compose_file="/opt/labhub/compose.yaml",
            project="labhub",
        )
    """
    wanted = host.get_fact(ComposeConfigHashes, compose_file=compose_file) or {}
    running = host.get_fact(ComposeServices, project=project) or {}
    stale = sorted(
        service for service, config_hash in wanted.items()
        if running.get(service, {}).get("state") != "running"
        or running[service]["config_hash"] != config_hash
    )
    orphans = sorted(set(running) - set(wanted))
    if wanted and not stale and not orphans:
        host.noop(f"compose project {project} is up as {compose_file} says")
        return

    yield StringCommand("docker", "compose", "-f", QuoteString(compose_file), "up", "--detach",
                        "--remove-orphans")


@operation()
def healthy(checks: dict[str, tuple[str, str]], compose_file: str, wait: int = 120):
    """
    Fail the deploy with a clear message when a service does not answer 200 on its URL within
    ``wait`` seconds. Changes nothing; checks only when the deploy executes (not in dry runs).

    + checks: ``{description: (url, compose service)}``
    + compose_file: the compose file on the host, to show the failing service's last log lines
    + wait: seconds each service may take to answer

    **Example:**

    .. code:: python

        compose.healthy(
            name="Check the hub stack answers",
            checks={"hub": ("http://127.0.0.1:8000/hub/health", "hub")},
            compose_file="/opt/labhub/compose.yaml",
        )
    """
    # A check, not a change: this operation never yields a command.
    yield from ()
    if not host.state.is_executing:
        host.noop("health checks run when the deploy executes")
        return
    for description, (url, service) in checks.items():
        status = host.get_fact(HttpStatus, url=url, wait=wait)
        if status != 200:
            logs = host.get_fact(ComposeLogs, compose_file=compose_file, service=service)
            answer = f"answered HTTP {status}" if status else "did not answer"
            raise OperationError(
                f"{description}: {url} {answer} within {wait} s, the stack did not come up. "
                f"Last log lines of `docker compose -f {compose_file} logs {service}`:\n{logs}"
            )
    host.noop(f"{', '.join(checks)} answer{'s' if len(checks) == 1 else ''} 200")
