"""
Bring a backup onto a fresh lab server: Docker, then restic restores the accounts with their
uids and groups, the homes with their owners, /etc/labhub, hub_dir and the hub's and registry's
volumes. The normal deploy then converges the rest: the hub starts with its users and passwords.

    pyinfra inventory.py tasks/restore.py                                  # latest snapshot
    pyinfra inventory.py tasks/restore.py --data restore_snapshot=4bd2c1a9 # another one
    pyinfra inventory.py deploy.py

The deploy is a second run: pyinfra plans a run's operations from the facts read before it, and
the accounts and files a restore brings are only there after it.

All or nothing: refused before any change when hub_dir is not free (stack.hub_dir_state: a hub
is there, or things that are not labhub's), and when anything the snapshot brings clashes with
the server: an account or group holding one of its uids, gids or names otherwise, a home, files
in /etc/labhub, the hub's volumes. The snapshot is read for that by the backup program's check,
with its settings in a folder of its own that goes once it ran, and restic unpacked, not
installed: nothing is installed or written in /etc/labhub before the restore is known to go
through. Clashes are refused, not remapped: a uid another account holds here would give that
account the restored files on the shares and in the labs' volumes, which a restore cannot see.
"""

from io import StringIO

from pyinfra import host, local
from pyinfra.api.exceptions import OperationError
from pyinfra.operations import files

from labhub import backup as backup_files
from labhub import stack
from labhub.facts.tree import files_at, folder_of
from labhub.operations import backup, secret_files
from labhub.settings import get_settings

settings = get_settings(host)
if settings.backup_repository is None:
    raise OperationError(
        f"{host.name}: backup_repository: not set: give the restic repository to restore from"
    )
problems = stack.hub_dir_problems(
    settings, folder_of(files_at(host, settings.hub_dir), settings.hub_dir), restore=True
)
if problems:
    raise OperationError(f"{host.name}: " + "; ".join(problems))

check_dir = backup_files.CHECK_DIR
files.directory(
    name=f"Create {check_dir} (root only; the restore's check reads its settings there)",
    path=check_dir,
    user="root",
    group="root",
    mode="0700",
)
secret_files.put(
    name="The backup repository's password, for the check",
    src=settings.backup_password_file,
    dest=f"{check_dir}/password",
)
if settings.backup_ssh_key:
    secret_files.put(
        name="The backup repository's SSH key, for the check",
        src=settings.backup_ssh_key,
        dest=f"{check_dir}/ssh_key",
    )
files.put(
    name="The backup settings, for the check",
    src=StringIO(backup_files.env_text(settings, check_dir)),
    dest=f"{check_dir}/backup.env",
    user="root",
    group="root",
    mode="0600",
)
backup.restore_checked(
    name=f"Check snapshot {settings.restore_snapshot} against this server (before any change)",
    snapshot=settings.restore_snapshot,
    config_dir=check_dir,
)

local.include("tasks/docker.py")
local.include("tasks/backup_schedule.py")
backup.restored(
    name=f"Restore snapshot {settings.restore_snapshot}", snapshot=settings.restore_snapshot
)
