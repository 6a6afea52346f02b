"""
What an admin checks when something feels wrong, read in a few commands and changing nothing:
the hub and the registry up (and their versions), the days the hub's HTTPS certificate has
left, each hub user's account (active or locked) and whether the user has set a password yet
(if not, until when the invitation is valid), the names whose logins wait after failed ones,
the labs running and since when, the shares mounted, disk usage of the homes, Docker's data and
the registry, what pruning the registry would free, and with ``backup_repository`` the backups:
the repository reached, the last snapshot's time and size against ``backup_schedule``, and the
backup timer's last run.

    pyinfra inventory.py tasks/status.py -y
    pyinfra inventory.py tasks/status.py -y --json     # for scripts: one operation per finding

Every finding is an operation named by what was found; one that is a problem fails (its error
ignored, so that every check runs), and when any did the host is marked failed at the end: the
run ends non-zero, for cron or a monitoring system. In ``--json`` results, a finding's ``error``
lists the hosts it is a problem on, and ``failed_hosts`` the hosts with any problem. What each
finding says is decided in ``labhub.findings``, from the facts read here.
"""

from datetime import UTC, datetime

from pyinfra import host

from labhub import accounts, backup, findings, shares, stack
from labhub.facts import read
from labhub.facts.accounts import local_accounts
from labhub.facts.fstab import Mounts
from labhub.facts.hub_database import HubRollback
from labhub.facts.images import ContainerImages
from labhub.facts.logins import logins_of
from labhub.facts.registry import RegistryContents
from labhub.facts.status import BackupStatus, LabStatus
from labhub.operations import status
from labhub.settings import get_settings, local_host

settings = get_settings(host)
project = stack.Stack.from_settings(settings)
https = settings.tls != "off"
proxy_address = local_host(settings.hub_bind)
seen = read(
    host,
    LabStatus,
    hub_url=findings.hub_url(settings),
    registry_url=project.registry_url,
    project=project.project,
    hub_service=project.hub_service,
    registry_service=project.registry_service,
    registry_data=stack.REGISTRY_DATA_PATH,
    passwords_path=project.hub.passwords_path,
    df_paths=[accounts.HOME_BASE],
    du_paths=sorted(findings.homes(settings).values()),
    hub_curl_args=findings.hub_curl_args(settings),
    tls_address=f"{proxy_address}:{settings.https_port}" if https else None,
    tls_name=settings.hub_domain if https else None,
)
local = local_accounts(host)
# Each share entered first (its automount tried, a few seconds at most), as a lab start does.
mounts = read(
    host,
    Mounts,
    paths=sorted(share.mountpoint for share in settings.shares),
    enter=shares.MOUNT_WAIT,
)
# The registry is read only when it answers, and the images in use only when it could be.
contents = (
    host.get_fact(RegistryContents, url=project.registry_url)
    if seen["http"].get("registry") == 200
    else None
)
containers = host.get_fact(ContainerImages) or [] if contents and not contents.get("error") else []

backed_up = (
    host.get_fact(
        BackupStatus,
        program=backup.PROGRAM,
        service=backup.SERVICE,
        timer=backup.TIMER,
        schedule=settings.backup_schedule,
    )
    if settings.backup_repository is not None
    else None
)

# Who gets in: invitations of users with no password yet, names whose logins wait.
seen_logins = logins_of(host, project)

# A failed hub upgrade leaves its mark (files/hub-upgrade.sh) until a later deploy succeeds.
rolled_back = read(host, HubRollback, path=project.hub_rolled_back_file)

found = findings.findings(
    settings,
    project,
    seen,
    local,
    mounts,
    contents,
    containers,
    datetime.now(UTC),
    backed_up,
    rolled_back,
    seen_logins=seen_logins,
)
problems = [problem for _, problem in found if problem]
for description, problem in found:
    host.log(("PROBLEM " if problem else "ok      ") + description)
    status.check(name=description, problem=problem, _ignore_errors=True)
status.verdict(
    name=f"labhub status: {len(problems)} problem(s)" if problems else "labhub status: healthy",
    problems=problems,
)
