"""
CIFS network shares: cifs-utils, each share's credentials (root only), its mount point and one
fstab line with a systemd automount, the host groups that select shares, and the shares mounted.
A share removed from the settings loses its fstab line, credentials and mount; its mount point
stays. A share whose server cannot be reached does not stop the deploy: its mount shows as an
error in the run's results, naming the share. A mounted share whose options change keeps its
old options until it is mounted again (reboot, or ``umount``): labs may hold it open.

    pyinfra inventory.py tasks/shares.py
"""

from pyinfra import host
from pyinfra.api.exceptions import OperationError
from pyinfra.operations import files
from pyinfra.operations.util import any_changed

from labhub import accounts, shares
from labhub.facts import read
from labhub.facts.accounts import local_accounts, local_groups
from labhub.facts.folders import Folders
from labhub.facts.fstab import FstabLines
from labhub.facts.tree import files_at
from labhub.operations import accounts as account_ops
from labhub.operations import fstab, packages, secret_files, tree
from labhub.settings import get_settings

settings = get_settings(host)
mountpoints = {share.mountpoint for share in settings.shares}
entries = shares.parse_fstab(read(host, FstabLines, path=shares.FSTAB))
# Refused before any change, like a bad setting: what labhub did not make stays as it is. Only
# new mount points are looked into: a share's own automount would mount on first access.
new = shares.new_mountpoints(settings.shares, entries)
problems = shares.mountpoint_problems(
    settings.shares, entries, host.get_fact(Folders, paths=new) if new else {}
)
ids = accounts.lab_ids(host)
problems += accounts.account_problems(settings, local_accounts(host), local_groups(host), ids)
if problems:
    raise OperationError(f"{host.name}: " + "; ".join(problems))
# Lines labhub wrote (their credentials are labhub's) for shares no longer in the settings.
removed = [
    entry for entry in entries if entry.is_labhub_share and entry.mountpoint not in mountpoints
]

if settings.shares:
    packages.installed(
        name="Install cifs-utils (mount.cifs)",
        packages=["cifs-utils"],
        update=True,
        cache_time=24 * 3600,
    )

# /etc/labhub and the credentials in it are read in one command (labhub.facts.tree.files_at).
tree.written(name="Create /etc/labhub", files={}, folders=[shares.CONFIG_DIR], folder_mode="0755")
tree.written(
    name=f"Create {shares.CREDENTIALS_DIR} (root only)",
    files={},
    folders=[shares.CREDENTIALS_DIR],
    folder_mode="0700",
)

fstab_changes = []
for share in settings.shares:
    secret_files.put(
        name=f"Credentials of share {share.name}: {shares.credentials_path(share.name)}",
        src=share.credentials,
        dest=shares.credentials_path(share.name),
        user="root",
        group="root",
        mode="0600",
    )
    fstab.mount_point(
        name=f"Mount point of share {share.name}: {share.mountpoint}", path=share.mountpoint
    )
    line = shares.fstab_line(share)
    fstab_changes.append(fstab.entry(name=f"fstab: {line}", mountpoint=share.mountpoint, line=line))

for entry in removed:
    fstab.unmounted(name=f"Unmount removed share at {entry.mountpoint}", path=entry.mountpoint)
    fstab_changes.append(
        fstab.entry(
            name=f"fstab: remove the line of removed share at {entry.mountpoint}",
            mountpoint=entry.mountpoint,
            line=None,
        )
    )

wanted_credentials = {shares.credentials_path(share.name) for share in settings.shares}
credentials = files_at(host, shares.CONFIG_DIR)
for path in sorted(credentials):
    if (
        path.startswith(f"{shares.CREDENTIALS_DIR}/")
        and credentials[path]["kind"] == "file"
        and path not in wanted_credentials
    ):
        files.file(name=f"Remove credentials of a removed share: {path}", path=path, present=False)

if fstab_changes:
    fstab.units_reloaded(
        name="Reload systemd's fstab units and start the share automounts",
        _if=any_changed(*fstab_changes),
    )

# Groups that give some users a share (the others are declared in tasks/users.py).
managed = sorted(
    set(accounts.labhub_accounts(local_accounts(host)))
    | {settings.account_name(user.name) for user in settings.hub_users}
)
for group in dict.fromkeys(g for share in settings.shares for g in share.groups or ()):
    members = accounts.group_members(settings, group)
    account_ops.group_members(
        name=f"Group {group}: {', '.join(members)}",
        group=group,
        members=members,
        managed=managed,
        gid=ids.gids[group] if ids else None,
    )

# Last, so that an unreachable share server is reported at the end of the shares: the error is
# ignored (the deploy goes on) and never counts as a change; the next run tries again.
for share in settings.shares:
    fstab.mounted(
        name=f"Mount share {share.name} at {share.mountpoint}",
        path=share.mountpoint,
        fstype=None,
        failure=(
            f"labhub: share {share.name} ({share.source}) is not mounted at {share.mountpoint}: "
            "mounting it failed (see above); the deploy goes on without it, and it is mounted "
            "on first access once its server answers"
        ),
        _ignore_errors=True,
    )
