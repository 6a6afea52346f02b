"""
Back up the lab server now, with restic, to backup_repository (set up and scheduled as
tasks/backup_schedule.py does), then apply the retention (backup_keep):

    pyinfra inventory.py tasks/backup.py

A backup holds the hub's state (its compose volumes: the database by SQLite's online backup, the
FirstUse passwords, the cookie secret, and any other service's data volume), hub_dir,
/etc/labhub, the hub users' account records (names, uids, groups), and with backup_homes and
backup_registry their homes and the registry's images.
"""

from pyinfra import local

from labhub.operations import backup

local.include("tasks/backup_schedule.py")
backup.backed_up(name="Back up the lab server now")
