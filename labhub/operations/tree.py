"""
Files and folders in the folders labhub manages on the host, written as a set: what is there is
read in one command (``labhub.facts.tree.files_at``: the tree of ``hub_dir`` or ``/etc/labhub``,
shared by every operation on files there until something changes), and only what differs is
uploaded. pyinfra's ``files.put`` and ``files.sync`` read each file's state and hash with
commands of their own.
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

from labhub.facts.tree import files_at, tree_root


def _under(root: str, path: str) -> bool:
    return PurePosixPath(path).is_relative_to(root)


def _as_bytes(content: str | bytes) -> bytes:
    return content.encode() if isinstance(content, str) else content


def _show_diff(path: str, current: dict | None, content: bytes) -> None:
    host.log(
        f"Will {'modify' if current else 'create'} {format_text(path, bold=True)}", logger.info
    )
    try:
        desired = content.decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        logger.info("  binary file")
        return
    old = host.get_fact(FileContents, path=path) if current else None
    for line in generate_color_diff([f"{ln}\n" for ln in old or []], desired):
        logger.info("  %s", line)
    logger.info("")


def changes(
    files: dict[str, str | bytes],
    folders: list[str] | None = None,
    user: str = "root",
    group: str = "root",
    mode: str = "0644",
    folder_mode: str = "0755",
    modes: dict[str, str] | None = None,
    delete_under: str | None = None,
):
    """The commands that make the host's files as given (see ``written``); with
    ``delete_under``, the files and links under that folder that are not given are removed."""
    roots = {path: tree_root(host, path) for path in [*files, *(folders or ())]}
    modes = modes or {}

    def fix(path: str, current: dict, wanted_mode: str):
        if (current["user"], current["group"]) != (user, group):
            yield StringCommand("chown", QuoteString(f"{user}:{group}"), QuoteString(path))
        if current["mode"] != int(wanted_mode, 8):
            yield StringCommand("chmod", wanted_mode, QuoteString(path))

    # Parents first: every folder from the managed folder down to each file and folder.
    needed = set()
    for path, root in roots.items():
        for parent in [PurePosixPath(path), *PurePosixPath(path).parents]:
            if _under(root, str(parent)):
                needed.add(str(parent))
    needed -= set(files)
    wanted_folders = sorted(needed, key=lambda p: (len(PurePosixPath(p).parts), p))
    for folder in wanted_folders:
        current = files_at(host, folder).get(folder)
        if current is None:
            yield StringCommand(
                "install",
                "-d",
                "-m",
                folder_mode,
                "-o",
                QuoteString(user),
                "-g",
                QuoteString(group),
                QuoteString(folder),
            )
        elif current["kind"] != "folder":
            raise OperationError(f"{folder} is not a folder")
        elif folder in (folders or ()):
            yield from fix(folder, current, folder_mode)

    for path, content in files.items():
        data = _as_bytes(content)
        wanted_mode = modes.get(path, mode)
        current = files_at(host, path).get(path)
        if current is not None and current["kind"] not in ("file", "link"):
            raise OperationError(f"{path} is not a file")
        if current is None or current["sha256"] != hashlib.sha256(data).hexdigest():
            if state.config.DIFF:
                _show_diff(path, current, data)
            yield FileUploadCommand(
                BytesIO(data), path, remote_temp_filename=host.get_temp_filename(path)
            )
            # The upload leaves the file as the login user made it.
            yield StringCommand("chown", QuoteString(f"{user}:{group}"), QuoteString(path))
            yield StringCommand("chmod", wanted_mode, QuoteString(path))
        else:
            yield from fix(path, current, wanted_mode)

    if delete_under is not None:
        for path, current in sorted(files_at(host, delete_under).items()):
            if current["kind"] != "folder" and _under(delete_under, path) and path not in files:
                yield StringCommand("rm", "-f", QuoteString(path))


@operation()
def written(
    files: dict[str, str | bytes],
    folders: list[str] | None = None,
    user: str = "root",
    group: str = "root",
    mode: str = "0644",
    folder_mode: str = "0755",
    modes: dict[str, str] | None = None,
):
    """
    Files with this content, owner and mode, and folders with this owner and mode, all in the
    folders labhub manages (``labhub.facts.tree.managed_folders``); folders a file needs are
    created, from the managed folder down. ``--diff`` shows each change as ``files.put`` does.

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
            files={"/opt/labhub/compose.yaml": compose_yaml},
            folders=["/opt/labhub", "/opt/labhub/hub"],
        )
    """
    commands = list(changes(files, folders, user, group, mode, folder_mode, modes))
    if not commands:
        roots = sorted({tree_root(host, path) for path in [*files, *(folders or ())]})
        host.noop(f"{len(files)} file(s) under {', '.join(roots)} are as written")
    yield from commands


@operation()
def absent(paths: list[str]):
    """
    Files in the folders labhub manages that must not be there, removed; read with the rest of
    their folder's tree (one command shared with ``written``).

    + paths: the files to remove when present

    **Example:**

    .. code:: python

        tree.absent(
            name="Remove the proxy's key",
            paths=["/opt/labhub/proxy/key.pem"],
        )
    """
    present = [path for path in paths if path in files_at(host, path)]
    if not present:
        host.noop(f"none of {', '.join(paths)} is there")
        return
    yield StringCommand("rm", "-f", *(QuoteString(path) for path in present))
