"""
Bring a backup onto a fresh lab server: Docker, then restic restores the accounts with their
uids and groups, the homes with their owners, /etc/labhub, hub_dir and the hub's and registry's
volumes. The normal deploy then converges the rest: the hub starts with its users and passwords.

    pyinfra inventory.py tasks/restore.py                                  # latest snapshot
    pyinfra inventory.py tasks/restore.py --data restore_snapshot=4bd2c1a9 # another one
    pyinfra inventory.py deploy.py

The deploy is a second run: pyinfra plans a run's operations from the facts read before it, and
the accounts and files a restore brings are only there after it.

Refused before any change when the server already has a hub (a compose project in hub_dir): a
restore never overwrites a hub's state.
"""

from pyinfra import host, local
from pyinfra.api.exceptions import OperationError

from labhub.facts.folders import Folders
from labhub.operations import backup
from labhub.settings import get_settings

settings = get_settings(host)
folder = host.get_fact(Folders, paths=[settings.hub_dir]).get(settings.hub_dir) or {}
if folder.get("entries"):
    raise OperationError(
        f"{host.name}: {settings.hub_dir} (hub_dir) is not empty: this server has a hub already, "
        "and a restore is for a fresh server; labhub does not overwrite a hub's state"
    )

local.include("tasks/docker.py")
local.include("tasks/backup_schedule.py")
backup.restored(
    name=f"Restore snapshot {settings.restore_snapshot}", snapshot=settings.restore_snapshot
)
