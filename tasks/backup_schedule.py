"""
Backups set up and scheduled (included by deploy.py when backup_repository is set, and by
tasks/backup.py and tasks/restore.py): restic and the sqlite3 shell, the repository's password
(and SSH key) root only, labhub's backup program and its settings, and a systemd timer at
backup_schedule. See labhub/backup.py for the files on the server.

    pyinfra inventory.py tasks/backup_schedule.py
"""

from io import StringIO

from pyinfra import host
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.server import Which
from pyinfra.operations import apt, files, systemd
from pyinfra.operations.util import any_changed

from labhub import backup
from labhub.facts.services import CalendarProblem
from labhub.operations import secret_files
from labhub.settings import get_settings

settings = get_settings(host)
if settings.backup_repository is None:
    raise OperationError(
        f"{host.name}: backup_repository: not set: give the restic repository "
        "backups go to (a folder on the server, or sftp:user@host:/path...)"
    )
# What only the server can tell, refused before any change: the program the repository is
# reached through, and backup_schedule as this server's systemd reads it.
problems = []
tool = backup.backend_tool(settings.backup_repository)
if tool and not host.get_fact(Which, command=tool):
    problems.append(
        f"backup_repository: {settings.backup_repository!r} is reached through "
        f"{tool}, which this server does not have: install it (labhub installs "
        "restic only)"
    )
if settings.backup_schedule is not None:
    calendar_problem = host.get_fact(CalendarProblem, event=settings.backup_schedule)
    if calendar_problem:
        problems.append(
            f"backup_schedule: {settings.backup_schedule!r} is not a calendar event "
            f"this server's systemd reads ({calendar_problem})"
        )
if problems:
    raise OperationError(f"{host.name}: " + "; ".join(problems))

apt.packages(
    name="Install restic and sqlite3 (backups; online copies of the hub's database)",
    packages=backup.PACKAGES,
    # restic recommends its HTML documentation (sphinx, fonts) and fuse (restic mount).
    no_recommends=True,
    update=True,
    cache_time=24 * 3600,
)
files.directory(
    name="Create /etc/labhub", path="/etc/labhub", user="root", group="root", mode="0755"
)
files.directory(
    name=f"Create {backup.CONFIG_DIR} (root only)",
    path=backup.CONFIG_DIR,
    user="root",
    group="root",
    mode="0700",
)
secret_files.put(
    name=f"The backup repository's password: {backup.PASSWORD_FILE}",
    src=settings.backup_password_file,
    dest=backup.PASSWORD_FILE,
)
if settings.backup_ssh_key:
    secret_files.put(
        name=f"The backup repository's SSH key: {backup.SSH_KEY_FILE}",
        src=settings.backup_ssh_key,
        dest=backup.SSH_KEY_FILE,
    )
else:
    files.file(
        name=f"No SSH key for the backup repository: {backup.SSH_KEY_FILE}",
        path=backup.SSH_KEY_FILE,
        present=False,
    )
files.put(
    name=f"Write the backup settings: {backup.ENV_FILE}",
    src=StringIO(backup.env_text(settings)),
    dest=backup.ENV_FILE,
    user="root",
    group="root",
    mode="0600",
)
files.put(
    name=f"Install the backup program: {backup.PROGRAM}",
    src=str(backup.PROGRAM_SOURCE),
    dest=backup.PROGRAM,
    user="root",
    group="root",
    mode="0755",
)
service = files.put(
    name=f"Install {backup.SERVICE}",
    src=str(backup.SERVICE_SOURCE),
    dest=backup.SERVICE_FILE,
    mode="0644",
)
if settings.backup_schedule is not None:
    timer = files.put(
        name=f"Schedule backups: {backup.TIMER} at {settings.backup_schedule}",
        src=StringIO(backup.timer_text(settings)),
        dest=backup.TIMER_FILE,
        mode="0644",
    )
    systemd.daemon_reload(
        name="Reload systemd (backup units changed)", _if=any_changed(service, timer)
    )
    systemd.service(name=f"Start {backup.TIMER}", service=backup.TIMER, running=True, enabled=True)
    systemd.service(
        name=f"Restart {backup.TIMER} on its new schedule",
        service=backup.TIMER,
        restarted=True,
        _if=timer.did_change,
    )
else:
    systemd.service(
        name=f"Stop {backup.TIMER} (backup_schedule is None)",
        service=backup.TIMER,
        running=False,
        enabled=False,
    )
    files.file(name=f"Remove {backup.TIMER_FILE}", path=backup.TIMER_FILE, present=False)
