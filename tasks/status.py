"""
What an admin checks when something feels wrong, read in a few commands and changing nothing:
the hub and the registry up (and their versions), the days the hub's HTTPS certificate has
left, each hub user's account (active or locked) and whether the user has set a password yet,
the labs running and since when, the shares mounted, disk usage of the homes, Docker's data and
the registry, and what pruning the registry would free.

    pyinfra inventory.py tasks/status.py -y
    pyinfra inventory.py tasks/status.py -y --json     # for scripts: one operation per finding

Every finding is an operation named by what was found; one that is a problem fails (its error
ignored, so that every check runs), and when any did the host is marked failed at the end: the
run ends non-zero, for cron or a monitoring system. In ``--json`` results, a finding's ``error``
lists the hosts it is a problem on, and ``failed_hosts`` the hosts with any problem.
"""

import time
from datetime import datetime, timezone

from pyinfra import host

from labhub import accounts, stack
from labhub.facts import read
from labhub.facts.accounts import local_accounts
from labhub.facts.fstab import Mounts
from labhub.facts.images import ContainerImages
from labhub.facts.registry import RegistryContents
from labhub.facts.status import LabStatus
from labhub.operations import status
from labhub.registry import policy
from labhub.settings import get_settings, local_host, url_host

# A file system this full (percent used) is a problem: labs, pushes and the hub's database fail
# when it fills up.
DISK_FULL_PERCENT = 90
# A certificate with fewer days left is a problem: the proxy renews an ACME one a month ahead,
# and a certificate of the lab's own needs renewing by hand.
CERTIFICATE_DAYS = 14

settings = get_settings(host)
project = stack.Stack.from_settings(settings)
hub_accounts = {user.name: settings.account_name(user.name) for user in settings.hub_users}
homes = {user: accounts.home_of(account) for user, account in hub_accounts.items()}
https = settings.tls != "off"
proxy_address = local_host(settings.hub_bind)
# The hub as users open it, through the proxy, asked from the server itself: whether it answers
# (the deploy's health check is the one that checks whose certificate it is).
hub_url = settings.hub_url if https else f"http://{url_host(proxy_address)}:{settings.hub_port}"
hub_curl_args = ("--insecure", "--resolve",
                 f"{settings.hub_domain}:{settings.https_port}:{proxy_address}") if https else ()
found = read(host, LabStatus, hub_url=hub_url, registry_url=project.registry_url,
             compose_file=project.compose_file, project=project.project,
             hub_service=stack.HUB_SERVICE, registry_service=stack.REGISTRY_SERVICE,
             registry_data=stack.REGISTRY_DATA_PATH, df_paths=[accounts.HOME_BASE],
             du_paths=sorted(homes.values()), hub_curl_args=hub_curl_args,
             tls_address=f"{proxy_address}:{settings.https_port}" if https else None,
             tls_name=settings.hub_domain if https else None)
local = local_accounts(host)
mounts = read(host, Mounts, paths=sorted(share.mountpoint for share in settings.shares))
size = policy.human_size
findings: list[tuple[str, str | None]] = []


def service(name: str, url: str, version: str | None) -> None:
    container = next((c for container_name, c in sorted(found["containers"].items())
                      if container_name.startswith(f"{project.project}-{name}-")), None)
    code = found["http"].get(name, 0)
    since = f", up since {container['started']}" if container and container["state"] == \
        "running" else ""
    described = f"{name}: {version or (container or {}).get('image') or 'no container'}{since}"
    if code == 200:
        findings.append((f"{described}, answers at {url}", None))
    else:
        answer = f"answers HTTP {code}" if code else "does not answer"
        state = container["state"] if container else "no container"
        findings.append((f"{described}: {answer} at {url}",
                         f"{name} {answer} at {url} (its container: {state})"))


service("hub", hub_url,
        f"JupyterHub {found['hub_version']}" if found["hub_version"] else None)
service("registry", project.registry_url, settings.registry_image)

if https:
    expires = found["certificate_expires"]
    if expires is None:
        findings.append((f"certificate of {settings.hub_domain}: none served",
                         f"the proxy serves no certificate for {settings.hub_domain}"))
    else:
        left = datetime.fromisoformat(expires) - datetime.now(timezone.utc)
        hours = int(left.total_seconds() // 3600)
        described = (f"certificate of {settings.hub_domain} ({settings.tls}): "
                     + (f"{left.days} days left" if left.days >= 2 else f"{hours} hours left"))
        # The local CA issues for hours and renews them itself: only an expired one is wrong.
        floor = 0 if settings.tls == "internal" else CERTIFICATE_DAYS
        problem = None
        if left.days < floor or hours < 0:
            problem = (f"{described}: renew tls_cert" if settings.tls == "files" else
                       f"{described}: the proxy has not renewed it (see its log)")
        findings.append((described, problem))

today = int(time.time() // 86400)
for user, account in hub_accounts.items():
    info = local.get(account)
    if found["passwords"] is None:
        password = "password unknown (the hub's password file could not be read)"
    elif user in found["passwords"]:
        password = "password set"
    else:
        password = "no password yet (the first login sets it)"
    if info is None:
        findings.append((f"hub user {user}: no account {account}",
                         f"hub user {user}: there is no host account {account}: deploy"))
    elif (info["expire"] is not None and info["expire"] <= today) \
            or info["shell"] == accounts.LOCKED_SHELL:
        findings.append((f"hub user {user}: account {account} locked, {password}",
                         f"hub user {user}: account {account} is locked (expired or no login "
                         f"shell) although {user} is in hub_users: labs run as it cannot start"))
    else:
        findings.append((f"hub user {user}: account {account} active, {password}", None))
    lab = found["containers"].get(f"jupyter-{user}")
    if lab and lab["state"] == "running":
        findings.append((f"lab of {user}: running since {lab['started']} ({lab['image']})",
                         None))
for account, user in sorted(accounts.labhub_accounts(local).items()):
    if account not in hub_accounts.values():
        findings.append((f"former hub user {user}: account {account} kept "
                         f"({'locked' if local[account]['expire'] else 'not locked yet'})",
                         None))

for share in settings.shares:
    types = mounts.get(share.mountpoint, {}).get("types", [])
    if "cifs" in types:
        findings.append((f"share {share.name}: mounted at {share.mountpoint}", None))
    elif "autofs" in types:
        findings.append((f"share {share.name}: automount at {share.mountpoint} (mounted on "
                         "first access)", None))
    else:
        findings.append((f"share {share.name}: not mounted at {share.mountpoint}",
                         f"share {share.name}: nothing is mounted at {share.mountpoint}, not "
                         "even its automount: deploy, or start it with systemctl"))

places = {accounts.HOME_BASE: "the homes", found["docker_root"]: "Docker's data",
          found["registry_data"]: "the registry's data"}
for path, label in places.items():
    usage = found["df"].get(path)
    if not path or usage is None:
        continue
    percent = round(100 * usage["used"] / usage["size"]) if usage["size"] else 100
    measured = found["du"].get(path)
    described = (f"disk of {label} ({path}): {percent}% used, {size(usage['avail'])} free"
                 + (f", {label} take {size(measured)}" if measured is not None else ""))
    findings.append((described, f"{described}: the disk is nearly full"
                     if percent >= DISK_FULL_PERCENT else None))
for user, home in homes.items():
    if home in found["du"]:
        findings.append((f"home of {user} ({home}): {size(found['du'][home])}", None))

if found["http"].get("registry") == 200:
    contents = host.get_fact(RegistryContents, url=project.registry_url)
    if contents and not contents.get("error"):
        prune = settings.registry_prune
        used = policy.in_use(settings.lab_images, host.get_fact(ContainerImages) or [],
                             policy.registry_hosts(settings.registry_address))
        plan = policy.plan(contents, prune.keep_last, prune.keep_tags, prune.older_than_days,
                           used, registry_major=project.registry_major)
        findings.append((f"registry pruning would free {size(plan.freed_bytes)} "
                         f"({len(plan.deletions)} image(s) of {len(plan.rows)} tags)", None))

problems = [problem for _, problem in findings if problem]
for description, problem in findings:
    host.log(("PROBLEM " if problem else "ok      ") + description)
    status.check(name=description, problem=problem, _ignore_errors=True)
status.verdict(
    name=f"labhub status: {len(problems)} problem(s)" if problems else "labhub status: healthy",
    problems=problems,
)
