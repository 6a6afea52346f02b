"""
The hub moved to a new image with its database: JupyterHub's database upgrade, and the way back
when the new hub does not come up. Reads ``labhub.facts.compose.ComposeProject``.
"""

from __future__ import annotations

import yaml
from pyinfra import host
from pyinfra.api import operation

from labhub.commands import reported, script_command
from labhub.facts.compose import services_of
from labhub.stack import ROOT, Stack

UPGRADE_SCRIPT = ROOT / "files" / "hub-upgrade.sh"


def _report(host, status: bool, output) -> None:
    for line in output.stderr_lines:
        if line.startswith("labhub: "):
            host.log(line)


@operation(is_idempotent=False)
def upgraded(stack: Stack, image: str, content: str, wait: int = 180):
    """
    Move a running hub to a new image with its database (before ``compose.up``, which would
    otherwise start the new image on the old schema): the hub is stopped, its SQLite database
    copied beside itself (``<database>.before-upgrade``), ``jupyterhub upgrade-db`` run on the
    new image, and the new hub started and asked for its health. When a step fails, the copy goes
    back, the hub runs its previous image again (a compose override file naming that image, at
    ``stack.hub_rollback_file``) and the operation fails, saying so. Nothing happens when the
    hub's container already runs ``image``, or when there is no hub yet.

    + stack: the compose project, its compose file already naming the new image; its hub
      service, and the image's data volume, database, configuration and health URL
    + image: the new hub image
    + content: the compose file's content (what ``ComposeProject`` compares with)
    + wait: seconds the new hub may take to answer

    **Example:**

    .. code:: python

        hub_database.upgraded(
            name="Upgrade the hub's database to the new hub image",
            stack=Stack.from_settings(settings),
            image="labhub/hub:4bd2c1a9e0f1",
            content=compose_yaml,
        )
    """
    services = services_of(host, stack, content)
    current = (services.get(stack.hub_service) or {}).get("image")
    if current is None or current == image:
        host.noop(f"the hub runs {image}" if current else "no hub to upgrade yet")
        return
    host.log(
        f"hub: upgrading from {current} to {image}: its database is copied, then "
        "upgraded by jupyterhub upgrade-db; on failure the hub goes back to "
        f"{current}"
    )
    rollback = yaml.safe_dump({"services": {stack.hub_service: {"image": current}}})
    hub = stack.hub
    yield reported(
        script_command(
            UPGRADE_SCRIPT,
            stack.compose_file,
            stack.project,
            stack.hub_service,
            current,
            hub.data_path,
            hub.database,
            hub.config,
            hub.health_url,
            str(int(wait)),
            stack.hub_rollback_file,
            rollback,
        ),
        _report,
    )
