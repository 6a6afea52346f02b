"""
tasks/users.py on a fresh Debian 13 lab server, over SSH, through pyinfra's CLI: hub accounts,
their locking and unlocking, and SSH logins that follow it.
"""

from __future__ import annotations

import subprocess

import pytest

import labhost

pytestmark = pytest.mark.e2e

USERS = [
    "alice",
    {"name": "bob", "uid": 2001, "groups": ["leem"]},
    {"name": "carol", "groups": ["leem", "xps"]},
]


def deploy(inventory, **data) -> labhost.PyinfraRun:
    return labhost.run_pyinfra(inventory, "tasks/users.py", data=data)


def ssh_as(server: labhost.LabServer, account: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(server.key_path),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            f"{account}@{server.address}",
            "id -un",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def allow_ssh_key(server: labhost.LabServer, account: str) -> None:
    """The harness's SSH key for ``account`` too: a login that only the account's state stops."""
    home = f"/home/{account}"
    server.exec(
        f"install -d -m 0700 -o {account} -g users {home}/.ssh && "
        f"cp /home/{server.login_user}/.ssh/authorized_keys {home}/.ssh/ && "
        f"chown {account}:users {home}/.ssh/authorized_keys"
    )


@pytest.fixture(scope="module")
def inventory(lab_server):
    # An account made by hand before labhub, with a uid of its own, for hub user dave.
    lab_server.exec("useradd -m -u 3005 -c 'Dave (old add_user.sh)' -s /bin/sh jupyter-dave")
    # An account with the prefix that labhub did not make: never locked.
    lab_server.exec("useradd -m -g users jupyter-zed")
    return lab_server.inventory_file()


@pytest.fixture(scope="module")
def first_run(inventory):
    return deploy(inventory, hub_users=USERS, hub_admins=["alice"]).check()


def test_accounts_are_created_as_declared(first_run, lab_host):
    for name in ("alice", "bob", "carol"):
        user = lab_host.user(f"jupyter-{name}")
        assert user.exists, name
        assert user.gid == 100 and user.group == "users", name
        assert user.home == f"/home/jupyter-{name}", name
        assert user.shell == "/bin/bash", name
        assert user.gecos == f"labhub hub user {name}", name
        assert user.expiration_date is None, name
        home = lab_host.file(f"/home/jupyter-{name}")
        assert home.is_directory and home.user == f"jupyter-{name}" and home.group == "users"
        # Other notebook users share group users: nothing of the home is open to them.
        assert home.mode == 0o700, (name, oct(home.mode))
    assert lab_host.user("jupyter-bob").uid == 2001
    # Skeleton files come with a new home.
    assert lab_host.file("/home/jupyter-alice/.bashrc").exists
    assert sorted(lab_host.group("leem").members) == ["jupyter-bob", "jupyter-carol"]
    assert lab_host.group("xps").members == ["jupyter-carol"]
    assert lab_host.user("jupyter-alice").groups == ["users"]


def test_an_account_made_by_hand_is_taken_over_only_when_handed_over(
    first_run, inventory, lab_server, lab_host
):
    refused = deploy(inventory, hub_users=[*USERS, "dave"], hub_admins=["alice"])
    assert refused.returncode != 0
    assert (
        "hub_users: account jupyter-dave exists and labhub did not make it (its comment is "
        "not 'labhub hub user dave'): labhub does not take it over"
    ) in refused.stderr
    assert "Starting operation" not in refused.stderr
    dave = lab_host.user("jupyter-dave")
    assert dave.gecos == "Dave (old add_user.sh)" and dave.shell == "/bin/sh"

    # The admin hands it over, as the message says: labhub then keeps its uid and home.
    lab_server.exec("usermod --comment 'labhub hub user dave' jupyter-dave")
    adopted = deploy(inventory, hub_users=[*USERS, "dave"], hub_admins=["alice"]).check()
    dave = lab_host.user("jupyter-dave")
    assert dave.uid == 3005 and dave.gid == 100 and dave.shell == "/bin/bash"
    assert adopted.changed_operations.count("Hub user dave: account jupyter-dave") == 1


def test_notebook_users_cannot_read_each_others_homes(first_run, lab_server):
    lab_server.exec("su jupyter-alice -c 'echo notes > ~/notes.txt'")
    denied = lab_server.exec("su jupyter-bob -c 'cat /home/jupyter-alice/notes.txt' 2>&1 || true")
    assert "Permission denied" in denied


def test_second_run_changes_nothing(first_run, inventory):
    again = deploy(inventory, hub_users=[*USERS, "dave"], hub_admins=["alice"]).check()
    assert again.changed == 0, again.changed_operations


def test_removed_user_is_locked_and_nothing_is_lost(first_run, inventory, lab_server, lab_host):
    allow_ssh_key(lab_server, "jupyter-bob")
    assert ssh_as(lab_server, "jupyter-bob").stdout.strip() == "jupyter-bob"
    lab_server.exec("su jupyter-bob -c 'echo results > ~/thesis.txt'")

    run = deploy(inventory, hub_users=["alice", USERS[2], "dave"], hub_admins=["alice"]).check()
    lock = (
        "Lock jupyter-bob: bob is no longer in hub_users (account and home /home/jupyter-bob kept)"
    )
    assert lock in run.changed_operations
    assert f"--> Starting operation: {lock}" in run.stderr

    bob = lab_host.user("jupyter-bob")
    assert bob.exists and bob.uid == 2001
    assert bob.shell == "/usr/sbin/nologin"
    assert bob.expiration_date is not None and bob.expiration_date.year == 1970
    assert lab_host.file("/home/jupyter-bob/thesis.txt").content_string == "results\n"
    assert lab_host.file("/home/jupyter-bob").user == "jupyter-bob"
    assert lab_host.group("leem").members == ["jupyter-carol"]
    login = ssh_as(lab_server, "jupyter-bob")
    assert login.returncode != 0 and "jupyter-bob" not in login.stdout
    # An account with the prefix that labhub did not make is not labhub's to lock.
    zed = lab_host.user("jupyter-zed")
    assert zed.shell != "/usr/sbin/nologin" and zed.expiration_date is None

    again = deploy(inventory, hub_users=["alice", USERS[2], "dave"], hub_admins=["alice"]).check()
    assert again.changed == 0, again.changed_operations
    # Every run still names the locked account.
    assert f"--> Starting operation: {lock}" in again.stderr


def test_listing_a_user_again_unlocks_the_account(first_run, inventory, lab_server, lab_host):
    run = deploy(inventory, hub_users=[*USERS, "dave"], hub_admins=["alice"]).check()
    assert "Hub user bob: account jupyter-bob with uid 2001" in run.changed_operations
    bob = lab_host.user("jupyter-bob")
    assert bob.shell == "/bin/bash" and bob.expiration_date is None and bob.uid == 2001
    assert lab_host.file("/home/jupyter-bob/thesis.txt").content_string == "results\n"
    assert sorted(lab_host.group("leem").members) == ["jupyter-bob", "jupyter-carol"]
    assert ssh_as(lab_server, "jupyter-bob").stdout.strip() == "jupyter-bob"


def test_pinning_a_uid_moves_the_home_to_it(first_run, inventory, lab_host):
    users = [*USERS[:2], {"name": "carol", "uid": 2500, "groups": ["leem", "xps"]}, "dave"]
    deploy(inventory, hub_users=users, hub_admins=["alice"]).check()
    assert lab_host.user("jupyter-carol").uid == 2500
    assert lab_host.file("/home/jupyter-carol/.bashrc").uid == 2500


def test_bad_names_change_nothing(first_run, inventory, lab_host):
    run = deploy(inventory, hub_users=["alice", "Eve", "bob", "bob"], hub_admins=["mallory"])
    assert run.returncode != 0
    assert (
        "hub_users[1].name: 'Eve' is not a valid hub user name: use lower case letters, "
        "digits, '_' and '-', starting with a letter"
    ) in run.stderr
    assert "Starting operation" not in run.stderr
    assert not lab_host.user("jupyter-Eve").exists


def test_accounts_that_cannot_be_made_as_declared_change_nothing(first_run, inventory, lab_host):
    run = deploy(inventory, hub_users=["daemon"], user_prefix="")
    assert run.returncode != 0
    assert (
        "hub_users: account daemon exists as a system account (uid 1): labhub does not take it over"
    ) in run.stderr
    assert "Starting operation" not in run.stderr
    assert lab_host.user("daemon").shell == "/usr/sbin/nologin"

    run = deploy(inventory, hub_users=[{"name": "alice", "uid": 3005}])
    assert run.returncode != 0
    assert "hub_users: uid 3005 of alice is taken by account jupyter-dave" in run.stderr
    assert "Starting operation" not in run.stderr
    assert lab_host.user("jupyter-alice").uid != 3005
