"""
The hub moved to a new image with its database: its files kept first, JupyterHub's database
upgrade, and the way back, whole, when the new hub does not come up. Reads
``labhub.facts.compose.ComposeProject`` and ``labhub.facts.hub_database.HubRollback``.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from pyinfra import host
from pyinfra.api import operation

from labhub.commands import command_line, reported, script_command, variable
from labhub.facts import read
from labhub.facts.compose import services_of
from labhub.facts.hub_database import HubRollback
from labhub.stack import ROOT, Stack

UPGRADE_SCRIPT = ROOT / "files" / "hub-upgrade.sh"


def _report(host, status: bool, output) -> None:
    for line in output.stderr_lines:
        if line.startswith("labhub: "):
            host.log(line)


def _running(stack: Stack, content: str) -> str | None:
    """The image the hub's container runs, or None when there is no hub yet."""
    return (services_of(host, stack, content).get(stack.hub_service) or {}).get("image")


@operation(is_idempotent=False)
def files_kept(stack: Stack, image: str, content: str, paths: list[str]):
    """
    Before the stack's files change for a hub about to move to a new image: keep them as they
    are (those of ``paths`` that exist, under ``stack.hub_previous_dir`` by their path in
    ``stack.dir``), for ``upgraded`` to put back when the new hub does not come up. Nothing
    happens when the hub's container already runs ``image``, or when there is no hub yet.

    + stack: the compose project
    + image: the new hub image
    + content: the compose file's content (what ``ComposeProject`` compares with)
    + paths: the files under ``stack.dir`` the running stack reads

    **Example:**

    .. code:: python

        hub_database.files_kept(
            name="Keep the stack's files for a failed upgrade to go back to",
            stack=Stack.from_settings(settings),
            image="labhub/hub:4bd2c1a9e0f1",
            content=compose_yaml,
            paths=["/opt/labhub/compose.yaml", "/opt/labhub/hub/settings.json"],
        )
    """
    if _running(stack, content) in (None, image):
        host.noop("no hub upgrade: no files to keep")
        return
    names = [str(PurePosixPath(path).relative_to(stack.dir)) for path in paths]
    kept = stack.hub_previous_dir
    copy = command_line("cp", "-p", "--parents", "--", variable("name"), kept)
    yield (
        f"rm -rf {command_line(kept)} && mkdir -p -m 0700 {command_line(kept)} && "
        f"cd {command_line(stack.dir)} && "
        f'for name in {command_line(*names)}; do [ ! -e "$name" ] || {copy}; done'
    )


@operation(is_idempotent=False)
def upgraded(stack: Stack, image: str, content: str, wait: int = 180):
    """
    Move a running hub to a new image with its database (before ``compose.up``, which would
    otherwise start the new image on the old schema): the hub is stopped, its SQLite database
    copied beside itself (``<database>.before-upgrade``), ``jupyterhub upgrade-db`` run on the
    new image, and the new hub started and asked for its health. When a step fails, the hub goes
    back whole: the database's copy, the stack's files ``files_kept`` kept (the compose file
    naming the previous image, the hub's settings) and the previous image; the mark
    ``stack.hub_rolled_back_file`` says so (``HubRollback``) and the operation fails, saying what
    runs now. Nothing happens when the hub's container already runs ``image`` (the mark of an
    earlier rollback is removed then: the hub runs as the deploy builds it), or when there is no
    hub yet.

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
    current = _running(stack, content)
    if current is None:
        host.noop("no hub to upgrade yet")
        return
    if current == image:
        if read(host, HubRollback, path=stack.hub_rolled_back_file):
            yield command_line("rm", "-f", stack.hub_rolled_back_file)
        else:
            host.noop(f"the hub runs {image}")
        return
    host.log(
        f"hub: upgrading from {current} to {image}: its database is copied, then "
        "upgraded by jupyterhub upgrade-db; on failure the hub goes back to "
        f"{current} with the files from before this run"
    )
    hub = stack.hub
    yield reported(
        script_command(
            UPGRADE_SCRIPT,
            stack.compose_file,
            stack.project,
            stack.hub_service,
            current,
            image,
            hub.data_path,
            hub.database,
            hub.config,
            hub.health_url,
            str(int(wait)),
            stack.dir,
            stack.hub_previous_dir,
            stack.hub_rolled_back_file,
        ),
        _report,
    )
