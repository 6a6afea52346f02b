"""
What ``tasks/status.py`` finds, as pure functions of the settings and what the facts read: each
finding is ``(what was found, the problem or None)``, in the order the admin reads them. The
same answers for the same facts, whatever host or clock they were read on (``now`` is given).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from labhub import accounts, backup, logins
from labhub.registry import policy
from labhub.settings import Settings, local_host, url_host
from labhub.shares import MOUNT_WAIT
from labhub.stack import Stack

Finding = tuple[str, str | None]

# A file system this full (percent used) is a problem: labs, pushes and the hub's database fail
# when it fills up.
DISK_FULL_PERCENT = 90
# A certificate with fewer days left is a problem: the proxy renews an ACME one a month ahead,
# and a certificate of the lab's own needs renewing by hand.
CERTIFICATE_DAYS = 14
# The time a scheduled backup may take before its snapshot counts as late (or the schedule's
# interval, when shorter): restic names a snapshot by when the backup started.
BACKUP_GRACE = timedelta(hours=1)

size = policy.human_size


def hub_url(settings: Settings) -> str:
    """The hub as users open it (through the proxy, with TLS), asked from the server itself."""
    if settings.tls == "off":
        return f"http://{url_host(local_host(settings.hub_bind))}:{settings.hub_port}"
    return settings.hub_url


def hub_curl_args(settings: Settings) -> tuple[str, ...]:
    """curl's arguments for ``hub_url`` from the server: the hub's name resolved to the proxy,
    any certificate accepted (whether it answers; the deploy's check is whose certificate)."""
    if settings.tls == "off":
        return ()
    return (
        "--insecure",
        "--resolve",
        f"{settings.hub_domain}:{settings.https_port}:{local_host(settings.hub_bind)}",
    )


def hub_accounts(settings: Settings) -> dict[str, str]:
    """Each hub user's host account."""
    return {user.name: settings.account_name(user.name) for user in settings.hub_users}


def homes(settings: Settings) -> dict[str, str]:
    """Each hub user's home on the host."""
    return {user: accounts.home_of(account) for user, account in hub_accounts(settings).items()}


def service(
    found: dict, name: str, container_prefix: str, url: str, version: str | None
) -> Finding:
    """A service of the stack (``name`` as ``LabStatus`` asked it): its version or image, since
    when its container runs, whether it answers."""
    container = next(
        (
            c
            for container_name, c in sorted(found["containers"].items())
            if container_name.startswith(container_prefix)
        ),
        None,
    )
    code = found["http"].get(name, 0)
    since = (
        f", up since {container['started']}"
        if container and container["state"] == "running"
        else ""
    )
    described = f"{name}: {version or (container or {}).get('image') or 'no container'}{since}"
    if code == 200:
        return (f"{described}, answers at {url}", None)
    answer = f"answers HTTP {code}" if code else "does not answer"
    state = container["state"] if container else "no container"
    return (f"{described}: {answer} at {url}", f"{name} {answer} at {url} (its container: {state})")


def services(settings: Settings, stack: Stack, found: dict) -> list[Finding]:
    """The hub and the registry."""
    version = f"JupyterHub {found['hub_version']}" if found["hub_version"] else None
    return [
        service(found, "hub", f"{stack.project}-{stack.hub_service}-", hub_url(settings), version),
        service(
            found,
            "registry",
            f"{stack.project}-{stack.registry_service}-",
            stack.registry_url,
            settings.registry_image,
        ),
    ]


def certificate(settings: Settings, found: dict, now: datetime) -> list[Finding]:
    """The days the certificate the proxy serves has left (with tls)."""
    if settings.tls == "off":
        return []
    expires = found["certificate_expires"]
    if expires is None:
        return [
            (
                f"certificate of {settings.hub_domain}: none served",
                f"the proxy serves no certificate for {settings.hub_domain}",
            )
        ]
    left = datetime.fromisoformat(expires) - now
    hours = int(left.total_seconds() // 3600)
    described = f"certificate of {settings.hub_domain} ({settings.tls}): " + (
        f"{left.days} days left" if left.days >= 2 else f"{hours} hours left"
    )
    # The local CA issues for hours and renews them itself: only an expired one is wrong.
    floor = 0 if settings.tls == "internal" else CERTIFICATE_DAYS
    problem = None
    if left.days < floor or hours < 0:
        problem = (
            f"{described}: renew tls_cert"
            if settings.tls == "files"
            else f"{described}: the proxy has not renewed it (see its log)"
        )
    return [(described, problem)]


def unclaimed(settings: Settings, user: str, seen_logins: dict | None, now: datetime) -> str:
    """What a hub user with no password yet needs to set one: the invitation and its time."""
    if settings.first_login == "open":
        return "no password yet (the first login sets it)"
    if seen_logins is None:
        return "no password yet (its invitation link sets it)"
    entry = seen_logins["invites"].get(user)
    if not entry:
        return "no password yet, and no invitation (deploy to make one)"
    if logins.expired(entry, now):
        return (
            f"no password yet, its invitation expired on {entry.get('expires')} "
            f"(--data reissue_invites='[\"{user}\"]' makes a new one)"
        )
    return f"no password yet, invited until {entry['expires']}"


def lockouts(settings: Settings, seen_logins: dict | None, now: datetime) -> list[Finding]:
    """The names whose logins wait after failed ones, until when."""
    findings: list[Finding] = []
    failures = (seen_logins or {}).get("state", {}).get("failures", {})
    for user, failed in sorted(failures.items()):
        until = logins.locked_until(failed, settings.failed_logins, settings.failed_login_wait)
        if until is not None and until > now.timestamp():
            findings.append(
                (
                    f"hub user {user}: logins refused until "
                    f"{logins.format_time(datetime.fromtimestamp(until, UTC))}, after "
                    f"{failed['count']} failed logins in a row (the last from "
                    f"{failed.get('address') or 'an unknown address'})",
                    None,
                )
            )
    return findings


def hub_users(
    settings: Settings, found: dict, local: dict, now: datetime, seen_logins: dict | None = None
) -> list[Finding]:
    """Each hub user's account (active or locked), password (or invitation) and running lab;
    the accounts of former hub users labhub keeps."""
    today = int(now.timestamp() // 86400)
    wanted = hub_accounts(settings)
    findings: list[Finding] = []
    for user, account in wanted.items():
        info = local.get(account)
        if found["passwords"] is None:
            password = "password unknown (the hub's password file could not be read)"
        elif user in found["passwords"]:
            password = "password set"
        else:
            password = unclaimed(settings, user, seen_logins, now)
        if info is None:
            findings.append(
                (
                    f"hub user {user}: no account {account}",
                    f"hub user {user}: there is no host account {account}: deploy",
                )
            )
        elif (info["expire"] is not None and info["expire"] <= today) or info[
            "shell"
        ] == accounts.LOCKED_SHELL:
            findings.append(
                (
                    f"hub user {user}: account {account} locked, {password}",
                    f"hub user {user}: account {account} is locked (expired or no "
                    f"login shell) although {user} is in hub_users: labs run as it "
                    "cannot start",
                )
            )
        else:
            findings.append((f"hub user {user}: account {account} active, {password}", None))
        lab = found["containers"].get(f"jupyter-{user}")
        if lab and lab["state"] == "running":
            findings.append(
                (f"lab of {user}: running since {lab['started']} ({lab['image']})", None)
            )
        for lab in found.get("swarm_labs") or []:
            if lab["user"] == user and lab["state"] == "running":
                findings.append(
                    (
                        f"lab of {user}: running on node {lab['node'] or lab['node_id']} since "
                        f"{lab['since']} ({lab['image']}, service {lab['service']})",
                        None,
                    )
                )
    for account, user in sorted(accounts.labhub_accounts(local).items()):
        if account not in wanted.values():
            findings.append(
                (
                    f"former hub user {user}: account {account} kept "
                    f"({'locked' if local[account]['expire'] else 'not locked yet'})",
                    None,
                )
            )
    return findings


def shares(settings: Settings, mounts: dict) -> list[Finding]:
    """Each share: mounted, its automount not mounting it once entered (``Mounts`` with
    ``enter``: its server down), or nothing at its mount point."""
    findings: list[Finding] = []
    for share in settings.shares:
        types = mounts.get(share.mountpoint, {}).get("types", [])
        if [fstype for fstype in types if fstype != "autofs"]:
            findings.append((f"share {share.name}: mounted at {share.mountpoint}", None))
        elif "autofs" in types:
            findings.append(
                (
                    f"share {share.name}: not mounted at {share.mountpoint}",
                    f"share {share.name}: its automount at {share.mountpoint} did not mount "
                    f"{share.source} within {MOUNT_WAIT} s (its server does not "
                    "answer?): labs start without it until it does",
                )
            )
        else:
            findings.append(
                (
                    f"share {share.name}: not mounted at {share.mountpoint}",
                    f"share {share.name}: nothing is mounted at {share.mountpoint}, "
                    "not even its automount: deploy, or start it with systemctl",
                )
            )
    return findings


def disks(settings: Settings, found: dict) -> list[Finding]:
    """The disks of the homes, Docker's data and the registry's data; each home's size."""
    findings: list[Finding] = []
    places = {
        accounts.HOME_BASE: "the homes",
        found["docker_root"]: "Docker's data",
        found["registry_data"]: "the registry's data",
    }
    for path, label in places.items():
        usage = found["df"].get(path)
        if not path or usage is None:
            continue
        percent = round(100 * usage["used"] / usage["size"]) if usage["size"] else 100
        measured = found["du"].get(path)
        described = f"disk of {label} ({path}): {percent}% used, {size(usage['avail'])} free" + (
            f", {label} take {size(measured)}" if measured is not None else ""
        )
        findings.append(
            (
                described,
                f"{described}: the disk is nearly full" if percent >= DISK_FULL_PERCENT else None,
            )
        )
    for user, home in homes(settings).items():
        if home in found["du"]:
            findings.append((f"home of {user} ({home}): {size(found['du'][home])}", None))
    return findings


def pruning(
    settings: Settings, stack: Stack, contents: dict | None, containers: list[dict], now: datetime
) -> list[Finding]:
    """What registry pruning would free, from the registry's contents (none: not read) and the
    images the host's containers use."""
    if not contents or contents.get("error"):
        return []
    plan = policy.plan_for(settings, contents, containers, stack.registry_major, now)
    return [
        (
            f"registry pruning would free {size(plan.freed_bytes)} "
            f"({len(plan.deletions)} image(s) of {len(plan.rows)} tags)",
            None,
        )
    ]


def ago(delta: timedelta) -> str:
    """A duration as an admin reads it: its two largest units ("1 day 1 hour")."""
    seconds = max(int(delta.total_seconds()), 0)
    parts = []
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, length)
        if count or (unit == "second" and not parts):
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts[:2])


def backup_allowance(elapses: list[str]) -> timedelta | None:
    """How old the last snapshot may be under a schedule, from its next elapses: the longest gap
    between two, and the time a backup may take. None: it elapses once or never."""
    times = [datetime.fromisoformat(elapse) for elapse in elapses]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    if not gaps:
        return None
    return max(gaps) + min(BACKUP_GRACE, max(gaps))


def backups(settings: Settings, found: dict | None, now: datetime) -> list[Finding]:
    """With ``backup_repository``: the repository reached, the last snapshot's time and size
    against ``backup_schedule``, and the backup service's last run."""
    if settings.backup_repository is None or found is None:
        return []
    repository = settings.backup_repository
    if not found["installed"]:
        return [
            (
                f"backups to {repository}: not set up on the server",
                f"backups to {repository}: the backup program {backup.PROGRAM} is not "
                "there: deploy",
            )
        ]
    results: list[Finding] = []
    if not found["repository"]["reached"]:
        results.append(
            (
                f"backup repository {repository}: not reached",
                f"backup repository {repository}: cannot be read ("
                f"{found['repository']['error']}): backups and restores fail",
            )
        )
    else:
        snapshot = found["snapshot"]
        if snapshot is None:
            results.append(
                (
                    f"backup repository {repository}: no snapshot yet",
                    f"backup repository {repository}: has no labhub snapshot: run tasks/backup.py",
                )
            )
        else:
            age = now - datetime.fromisoformat(snapshot["time"])
            described = (
                f"last backup: snapshot {snapshot['id']} of {snapshot['time']} "
                f"({ago(age)} ago)"
                + (f", {size(snapshot['size'])}" if snapshot["size"] is not None else "")
            )
            allowed = (
                backup_allowance(found["elapses"]) if settings.backup_schedule is not None else None
            )
            problem = None
            if allowed is not None and age > allowed:
                problem = (
                    f"{described}: older than backup_schedule "
                    f"({settings.backup_schedule!r}) allows ({ago(allowed)}): see "
                    f"journalctl -u {backup.SERVICE}"
                )
            results.append((described, problem))
    service = found["service"]
    if service["result"] not in ("", "success"):
        exited = f" at {service['exited']}" if service["exited"] else ""
        code = f" (exit status {service['exit_status']})" if service["exit_status"] else ""
        results.append(
            (
                f"backup service {backup.SERVICE}: its last run failed{exited}",
                f"the last backup failed{exited}: {backup.SERVICE} ended with "
                f"{service['result']}{code}: see journalctl -u {backup.SERVICE}",
            )
        )
    elif service["exited"]:
        results.append(
            (
                f"backup service {backup.SERVICE}: its last run succeeded at {service['exited']}",
                None,
            )
        )
    if settings.backup_schedule is not None and found["timer"]["active"] != "active":
        results.append(
            (
                f"backup timer {backup.TIMER}: {found['timer']['active'] or 'unknown'}",
                f"backup timer {backup.TIMER} is {found['timer']['active'] or 'unknown'}: "
                "backups do not run at backup_schedule: deploy",
            )
        )
    return results


def rollback(rolled_back: dict | None) -> list[Finding]:
    """A hub upgrade that failed and was rolled back (the mark ``files/hub-upgrade.sh`` leaves:
    ``at``, ``previous``, ``failed``, ``reason``, ``outcome``), until a deploy runs the hub as
    built: a problem, since the hub runs older files and image than the settings ask."""
    if not rolled_back:
        return []
    described = (
        f"hub upgrade to {rolled_back['failed']} at {rolled_back['at']}: "
        f"{rolled_back['outcome']} ({rolled_back['reason']})"
    )
    now = (
        f"the hub runs its previous image {rolled_back['previous']} with its previous files"
        if rolled_back["outcome"] == "rolled back"
        else "the previous hub did not come back either: see the hub's log"
    )
    return [(described, f"{described}: {now}; fix the cause and deploy again")]


def findings(
    settings: Settings,
    stack: Stack,
    found: dict,
    local: dict,
    mounts: dict,
    contents: dict | None,
    containers: list[dict],
    now: datetime,
    backed_up: dict | None = None,
    rolled_back: dict | None = None,
    seen_logins: dict | None = None,
) -> list[Finding]:
    """
    Everything status reports, in order.

    + found: the ``LabStatus`` fact
    + local: the host's accounts (``local_accounts``)
    + mounts: the ``Mounts`` fact, of the shares' mount points
    + contents: the ``RegistryContents`` fact (None: not read, the registry did not answer)
    + containers: the ``ContainerImages`` fact
    + now: when the facts were read (an aware datetime)
    + backed_up: the ``BackupStatus`` fact (None: not read, no ``backup_repository``)
    + rolled_back: the mark of a hub upgrade that was rolled back (None: none)
    + seen_logins: the ``HubLogins`` fact (None: not read)
    """
    return [
        *services(settings, stack, found),
        *rollback(rolled_back),
        *certificate(settings, found, now),
        *hub_users(settings, found, local, now, seen_logins),
        *lockouts(settings, seen_logins, now),
        *shares(settings, mounts),
        *disks(settings, found),
        *pruning(settings, stack, contents, containers, now),
        *backups(settings, backed_up, now),
    ]
