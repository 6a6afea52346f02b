"""
Facts about local accounts and groups, read from ``/etc/passwd``, ``/etc/shadow`` and
``/etc/group``. Unlike pyinfra's ``server.Users`` they carry the account's expiry date (how a
locked hub account is recognized) and never password hashes. Paired with
``labhub.operations.accounts``.
"""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import FactBase

from labhub.facts import read


class AccountDict(TypedDict):
    uid: int
    gid: int
    comment: str
    home: str
    shell: str
    expire: int | None


class LocalAccounts(FactBase[dict[str, AccountDict]]):
    """
    Local accounts by name; ``expire`` is the shadow expiry date in days since 1970 (None: never
    expires, or ``/etc/shadow`` is not readable).

    .. code:: python

        {
            "jupyter-alice": {
                "uid": 2001,
                "gid": 100,
                "comment": "labhub hub user alice",
                "home": "/home/jupyter-alice",
                "shell": "/bin/bash",
                "expire": None,
            },
        }
    """

    default = dict

    def command(self) -> str:
        # Only the name and expiry fields of shadow: password hashes never leave the host.
        return "cat /etc/passwd; echo '#shadow'; cut -d: -f1,8 /etc/shadow 2>/dev/null || true"

    def process(self, output) -> dict[str, AccountDict]:
        accounts: dict[str, AccountDict] = {}
        expires: dict[str, int | None] = {}
        in_shadow = False
        for line in output:
            if line == "#shadow":
                in_shadow = True
                continue
            fields = line.split(":")
            if in_shadow and len(fields) == 2:
                expires[fields[0]] = int(fields[1]) if fields[1].strip().isdigit() else None
            elif not in_shadow and len(fields) == 7:
                name, _, uid, gid, comment, home, shell = fields
                accounts[name] = {
                    "uid": int(uid),
                    "gid": int(gid),
                    "comment": comment,
                    "home": home,
                    "shell": shell,
                    "expire": None,
                }
        for name, expire in expires.items():
            if name in accounts:
                accounts[name]["expire"] = expire
        return accounts


class GroupDict(TypedDict):
    gid: int
    members: list[str]


class LocalGroups(FactBase[dict[str, GroupDict]]):
    """
    Local groups by name with their listed (secondary) members.

    .. code:: python

        {
            "users": {"gid": 100, "members": []},
            "leem": {"gid": 1001, "members": ["jupyter-alice", "jupyter-bob"]},
        }
    """

    default = dict

    def command(self) -> str:
        return "cat /etc/group"

    def process(self, output) -> dict[str, GroupDict]:
        groups: dict[str, GroupDict] = {}
        for line in output:
            fields = line.split(":")
            if len(fields) == 4 and fields[2].isdigit():
                groups[fields[0]] = {
                    "gid": int(fields[2]),
                    "members": [m for m in fields[3].split(",") if m],
                }
        return groups


class LoginUser(FactBase[str]):
    """
    The account pyinfra logged in as, also when operations run through sudo.

    .. code:: python

        "labadmin"
    """

    def command(self) -> str:
        return 'echo "${SUDO_USER:-$(id -un)}"'

    def process(self, output) -> str:
        return "\n".join(output).strip()


class HomeDict(TypedDict):
    kind: str
    user: str
    group: str
    mode: int


class HostAccounts(FactBase[dict]):
    """
    ``LocalAccounts``, ``LocalGroups`` and the owner and mode of every account's home, read in
    one command: what the users, shares, docker and hub tasks all need. Read it through
    ``local_accounts``, ``local_groups`` and ``homes``, which share one read per run until
    something changes on the host.

    .. code:: python

        {
            "accounts": {"jupyter-alice": {...}},
            "groups": {"users": {"gid": 100, "members": []}},
            "homes": {"/home/jupyter-alice": {"kind": "folder", "user": "jupyter-alice",
                                              "group": "users", "mode": 0o700}},
        }
    """

    default = dict

    def command(self) -> str:
        return (
            f"{LocalAccounts().command()}; echo '#group'; cat /etc/group; echo '#homes'; "
            "cut -d: -f6 /etc/passwd | sort -u | while IFS= read -r h; do "
            """[ -d "$h" ] && stat -c '%U %G %a %n' "$h"; done; true"""
        )

    def process(self, output) -> dict:
        sections: dict[str, list[str]] = {"passwd": [], "#group": [], "#homes": []}
        current = "passwd"
        for line in output:
            if line in ("#group", "#homes"):
                current = line
            else:
                sections[current].append(line)
        homes: dict[str, HomeDict] = {}
        for line in sections["#homes"]:
            parts = line.split(" ", 3)
            if len(parts) == 4:
                user, group, mode, path = parts
                homes[path] = {"kind": "folder", "user": user, "group": group, "mode": int(mode, 8)}
        return {
            "accounts": LocalAccounts().process(sections["passwd"]),
            "groups": LocalGroups().process(sections["#group"]),
            "homes": homes,
        }


def local_accounts(host) -> dict[str, AccountDict]:
    """The ``LocalAccounts`` of the host, from the run's one ``HostAccounts`` read."""
    return read(host, HostAccounts).get("accounts", {})


def local_groups(host) -> dict[str, GroupDict]:
    """The ``LocalGroups`` of the host, from the run's one ``HostAccounts`` read."""
    return read(host, HostAccounts).get("groups", {})


def homes(host) -> dict[str, HomeDict]:
    """The homes of the host's accounts that exist, from the run's one ``HostAccounts`` read."""
    return read(host, HostAccounts).get("homes", {})
