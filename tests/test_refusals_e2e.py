"""
Refusals that only the server can tell: accounts, groups, fstab lines and folders that labhub did
not make. Each run of the whole deploy, over SSH on a lab server that an admin has used before,
stops before its first change and names the account, group or path; nothing on the server
changes, whatever the settings say.
"""

from __future__ import annotations

import hashlib

import pytest

import labhost

pytestmark = pytest.mark.e2e

# What an admin had on the server before labhub: an account of their own (with its personal
# group), a system group of a package labhub does not know by name, a CIFS line of their own,
# folders with files in them.
BEFORE = """
useradd --create-home --uid 1001 --comment 'Carol Admin' carol
groupadd --system scanner
echo '//nas/old /mnt/old cifs credentials=/root/.smb-old,nofail 0 0' >> /etc/fstab
mkdir -p /mnt/old /srv/busy /opt/notlabhub
echo results > /srv/busy/data.txt
echo mine > /opt/notlabhub/notes.txt
"""
# Everything a deploy could touch first: accounts, groups, fstab, folders, packages.
STATE = (
    "cat /etc/passwd /etc/shadow /etc/group /etc/fstab; ls -laR /opt /srv /mnt /home "
    "/etc/labhub 2>&1; ls /etc/apt/keyrings /etc/apt/sources.list.d 2>&1; "
    "dpkg-query -W -f '${Package} ${Status}\\n'"
)


@pytest.fixture(scope="module")
def server(lab_server):
    lab_server.exec(BEFORE)
    return lab_server


@pytest.fixture(scope="module")
def credentials(tmp_path_factory):
    path = tmp_path_factory.mktemp("credentials") / "share.cred"
    return str(labhost.write_secret(path, "username=lab\npassword=not-used-here\n"))


def share(credentials: str, mountpoint: str) -> dict:
    return {
        "name": "data",
        "source": "//files.lab/data",
        "mountpoint": mountpoint,
        "mode": "ro",
        "credentials": credentials,
    }


CASES = {
    "an account labhub did not make": (
        {"user_prefix": "", "hub_users": ["carol"]},
        "hub_users: account carol exists and labhub did not make it (its comment is not "
        "'labhub hub user carol'): labhub does not take it over",
    ),
    "a system account": (
        {"user_prefix": "", "hub_users": ["daemon"]},
        "hub_users: account daemon exists as a system account (uid 1)",
    ),
    "a pinned uid another account has": (
        {"hub_users": [{"name": "alice", "uid": 1001}]},
        "hub_users: uid 1001 of alice is taken by account carol",
    ),
    "a system group": (
        {"hub_users": [{"name": "alice", "groups": ["scanner"]}]},
        "hub_users[0].groups: scanner is a system group (gid ",
    ),
    "an admin's personal group": (
        {"hub_users": [{"name": "alice", "groups": ["carol"]}]},
        "hub_users[0].groups: carol is the primary group of account carol",
    ),
    "an fstab line labhub did not write": (
        {"shares": "old"},
        "shares[0].mountpoint: /etc/fstab already mounts //nas/old at /mnt/old",
    ),
    "a folder with files as mount point": (
        {"shares": "busy"},
        "shares[0].mountpoint: /srv/busy is in use (it holds data.txt): the share would hide it",
    ),
    "a backup schedule this server's systemd does not read": (
        {
            "backup_repository": "/srv/backups",
            "backup_password_file": "credentials",
            "backup_schedule": "dayly",
        },
        "backup_schedule: 'dayly' is not a calendar event this server's systemd reads (Failed "
        "to parse calendar specification",
    ),
    "a backend whose program the server does not have": (
        {"backup_repository": "rclone:lab:labhub", "backup_password_file": "credentials"},
        "backup_repository: 'rclone:lab:labhub' is reached through rclone, which this server "
        "does not have",
    ),
    # Refused before connecting, from the settings alone (tests/test_refusals.py has them all).
    "a system folder in another spelling": (
        {"hub_dir": "//etc/labhub/"},
        "hub_dir: '/etc/labhub' is inside the system folder /etc",
    ),
    "a group made by a task on a fresh server": (
        {"hub_users": [{"name": "alice", "groups": ["docker"]}]},
        "hub_users[0].groups[0]: 'docker' is a system group",
    ),
    "a hub_dir with other things in it": (
        {"hub_dir": "/opt/notlabhub"},
        "hub_dir: /opt/notlabhub holds notes.txt and no labhub compose project",
    ),
}


def state_digest(server: labhost.LabServer) -> str:
    return hashlib.sha256(server.exec(STATE).encode()).hexdigest()


@pytest.mark.parametrize("case", CASES)
def test_the_deploy_stops_before_any_change_and_names_what_it_will_not_touch(
    case, server, credentials
):
    data, expected = CASES[case]
    if data.get("shares") == "old":
        data = {"shares": [share(credentials, "/mnt/old")]}
    elif data.get("shares") == "busy":
        data = {"shares": [share(credentials, "/srv/busy")]}
    elif data.get("backup_password_file") == "credentials":
        data = {**data, "backup_password_file": credentials}
    before = state_digest(server)
    inventory = server.inventory_file({"docker_source": "distro", **data})
    run = labhost.run_pyinfra(inventory, "deploy.py")
    assert run.returncode != 0
    assert expected in run.stderr, run.stderr[-3000:]
    assert state_digest(server) == before
    # The admin's own things are as they were.
    assert server.exec("getent passwd carol").split(":")[4] == "Carol Admin"
    assert server.exec("cat /srv/busy/data.txt /opt/notlabhub/notes.txt") == "results\nmine\n"
