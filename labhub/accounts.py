"""
Host accounts of hub users. Which existing accounts are labhub's is read from a marker in the
account's GECOS comment, ``labhub hub user <name>``: safer than the name prefix alone, which an
account made by hand (or another tool) may share.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from labhub import cluster
from labhub.facts.accounts import local_accounts, local_groups
from labhub.pyinfra_api import memo
from labhub.settings import Settings, get_settings

COMMENT_PREFIX = "labhub hub user "
HOME_BASE = "/home"
SHELL = "/bin/bash"
PRIMARY_GROUP = "users"
# Other notebook users share group users: the home is the owner's alone.
HOME_MODE = "0700"
LOCKED_SHELL = "/usr/sbin/nologin"
# An expiry date of day 1 (1970-01-02) is in the past: no login of any kind, keys included.
LOCKED_EXPIRE = 1
# The ids labhub gives the accounts and groups it makes on a lab's servers: from the first one
# useradd and groupadd would take (UID_MIN, GID_MIN) to the last (UID_MAX, GID_MAX).
FIRST_ID = 1000
LAST_ID = 60000


def account_comment(hub_user: str) -> str:
    return f"{COMMENT_PREFIX}{hub_user}"


def hub_user_of(comment: str | None) -> str | None:
    """The hub user an account was made for, from its GECOS comment; None: not labhub's."""
    if comment and comment.startswith(COMMENT_PREFIX):
        return comment[len(COMMENT_PREFIX) :].split(",", 1)[0] or None
    return None


def home_of(account: str) -> str:
    return f"{HOME_BASE}/{account}"


def group_members(settings: Settings, group: str) -> list[str]:
    """The accounts of the hub users who list ``group`` in their groups."""
    return [settings.account_name(u.name) for u in settings.hub_users if group in u.groups]


def labhub_accounts(local_accounts: dict) -> dict[str, str]:
    """Accounts labhub made (account name to hub user), from the ``LocalAccounts`` fact."""
    return {
        account: user
        for account, info in local_accounts.items()
        if (user := hub_user_of(info["comment"])) is not None
    }


def takeover_problems(
    account: str, uid: int | None, comment: str, local_accounts: dict, who: str
) -> list[str]:
    """What keeps ``account`` (for ``who``) from being made or kept as declared: an account of
    that name that labhub did not make (a system account, or one without ``comment``), or its
    pinned ``uid`` held by another account."""
    problems = []
    existing = local_accounts.get(account)
    if existing is not None and existing["uid"] < 1000:
        problems.append(
            f"account {account} exists as a system account (uid {existing['uid']}): labhub "
            "does not take it over"
        )
    elif existing is not None and existing["comment"] != comment:
        problems.append(
            f"account {account} exists and labhub did not make it (its comment is not "
            f"{comment!r}): labhub does not take it over; choose another user_prefix or name, "
            f"or hand the account to labhub: usermod --comment {shlex.quote(comment)} {account}"
        )
    holders = sorted(
        name
        for name, info in local_accounts.items()
        if uid is not None and info["uid"] == uid and name != account
    )
    if holders:
        problems.append(f"uid {uid} of {who} is taken by account {holders[0]}")
    return problems


@dataclass(frozen=True)
class LabIds:
    """
    The uids of the hub users' accounts and the gids of the host groups labhub declares, the
    same on every server of a lab with lab nodes (files keep their owner from one server to
    the next: shared homes, shares, labs), and what keeps them from being so.
    """

    uids: dict[str, int] = field(default_factory=dict)
    gids: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerAccounts:
    """The accounts and groups of one server of the lab (the ``LocalAccounts`` and
    ``LocalGroups`` facts), by its inventory name."""

    name: str
    accounts: dict
    groups: dict


def _lowest_free(used: set[int]) -> int:
    return next(i for i in range(FIRST_ID, LAST_ID + 1) if i not in used)


def plan_lab_ids(settings: Settings, hub: ServerAccounts, nodes: list[ServerAccounts]) -> LabIds:
    """
    The ids of a lab's accounts and groups, planned from every server's before any change: an
    account's pinned ``uid``; else the uid of its account on the hub server; else the lowest id
    from ``FIRST_ID`` that no server uses. A group's gid likewise (the hub's, else the lowest
    free). A node whose account or group has another id is a problem: labhub does not change ids
    on a node (what the account owns there would keep the old one).
    """
    servers = [hub, *nodes]
    used_uids = {info["uid"] for server in servers for info in server.accounts.values()}
    used_gids = {info["gid"] for server in servers for info in server.groups.values()}
    uids: dict[str, int] = {}
    why: dict[str, str] = {}
    for user in settings.hub_users:
        account = settings.account_name(user.name)
        if user.uid is not None:
            uids[account], why[account] = user.uid, "pinned in hub_users"
        elif account in hub.accounts:
            uids[account] = hub.accounts[account]["uid"]
            why[account] = f"its uid on the hub server {hub.name}"
    for user in settings.hub_users:
        account = settings.account_name(user.name)
        if account not in uids:
            uids[account] = _lowest_free(used_uids | set(uids.values()))
            why[account] = "the lowest uid free on every server"
    gids: dict[str, int] = {}
    for group in settings.host_groups:
        if group in hub.groups:
            gids[group], why[group] = hub.groups[group]["gid"], f"its gid on {hub.name}"
    for group in settings.host_groups:
        if group not in gids:
            gids[group] = _lowest_free(used_gids | set(gids.values()))
            why[group] = "the lowest gid free on every server"
    problems = []
    for node in nodes:
        for account, uid in uids.items():
            found = node.accounts.get(account)
            if found is not None and found["uid"] != uid:
                problems.append(
                    f"hub_users: account {account} on lab node {node.name} has uid "
                    f"{found['uid']}, the lab's is {uid} ({why[account]}): labhub does not change "
                    "an account's uid on a node (what it owns there would keep the old one); "
                    f"give it the lab's (usermod --uid {uid} {account}, then chown what it owns) "
                    "or remove it from the node, and deploy again"
                )
        for group, gid in gids.items():
            found = node.groups.get(group)
            if found is not None and found["gid"] != gid:
                problems.append(
                    f"{settings.group_setting(group)}: group {group} on lab node {node.name} has "
                    f"gid {found['gid']}, the lab's is {gid} ({why[group]}): labhub does not "
                    f"change a group's gid on a node; give it the lab's (groupmod --gid {gid} "
                    f"{group}) or remove it from the node, and deploy again"
                )
    return LabIds(uids, gids, tuple(problems))


def lab_ids(host) -> LabIds | None:
    """
    The ids of the accounts and groups of the host's lab (``plan_lab_ids``), planned once per
    run from every server's accounts, read before any change; None on an inventory without lab
    nodes, where each account keeps the uid useradd gives it, as on one server.
    """
    nodes = cluster.lab_nodes(host)
    if not nodes:
        return None
    hub = cluster.hub_server(host)
    kept = memo(hub)
    if "lab_ids" not in kept:

        def server(other) -> ServerAccounts:
            return ServerAccounts(other.name, local_accounts(other), local_groups(other))

        kept["lab_ids"] = plan_lab_ids(
            get_settings(hub), server(hub), [server(node) for node in nodes]
        )
    return kept["lab_ids"]


def account_problems(
    settings: Settings, local_accounts: dict, local_groups: dict, ids: LabIds | None = None
) -> list[str]:
    """What keeps the hub accounts and their groups from being made as declared on this host,
    before any change: accounts and groups labhub does not own, and, in a lab with lab nodes
    (``ids``), ids that differ between its servers."""
    problems = [
        f"hub_users: {problem}"
        for user in settings.hub_users
        for problem in takeover_problems(
            settings.account_name(user.name),
            ids.uids[settings.account_name(user.name)] if ids else user.uid,
            account_comment(user.name),
            local_accounts,
            user.name,
        )
    ]
    if ids:
        problems += ids.problems
    personal = {
        info["gid"]: name
        for name, info in local_accounts.items()
        if hub_user_of(info["comment"]) is None
    }
    for group in settings.host_groups:
        gid = (local_groups.get(group) or {}).get("gid")
        if gid is not None and gid < 1000:
            problems.append(
                f"{settings.group_setting(group)}: {group} is a system group (gid "
                f"{gid}): labhub does not add hub users to it"
            )
        elif gid is not None and gid in personal:
            problems.append(
                f"{settings.group_setting(group)}: {group} is the primary group of "
                f"account {personal[gid]}: labhub does not add hub users to it"
            )
    return problems
