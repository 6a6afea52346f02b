"""
Host accounts of hub users. Which existing accounts are labhub's is read from a marker in the
account's GECOS comment, ``labhub hub user <name>``: safer than the name prefix alone, which an
account made by hand (or another tool) may share.
"""

from __future__ import annotations

import shlex

from labhub.settings import Settings

COMMENT_PREFIX = "labhub hub user "
HOME_BASE = "/home"
SHELL = "/bin/bash"
PRIMARY_GROUP = "users"
# Other notebook users share group users: the home is the owner's alone.
HOME_MODE = "0700"
LOCKED_SHELL = "/usr/sbin/nologin"
# An expiry date of day 1 (1970-01-02) is in the past: no login of any kind, keys included.
LOCKED_EXPIRE = 1


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


def account_problems(settings: Settings, local_accounts: dict, local_groups: dict) -> list[str]:
    """What keeps the hub accounts and their groups from being made as declared on this host,
    before any change: accounts and groups labhub does not own."""
    problems = [
        f"hub_users: {problem}"
        for user in settings.hub_users
        for problem in takeover_problems(
            settings.account_name(user.name),
            user.uid,
            account_comment(user.name),
            local_accounts,
            user.name,
        )
    ]
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
