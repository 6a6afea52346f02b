"""
Facts about folders labhub is about to own or mount over: whether each exists, what it holds,
and whether something is mounted there, read for all of them in one command.
"""

from __future__ import annotations

import shlex
from typing import TypedDict

from pyinfra.api import FactBase


class FolderDict(TypedDict):
    kind: str
    entries: list[str]
    mounted: bool


class Folders(FactBase[dict[str, FolderDict]]):
    """
    Each path: ``kind`` (``missing``, ``folder``, or ``other`` for a file, link or device), the
    names in it (up to 20, for messages), and whether it is a mount point.

    .. code:: python

        {
            "/opt/labhub": {"kind": "folder", "entries": ["compose.yaml", "hub"], "mounted": False},
            "/mnt/leem": {"kind": "missing", "entries": [], "mounted": False},
        }
    """

    default = dict

    def command(self, paths: list[str]) -> str:
        # One line a path: kind, mounted (y/n), the path, then its entries, each on its own line.
        script = (
            'for p in "$@"; do '
            'if [ -L "$p" ] || { [ -e "$p" ] && [ ! -d "$p" ]; }; then k=other; '
            'elif [ -d "$p" ]; then k=folder; else k=missing; fi; '
            'if mountpoint -q "$p" 2>/dev/null; then m=y; else m=n; fi; '
            'printf "@ %s %s %s\\n" "$k" "$m" "$p"; '
            '[ "$k" = folder ] && ls -A "$p" 2>/dev/null | head -n 20 | sed "s/^/. /"; '
            "done; true"
        )
        return " ".join(
            ["sh", "-c", shlex.quote(script), "folders", *(shlex.quote(p) for p in paths)]
        )

    def process(self, output) -> dict[str, FolderDict]:
        folders: dict[str, FolderDict] = {}
        current: FolderDict | None = None
        for line in output:
            if line.startswith("@ "):
                kind, mounted, path = line[2:].split(" ", 2)
                current = folders[path] = {"kind": kind, "entries": [], "mounted": mounted == "y"}
            elif line.startswith(". ") and current is not None:
                current["entries"].append(line[2:])
        return folders
