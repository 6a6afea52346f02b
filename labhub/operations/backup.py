"""
Backups and restores with labhub's backup program on the server (``files/backup/labhub-backup``,
settings in ``labhub.backup``). Each runs when asked: a backup is never "already there".
"""

from __future__ import annotations

import re
import shlex

from pyinfra.api import operation

from labhub import backup
from labhub.commands import command_line, reported, script_command

SAVED_RE = re.compile(r"snapshot ([0-9a-f]{8,64}) saved")


def _report_backup(host, status: bool, output) -> None:
    for line in output.stdout_lines + output.stderr_lines:
        if match := SAVED_RE.search(line):
            host.log(f"backup saved as snapshot {match.group(1)}")
    if not status:
        host.log(
            "labhub: the backup failed (see restic's output above); the repository keeps "
            "its earlier snapshots"
        )


def _report_restore(host, status: bool, output) -> None:
    if not status:
        host.log("labhub: the restore failed (see above)")


def _report_check(host, status: bool, output) -> None:
    for line in output.stderr_lines:
        if line.startswith("labhub-backup: "):
            host.log(line)


@operation(is_idempotent=False)
def restore_checked(snapshot: str, config_dir: str):
    """
    Check what restoring a snapshot would create (accounts and their uids, groups and their
    gids, homes, ``/etc/labhub``, ``hub_dir``, the compose project's volumes) against the server,
    before any change: the backup program's ``check``, run from labhub's copy of it with its
    settings in ``config_dir`` and restic from Debian's package unpacked (not installed) when
    the server has none. Fails naming each clash and its way out. ``config_dir`` is removed once
    it ran, whatever the outcome.

    + snapshot: a snapshot ID, or ``latest``
    + config_dir: the folder of the check's ``backup.env``, password and SSH key

    **Example:**

    .. code:: python

        backup.restore_checked(
            name="Check the snapshot against this server",
            snapshot="latest",
            config_dir="/run/labhub-restore-check",
        )
    """
    config = f"{config_dir}/backup.env"
    yield reported(
        f"export LABHUB_BACKUP_CONFIG={command_line(config)}\n"
        + script_command(backup.PROGRAM_SOURCE, "check", snapshot)
        + f"labhub_status=$?; rm -rf {command_line(config_dir)}; exit $labhub_status\n",
        _report_check,
    )


@operation(is_idempotent=False)
def backed_up():
    """
    Back up the server now (what the timer runs), then apply the retention.

    **Example:**

    .. code:: python

        backup.backed_up(name="Back up the hub now")
    """
    yield reported(shlex.join([backup.PROGRAM, "run"]), _report_backup)


@operation(is_idempotent=False)
def restored(snapshot: str):
    """
    Restore a snapshot onto this server: accounts with their uids and groups, homes with their
    owners, ``/etc/labhub``, ``hub_dir`` and the compose project's volumes (the hub's state, the
    registry's images). Refused by the program when the server already has a hub's state.

    + snapshot: a snapshot ID, or ``latest``

    **Example:**

    .. code:: python

        backup.restored(name="Restore the latest backup", snapshot="latest")
    """
    yield reported(shlex.join([backup.PROGRAM, "restore", snapshot]), _report_restore)
