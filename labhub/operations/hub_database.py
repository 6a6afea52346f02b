"""
The hub moved to a new image with its database: JupyterHub's database upgrade, and the way back
when the new hub does not come up. Reads ``labhub.facts.compose.ComposeProject``.
"""

from __future__ import annotations

import yaml
from pyinfra import host
from pyinfra.api import operation

from labhub.commands import reported, script_command
from labhub.facts import read
from labhub.facts.compose import ComposeProject
from labhub.stack import ROOT

UPGRADE_SCRIPT = ROOT / "files" / "hub-upgrade.sh"


def _report(host, status: bool, output) -> None:
    for line in output.stderr_lines:
        if line.startswith("labhub: "):
            host.log(line)


@operation(is_idempotent=False)
def upgraded(compose_file: str, project: str, service: str, image: str, content: str,
             data_path: str, database: str, config: str, health_url: str, rollback_file: str,
             wait: int = 180):
    """
    Move a running hub to a new image with its database (before ``compose.up``, which would
    otherwise start the new image on the old schema): the hub is stopped, its SQLite database
    copied beside itself (``<database>.before-upgrade``), ``jupyterhub upgrade-db`` run on the
    new image, and the new hub started and asked for its health. When a step fails, the copy goes
    back, the hub runs its previous image again (a compose override file naming that image) and
    the operation fails, saying so. Nothing happens when the hub's container already runs
    ``image``, or when there is no hub yet.

    + compose_file: the compose file on the host, already naming the new image
    + project: the compose project
    + service: the hub's compose service
    + image: the new hub image
    + content: the compose file's content (what ``ComposeProject`` compares with)
    + data_path: where the hub's state volume is mounted in its container
    + database: the SQLite file's name in that volume
    + config: the hub's configuration file in the image (upgrade-db reads the database URL there)
    + health_url: the hub's health URL inside its container
    + rollback_file: where the override file of a rollback is written on the host
    + wait: seconds the new hub may take to answer

    **Example:**

    .. code:: python

        hub_database.upgraded(
            name="Upgrade the hub's database to the new hub image",
            compose_file="/opt/labhub/compose.yaml",
            project="labhub",
            service="hub",
            image="labhub/hub:4bd2c1a9e0f1",
            content=compose_yaml,
            data_path="/srv/jupyterhub/data",
            database="jupyterhub.sqlite",
            config="/usr/local/lib/labhub/jupyterhub_config.py",
            health_url="http://127.0.0.1:8000/hub/health",
            rollback_file="/var/lib/labhub/hub-rollback.yaml",
        )
    """
    services = read(host, ComposeProject, compose_file=compose_file, project=project,
                    content=content)
    current = (services.get(service) or {}).get("image")
    if current is None or current == image:
        host.noop(f"the hub runs {image}" if current else "no hub to upgrade yet")
        return
    host.log(f"hub: upgrading from {current} to {image}: its database is copied, then "
             "upgraded by jupyterhub upgrade-db; on failure the hub goes back to "
             f"{current}")
    rollback = yaml.safe_dump({"services": {service: {"image": current}}})
    yield reported(script_command(
        UPGRADE_SCRIPT, compose_file, project, service, current, data_path, database, config,
        health_url, str(int(wait)), rollback_file, rollback), _report)
