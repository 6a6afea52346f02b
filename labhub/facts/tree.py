"""
Facts about a folder tree on the host: every file, folder and link under it with its owner, mode
and (for files) content hash, read in one command. Paired with ``labhub.operations.tree``.

``files_at`` reads the tree of the whole folder labhub manages that a path is in (``hub_dir``,
``/etc/labhub``), so that every operation on files there shares one read.
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath
from typing import TypedDict

from pyinfra.api import FactBase, OperationError

from labhub.facts import read
from labhub.settings import get_settings
from labhub.shares import CONFIG_DIR

# Between the two parts of FileTree's output; find prints no line starting with it.
_HASHES = "--labhub-tree-hashes--"


class EntryDict(TypedDict):
    kind: str
    mode: int
    user: str
    group: str
    sha256: str | None


class FileTree(FactBase[dict[str, EntryDict]]):
    """
    Everything under ``path`` (itself included, on the same file system) by absolute path:
    ``kind`` (``file``, ``folder``, ``link``, ``other``), the owner, the permission bits and, for
    files, the SHA-256 of the content. ``{}`` when ``path`` does not exist.

    .. code:: python

        {
            "/opt/labhub": {"kind": "folder", "mode": 0o755, "user": "root", "group": "root",
                            "sha256": None},
            "/opt/labhub/compose.yaml": {"kind": "file", "mode": 0o644, "user": "root",
                                         "group": "root", "sha256": "5c1f..."},
        }
    """

    default = dict

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        # %y type, %m octal mode, owner, group, then the path (last: it may hold spaces).
        return (
            f"[ -e {quoted} ] || exit 0; "
            f"find {quoted} -xdev -printf '%y %m %u %g %p\\n' && echo {_HASHES} && "
            f"find {quoted} -xdev -type f -print0 | xargs -0 -r sha256sum"
        )

    def process(self, output) -> dict[str, EntryDict]:
        kinds = {"f": "file", "d": "folder", "l": "link"}
        entries: dict[str, EntryDict] = {}
        hashes = False
        for line in output:
            if line == _HASHES:
                hashes = True
            elif not hashes:
                parts = line.split(" ", 4)
                if len(parts) == 5:
                    kind, mode, user, group, path = parts
                    entries[path] = {
                        "kind": kinds.get(kind, "other"),
                        "mode": int(mode, 8),
                        "user": user,
                        "group": group,
                        "sha256": None,
                    }
            # sha256sum escapes a name with a backslash or newline in it (a leading "\"): such a
            # file keeps no hash and so never counts as up to date.
            elif not line.startswith("\\") and "  " in line:
                digest, path = line.split("  ", 1)
                if path in entries:
                    entries[path]["sha256"] = digest
        return entries


def folder_of(tree: dict[str, EntryDict], path: str) -> dict:
    """What ``FileTree`` says of ``path`` in the shape of ``folders.Folders``: its ``kind``
    (``missing``, ``folder``, ``other``) and the names in it (up to 20)."""
    entry = tree.get(path)
    if entry is None:
        return {"kind": "missing", "entries": [], "mounted": False}
    if entry["kind"] != "folder":
        return {"kind": "other", "entries": [], "mounted": False}
    prefix = path.rstrip("/") + "/"
    names = sorted(
        p[len(prefix) :] for p in tree if p.startswith(prefix) and "/" not in p[len(prefix) :]
    )
    return {"kind": "folder", "entries": names[:20], "mounted": False}


def managed_folders(host) -> tuple[str, ...]:
    """The folders labhub owns on the host, each read whole by ``files_at``: ``hub_dir`` (the
    stack, its build contexts) and ``/etc/labhub`` (credentials, backup settings)."""
    return (get_settings(host).hub_dir, CONFIG_DIR)


def _roots_of(host, path: str) -> list[str]:
    return [root for root in managed_folders(host) if PurePosixPath(path).is_relative_to(root)]


def is_managed(host, path: str) -> bool:
    """Whether ``path`` is in a folder of ``managed_folders`` (itself included)."""
    return bool(_roots_of(host, path))


def tree_root(host, path: str) -> str:
    """The folder of ``managed_folders`` that ``path`` is in (the innermost, should one hold
    the other), or ``OperationError``."""
    roots = _roots_of(host, path)
    if not roots:
        raise OperationError(
            f"{path} is not under a folder labhub manages ({', '.join(managed_folders(host))})"
        )
    return max(roots, key=lambda root: len(PurePosixPath(root).parts))


def files_at(host, path: str) -> dict[str, EntryDict]:
    """``FileTree`` of the managed folder ``path`` is in (``tree_root``): one read for the run,
    until an operation changes the host, shared by every path under that folder."""
    return read(host, FileTree, path=tree_root(host, path))
