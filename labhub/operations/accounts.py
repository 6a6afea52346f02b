"""
Hub user accounts, the members of host groups, and the record of the accounts the hub spawns labs
as. Paired with ``labhub.facts.accounts``.
"""

from __future__ import annotations

import json

from pyinfra import host, logger
from pyinfra.api import OperationError, QuoteString, StringCommand, operation
from pyinfra.operations import files, server

from labhub.accounts import takeover_problems
from labhub.facts.accounts import homes, local_accounts, local_groups
from labhub.operations import tree


@operation()
def account(
    user: str,
    comment: str,
    uid: int | None = None,
    group: str = "users",
    home: str | None = None,
    shell: str = "/bin/bash",
    home_mode: str = "0700",
    home_here: bool = True,
    locked: bool = False,
    locked_shell: str = "/usr/sbin/nologin",
    locked_expire: int = 1,
):
    """
    A login account with one primary group and a private home, active or locked.

    + user: account name
    + comment: GECOS comment (labhub's marks its hub accounts)
    + uid: the account's uid; None keeps whatever uid an existing account has
    + group: primary group (must exist)
    + home: home directory (default ``/home/<user>``); created with the skeleton files when
      missing, never moved, and its owner and mode kept right
    + shell: login shell of an active account
    + home_mode: mode of the home directory
    + home_here: whether the home is on this host's disk; False: it is another server's,
      mounted here (``home_storage``), which that server creates and keeps: neither made nor
      changed here (root may not change it through the mount)
    + locked: lock the account instead (expired, no login shell), keeping everything it owns;
      an account that does not exist is left absent
    + locked_shell: the shell of a locked account
    + locked_expire: the shadow expiry date (days since 1970) of a locked account

    A locked account that is wanted again is unlocked: its expiry cleared and its shell set back.

    **Example:**

    .. code:: python

        users.account(
            name="Hub user alice",
            user="jupyter-alice",
            comment="labhub hub user alice",
            uid=2001,
        )
    """

    accounts = local_accounts(host)
    existing = accounts.get(user)
    home = home or f"/home/{user}"

    if locked:
        if existing is None:
            host.noop(f"account {user} does not exist")
            return
        args: list = []
        if existing["expire"] != locked_expire:
            args += ["--expiredate", str(locked_expire)]
        if existing["shell"] != locked_shell:
            args += ["--shell", QuoteString(locked_shell)]
        if args:
            yield StringCommand("usermod", *args, QuoteString(user))
        else:
            host.noop(f"account {user} is locked")
        return

    problems = takeover_problems(user, uid, comment, accounts, user)
    if problems:
        raise OperationError("; ".join(problems))

    gid = local_groups(host).get(group, {}).get("gid")
    home_now = homes(host).get(home)
    if existing is None:
        args = [
            "--gid",
            QuoteString(group),
            "--home-dir",
            QuoteString(home),
            "--shell",
            QuoteString(shell),
            "--comment",
            QuoteString(comment),
        ]
        if uid is not None:
            args += ["--uid", str(uid)]
        # A home kept from an earlier account (same pinned uid) is reused as it is.
        args.append("--create-home" if home_here and not home_now else "--no-create-home")
        yield StringCommand("useradd", *args, QuoteString(user))
    else:
        args = []
        if uid is not None and existing["uid"] != uid:
            # usermod also gives the files in the home to the new uid.
            args += ["--uid", str(uid)]
        if gid is None or existing["gid"] != gid:
            args += ["--gid", QuoteString(group)]
        if existing["home"] != home:
            args += ["--home", QuoteString(home)]
        if existing["shell"] != shell:
            args += ["--shell", QuoteString(shell)]
        if existing["comment"] != comment:
            args += ["--comment", QuoteString(comment)]
        if existing["expire"] is not None:
            args += ["--expiredate", QuoteString("")]
        if args:
            yield StringCommand("usermod", *args, QuoteString(user))

    if home_here and (
        existing is None
        or home_now is None
        or (home_now["user"], home_now["group"], home_now["mode"])
        != (user, group, int(home_mode, 8))
    ):
        yield from files.directory._inner(path=home, user=user, group=group, mode=home_mode)


@operation()
def group_members(group: str, members: list[str], managed: list[str], gid: int | None = None):
    """
    A group, created when missing, with ``members`` in it and the other ``managed`` accounts out.

    + group: group name
    + gid: the gid a new group gets (None: groupadd's next); an existing group keeps its own
    + members: accounts that must be members (one that does not exist is left out, with a
      warning)
    + managed: accounts whose membership this operation decides; members of the group that are
      not in ``managed`` (added by hand or by packages) stay

    **Example:**

    .. code:: python

        users.group_members(
            name="Group leem: jupyter-alice",
            group="leem",
            members=["jupyter-alice"],
            managed=["jupyter-alice", "jupyter-bob"],
        )
    """

    # Accounts are made by an earlier task; one missing now (a task run alone) is added later.
    accounts = local_accounts(host)
    missing = [m for m in members if m not in accounts]
    if missing and host.state.is_executing:
        host.log(
            f"group {group}: no account {', '.join(missing)} yet (tasks/users.py makes it)",
            logger.warning,
        )
    members = [m for m in members if m in accounts]

    groups = local_groups(host)
    if group not in groups:
        yield StringCommand(
            "groupadd", *(["--gid", str(gid)] if gid is not None else []), QuoteString(group)
        )
        current: list[str] = []
    else:
        current = groups[group]["members"]

    keep = [m for m in current if m in members or m not in managed]
    new = keep + [m for m in members if m not in keep]
    if set(new) != set(current):
        yield StringCommand("gpasswd", "--members", QuoteString(",".join(new)), QuoteString(group))
    elif group in groups:
        host.noop(f"group {group} has its members")


@operation()
def record(path: str, accounts: dict[str, str]):
    """
    Write the name, uid, home and groups of each hub user's host account as JSON, read by the
    hub at each spawn. The accounts are read when the operation runs, after the tasks that create them.

    + path: the JSON file on the host
    + accounts: ``{hub user: host account}``

    **Example:**

    .. code:: python

        accounts.record(
            name="Record the hub users' host accounts",
            path="/opt/labhub/hub/accounts.json",
            accounts={"alice": "jupyter-alice"},
        )
    """
    local = local_accounts(host)
    groups = local_groups(host)
    names_of = {g["gid"]: name for name, g in groups.items()}

    def record_of(account: str) -> dict:
        # Primary group first, then the groups that list the account.
        gids = [local[account]["gid"]] + sorted(
            g["gid"]
            for g in groups.values()
            if account in g["members"] and g["gid"] != local[account]["gid"]
        )
        # Names too: the labs' /etc/passwd and /etc/group name the account and its groups.
        return {
            "name": account,
            "uid": local[account]["uid"],
            "home": local[account]["home"],
            "gids": gids,
            "groups": [names_of.get(gid, f"group{gid}") for gid in gids],
        }

    found = {account: record_of(account) for account in accounts.values() if account in local}
    missing = sorted(account for account in accounts.values() if account not in found)
    if missing and host.state.is_executing:
        raise OperationError(
            f"no host account {', '.join(missing)}: hub users' accounts are made by tasks/users.py"
        )
    table = {user: found[account] for user, account in sorted(accounts.items()) if account in found}
    commands = list(tree.changes({path: json.dumps(table, indent=2, sort_keys=True) + "\n"}))
    if not commands:
        host.noop(f"{path} records the accounts")
    yield from commands


@operation()
def group_present(group: str, system: bool = False):
    """
    A group that exists (pyinfra's ``server.group``), read from the run's one accounts read.

    + group: group name
    + system: create it as a system group

    **Example:**

    .. code:: python

        accounts.group_present(name="Create group docker", group="docker", system=True)
    """
    if group in local_groups(host):
        host.noop(f"group {group} exists")
        return
    yield from server.group._inner(group=group, system=system)


@operation()
def in_group(user: str, group: str):
    """
    An existing account that is a member of ``group`` too (its other groups kept), read from the
    run's one accounts read.

    + user: the account
    + group: the group to add it to

    **Example:**

    .. code:: python

        accounts.in_group(name="Add labadmin to group docker", user="labadmin", group="docker")
    """
    groups = local_groups(host)
    account = local_accounts(host).get(user)
    if (
        group in groups
        and account is not None
        and (user in groups[group]["members"] or account["gid"] == groups[group]["gid"])
    ):
        host.noop(f"{user} is in group {group}")
        return
    yield from server.user._inner(
        user=user, groups=[group], append=True, create_home=False, present=True
    )
