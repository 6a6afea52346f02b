"""
Backups with restic, as pure functions of the settings: where labhub keeps the backup's files on
the server, the settings file the backup program reads, and its timer's schedule. The same
answers in a dry run and a real one.

On the server::

    /etc/labhub/backup/                  root only: what the backup program reads
        backup.env                       the settings (KEY='value' lines, shell-quoted)
        password                         the repository's password (backup_password_file)
        ssh_key                          the key an sftp repository is reached with
        known_hosts                      that repository's host key, recorded at first contact
    /usr/local/sbin/labhub-backup        the backup program (files/backup/labhub-backup)
    /run/labhub-restore-check/           while a restore is checked: its own backup.env,
                                         password, ssh_key (then removed)
    /etc/systemd/system/labhub-backup.{service,timer}
"""

from __future__ import annotations

import configparser
import io
import shlex

from labhub import stack
from labhub.settings import ROOT, Settings

CONFIG_DIR = "/etc/labhub/backup"
ENV_FILE = f"{CONFIG_DIR}/backup.env"
PASSWORD_FILE = f"{CONFIG_DIR}/password"
SSH_KEY_FILE = f"{CONFIG_DIR}/ssh_key"
# The same files for the check before a restore, root only and gone once it ran: nothing of the
# backup is on the server before the restore is known to go through (tasks/restore.py).
CHECK_DIR = "/run/labhub-restore-check"
PROGRAM = "/usr/local/sbin/labhub-backup"
PROGRAM_SOURCE = ROOT / "files" / "backup" / "labhub-backup"
SERVICE = "labhub-backup.service"
TIMER = "labhub-backup.timer"
SERVICE_FILE = f"/etc/systemd/system/{SERVICE}"
TIMER_FILE = f"/etc/systemd/system/{TIMER}"
SERVICE_SOURCE = ROOT / "files" / "backup" / SERVICE
# Debian's packages: the backup tool, and the sqlite3 shell for online copies of SQLite files.
PACKAGES = ["restic", "sqlite3"]
# The program restic runs on the server for a repository, by the repository's prefix (the
# others it reaches itself). labhub does not install them: their absence is refused before any
# change.
BACKEND_TOOLS = {"sftp:": "ssh", "rclone:": "rclone"}
# restic's retention options, by the names backup_keep uses.
KEEP_OPTIONS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


def backend_tool(repository: str) -> str | None:
    """The program the server needs for a repository beside restic, or None."""
    return next(
        (tool for prefix, tool in BACKEND_TOOLS.items() if repository.startswith(prefix)), None
    )


def env_text(settings: Settings, config_dir: str = CONFIG_DIR) -> str:
    """The backup program's settings, one ``KEY='value'`` line each (quoted by shlex), reading
    its password and keys in ``config_dir`` (another one for the check before a restore)."""
    assert settings.backup_repository is not None
    keep = " ".join(f"--keep-{name} {count}" for name, count in settings.backup_keep.items())
    project = stack.Stack.from_settings(settings)
    values = {
        "RESTIC_REPOSITORY": settings.backup_repository,
        "RESTIC_PASSWORD_FILE": f"{config_dir}/password",
        "LABHUB_SSH_KEY": f"{config_dir}/ssh_key" if settings.backup_ssh_key else "",
        "LABHUB_KNOWN_HOSTS": f"{config_dir}/known_hosts",
        "LABHUB_HUB_DIR": settings.hub_dir,
        # The rule of stack.hub_dir_state: a hub is there when its compose file is.
        "LABHUB_COMPOSE_FILE": project.compose_file,
        "LABHUB_STACK_FOLDERS": " ".join(sorted(stack.STACK_FOLDERS)),
        "LABHUB_PROJECT": project.project,
        "LABHUB_REGISTRY_VOLUME": stack.REGISTRY_VOLUME,
        "LABHUB_BACKUP_HOMES": "1" if settings.backup_homes else "",
        "LABHUB_BACKUP_REGISTRY": "1" if settings.backup_registry else "",
        "LABHUB_KEEP": keep,
    }
    return "# labhub's backup settings, written by tasks/backup.py from the settings.\n" + "".join(
        f"{key}={shlex.quote(value)}\n" for key, value in values.items()
    )


def timer_text(settings: Settings) -> str:
    """The timer that runs the backup at ``backup_schedule`` (an ini file, by configparser)."""
    assert settings.backup_schedule is not None
    timer = configparser.ConfigParser(interpolation=None)
    timer.optionxform = str
    timer["Unit"] = {"Description": "labhub backup (backup_schedule)"}
    timer["Timer"] = {
        "OnCalendar": settings.backup_schedule,
        # A server that was off at the scheduled time backs up when it is back.
        "Persistent": "true",
        "Unit": SERVICE,
    }
    timer["Install"] = {"WantedBy": "timers.target"}
    out = io.StringIO()
    out.write("# Written by labhub (tasks/backup.py) from backup_schedule.\n")
    timer.write(out, space_around_delimiters=False)
    return out.getvalue()
