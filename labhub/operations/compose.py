"""
A docker compose v2 project brought up only when it is not already up as its file says, and
health checks of the services it publishes. Paired with ``labhub.facts.compose``.
"""

from __future__ import annotations

import yaml
from pyinfra import host
from pyinfra.api import OperationError, operation
from pyinfra.operations import docker

from labhub.facts.compose import ComposeLogs, HttpStatuses, services_of
from labhub.stack import Stack


@operation()
def up(stack: Stack, content: str):
    """
    ``docker compose up`` (pyinfra's ``docker.compose``) when a service of the compose file has no
    running container or one made from another configuration (compose's own configuration hash,
    as compose itself decides what to recreate), or a container of the project is no longer in
    the file; each such service is logged with the reason. ``docker.compose`` alone runs every
    time and so always reports a change.

    + stack: the compose project (its folder, file and name)
    + content: the compose file's content, as written before this operation runs: a dry run,
      which writes nothing, compares the containers with it too

    **Example:**

    .. code:: python

        compose.up(
            name="Start the hub stack",
            stack=Stack.from_settings(settings),
            content=compose_yaml,
        )
    """
    services = services_of(host, stack, content)
    images = {
        name: (service or {}).get("image")
        for name, service in (yaml.safe_load(content).get("services") or {}).items()
    }
    reasons = {}
    for name in sorted(set(images) | set(services)):
        service = services.get(name)
        if name not in images:
            reasons[name] = "no longer in the compose file: removed"
        elif service is None or service["state"] is None:
            # Also what a dry run on a server without Docker yet says.
            reasons[name] = "created"
        elif service["config_hash"] != service["wanted_hash"]:
            reasons[name] = (
                "recreated: new image " + str(images.get(name))
                if service["image"] != images.get(name)
                else "recreated: its configuration changed"
            )
        elif service["state"] != "running":
            reasons[name] = f"started (it is {service['state']})"
    if not reasons:
        host.noop(f"compose project {stack.project} is up as {stack.compose_file} says")
        return

    for name, reason in reasons.items():
        host.log(f"compose: {name} {reason}")
    yield from docker.compose._inner(
        project_directory=stack.compose_file.rsplit("/", 1)[0] or "/",
        files=[stack.compose_file],
        project_name=stack.project,
    )


@operation()
def healthy(checks: dict[str, tuple[str, str]], stack: Stack, wait: int = 120):
    """
    Fail the deploy with a clear message when a service does not answer 200 on its URL within
    ``wait`` seconds. Changes nothing; checks only when the deploy executes (not in dry runs).
    All URLs are asked in one command, which returns at once when they all answer.

    + checks: ``{description: (url, compose service)}``
    + stack: the compose project, to show the failing service's last log lines
    + wait: seconds each service may take to answer

    **Example:**

    .. code:: python

        compose.healthy(
            name="Check the hub stack answers",
            checks={"hub": ("http://127.0.0.1:8000/hub/health", "hub")},
            stack=Stack.from_settings(settings),
        )
    """
    # A check, not a change: this operation never yields a command.
    yield from ()
    if not host.state.is_executing:
        host.noop("health checks run when the deploy executes")
        return
    statuses = host.get_fact(HttpStatuses, urls=[url for url, _ in checks.values()], wait=wait)
    for description, (url, service) in checks.items():
        status = statuses.get(url, 0)
        if status != 200:
            logs = host.get_fact(
                ComposeLogs, compose_file=stack.compose_file, project=stack.project, service=service
            )
            answer = f"answered HTTP {status}" if status else "did not answer"
            raise OperationError(
                f"{description}: {url} {answer} within {wait} s, the stack did not come up. "
                f"Last log lines of `docker compose -f {stack.compose_file} logs {service}`:\n"
                f"{logs}"
            )
    host.noop(f"{', '.join(checks)} answer{'s' if len(checks) == 1 else ''} 200")
