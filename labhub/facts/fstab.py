"""
Facts about ``/etc/fstab`` and what is mounted where.
"""

from __future__ import annotations

import shlex
from typing import TypedDict

from pyinfra.api import FactBase, QuoteString, StringCommand

from labhub import accounts
from labhub.facts import read
from labhub.settings import get_settings


class FstabLines(FactBase[list[str]]):
    """
    The lines of ``/etc/fstab`` as they are, comments included (no file: no lines).

    .. code:: python

        [
            "# /etc/fstab: static file system information.",
            "UUID=0a3407de-... / ext4 errors=remount-ro 0 1",
            "//files.lab/leem /mnt/leem cifs ro,credentials=/etc/labhub/credentials/leem,... 0 0",
        ]
    """

    default = list

    def command(self, path: str = "/etc/fstab") -> StringCommand:
        return StringCommand("cat", QuoteString(path), "2>/dev/null", "||", "true")

    def process(self, output) -> list[str]:
        return list(output)


class MountsAt(FactBase[list[str]]):
    """
    The file system types mounted at a path, lowest first: a systemd automount point that has
    been triggered shows ``autofs`` under the real file system. Nothing mounted: ``[]``.

    .. code:: python

        ["autofs", "cifs"]
    """

    default = list

    def command(self, path: str) -> StringCommand:
        # --raw escapes spaces, so each line is one path and one type.
        return StringCommand(
            "findmnt",
            "--noheadings",
            "--raw",
            "--output",
            "FSTYPE",
            "--mountpoint",
            QuoteString(path),
            "||",
            "true",
        )

    def process(self, output) -> list[str]:
        return [line.strip() for line in output if line.strip()]


class MountDict(TypedDict):
    exists: bool
    types: list[str]


class Mounts(FactBase[dict[str, MountDict]]):
    """
    For several mount points at once: whether each exists as a folder (looked at without
    entering it, which would trigger its automount), and the file system types mounted there,
    lowest first (``MountsAt``). With ``enter``, each mount point is entered first, all at once,
    and waited for that many seconds at most: its automount mounts it, or its server does not
    answer in time (``autofs`` alone).

    .. code:: python

        {"/mnt/leem": {"exists": True, "types": ["autofs", "cifs"]}}
    """

    default = dict

    def command(self, paths: list[str], enter: int = 0) -> str:
        script = (
            'for p in "$@"; do if [ -d "$p" ]; then echo "@ y $p"; else echo "@ n $p"; '
            "fi; done; findmnt --noheadings --raw --output TARGET,FSTYPE; true"
        )
        if enter:
            # Entered in the background and killed after ``enter`` seconds: a share whose server
            # does not answer holds whatever enters it for as long as its mount tries.
            script = (
                f'for p in "$@"; do timeout -s KILL {int(enter)} ls -A "$p/" >/dev/null 2>&1 & '
                "done; wait; " + script
            )
        return " ".join(
            ["sh", "-c", shlex.quote(script), "mounts", *(shlex.quote(p) for p in paths)]
        )

    def process(self, output) -> dict[str, MountDict]:
        mounts: dict[str, MountDict] = {}
        table: list[tuple[str, str]] = []
        for line in output:
            if line.startswith("@ "):
                exists, path = line[2:].split(" ", 1)
                mounts[path] = {"exists": exists == "y", "types": []}
            elif " " in line:
                target, fstype = line.rsplit(" ", 1)
                # --raw writes a space in a path as \x20.
                table.append((target.encode().decode("unicode_escape"), fstype))
        for target, fstype in table:
            if target in mounts:
                mounts[target]["types"].append(fstype)
        return mounts


def mounts_at(host, path: str) -> MountDict:
    """What ``Mounts`` says of ``path`` (``{"exists": False, "types": []}`` when nothing), from
    one read of every share's mount point and hub user's home in the settings (and ``path``)
    for the run, until an operation changes the host. A share or home no longer in the settings
    is read with them: once, in the run that removes it."""
    settings = get_settings(host)
    homes = (accounts.home_of(settings.account_name(user.name)) for user in settings.hub_users)
    paths = sorted({path, *(share.mountpoint for share in settings.shares), *homes})
    return read(host, Mounts, paths=paths).get(path, {"exists": False, "types": []})
