"""
Files and folders under one folder on the host, written as a set: what is there is read in one
command (``labhub.facts.tree.FileTree`` of the set's root, shared by every operation given the
same root until something changes), and only what differs is uploaded. pyinfra's ``files.put``
and ``files.sync`` read each file's state and hash with commands of their own.
"""

from __future__ import annotations

import hashlib
from io import BytesIO
from pathlib import PurePosixPath

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, OperationError, QuoteString, StringCommand, operation
from pyinfra.api.output import format_text
from pyinfra.facts.files import FileContents
from pyinfra.operations.util.files import generate_color_diff

from labhub.facts import read
from labhub.facts.tree import FileTree


def _under(root: str, path: str) -> bool:
    return PurePosixPath(path).is_relative_to(root)


def _as_bytes(content: str | bytes) -> bytes:
    return content.encode() if isinstance(content, str) else content


def _show_diff(path: str, current: dict | None, content: bytes) -> None:
    host.log(f"Will {'modify' if current else 'create'} {format_text(path, bold=True)}",
             logger.info)
    try:
        desired = content.decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        logger.info("  binary file")
        return
    old = host.get_fact(FileContents, path=path) if current else None
    for line in generate_color_diff([f"{ln}\n" for ln in old or []], desired):
        logger.info("  %s", line)
    logger.info("")


def changes(root: str, files: dict[str, str | bytes], folders: list[str] | None = None,
            user: str = "root", group: str = "root", mode: str = "0644",
            folder_mode: str = "0755", modes: dict[str, str] | None = None,
            delete_under: str | None = None):
    """The commands that make the host's files under ``root`` as given (see ``written``); with
    ``delete_under``, the files and links under that folder that are not given are removed."""
    for path in [*files, *(folders or ())]:
        if not _under(root, path):
            raise OperationError(f"{path} is not under {root}")
    tree = read(host, FileTree, path=root)
    modes = modes or {}

    def fix(path: str, current: dict, wanted_mode: str):
        if (current["user"], current["group"]) != (user, group):
            yield StringCommand("chown", QuoteString(f"{user}:{group}"), QuoteString(path))
        if current["mode"] != int(wanted_mode, 8):
            yield StringCommand("chmod", wanted_mode, QuoteString(path))

    # Parents first: every folder from root down to each file and folder.
    needed = set()
    for path in [*files, *(folders or ())]:
        for parent in [PurePosixPath(path), *PurePosixPath(path).parents]:
            if _under(root, str(parent)):
                needed.add(str(parent))
    needed -= set(files)
    wanted_folders = sorted(needed, key=lambda p: (len(PurePosixPath(p).parts), p))
    for folder in wanted_folders:
        current = tree.get(folder)
        if current is None:
            yield StringCommand("install", "-d", "-m", folder_mode, "-o", QuoteString(user),
                                "-g", QuoteString(group), QuoteString(folder))
        elif current["kind"] != "folder":
            raise OperationError(f"{folder} is not a folder")
        elif folder in (folders or ()):
            yield from fix(folder, current, folder_mode)

    for path, content in files.items():
        data = _as_bytes(content)
        wanted_mode = modes.get(path, mode)
        current = tree.get(path)
        if current is not None and current["kind"] not in ("file", "link"):
            raise OperationError(f"{path} is not a file")
        if current is None or current["sha256"] != hashlib.sha256(data).hexdigest():
            if state.config.DIFF:
                _show_diff(path, current, data)
            yield FileUploadCommand(BytesIO(data), path,
                                    remote_temp_filename=host.get_temp_filename(path))
            # The upload leaves the file as the login user made it.
            yield StringCommand("chown", QuoteString(f"{user}:{group}"), QuoteString(path))
            yield StringCommand("chmod", wanted_mode, QuoteString(path))
        else:
            yield from fix(path, current, wanted_mode)

    if delete_under is not None:
        for path, current in sorted(tree.items()):
            if (current["kind"] != "folder" and _under(delete_under, path)
                    and path not in files):
                yield StringCommand("rm", "-f", QuoteString(path))


@operation()
def written(root: str, files: dict[str, str | bytes], folders: list[str] | None = None,
            user: str = "root", group: str = "root", mode: str = "0644",
            folder_mode: str = "0755", modes: dict[str, str] | None = None):
    """
    Files with this content, owner and mode, and folders with this owner and mode, all under
    ``root``; folders a file needs are created. ``--diff`` shows each change as ``files.put``
    does.

    + root: the folder read in one command; operations given the same root share that read
    + files: ``{path: content}``
    + folders: folders that must exist with ``folder_mode`` and the owner
    + user: owner of every file and folder
    + group: their group
    + mode: mode of the files
    + folder_mode: mode of the folders
    + modes: ``{path: mode}`` for files whose mode is not ``mode``

    **Example:**

    .. code:: python

        tree.written(
            name="Write the hub's files",
            root="/opt/labhub",
            files={"/opt/labhub/compose.yaml": compose_yaml},
            folders=["/opt/labhub", "/opt/labhub/hub"],
        )
    """
    commands = list(changes(root, files, folders, user, group, mode, folder_mode, modes))
    if not commands:
        host.noop(f"{len(files)} file(s) under {root} are as written")
    yield from commands


@operation()
def absent(root: str, paths: list[str]):
    """
    Files under ``root`` that must not be there, removed; read with the rest of ``root``'s tree
    (one command shared with ``written``).

    + root: the folder read in one command
    + paths: the files to remove when present

    **Example:**

    .. code:: python

        tree.absent(
            name="Remove the proxy's key",
            root="/opt/labhub",
            paths=["/opt/labhub/proxy/key.pem"],
        )
    """
    for path in paths:
        if not _under(root, path):
            raise OperationError(f"{path} is not under {root}")
    tree = read(host, FileTree, path=root)
    present = [path for path in paths if path in tree]
    if not present:
        host.noop(f"none of {', '.join(paths)} is there")
        return
    yield StringCommand("rm", "-f", *(QuoteString(path) for path in present))
