"""
Lines of ``/etc/fstab`` managed by mount point, and mounting and unmounting them through their
systemd units. Paired with ``labhub.facts.fstab``.
"""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.operations import files, systemd

from labhub.facts import read
from labhub.facts.fstab import FstabLines, mounts_at
from labhub.shares import FSTAB, parse_fstab, set_fstab_entry


@operation()
def entry(mountpoint: str, line: str | None, path: str = FSTAB):
    """
    Exactly one active fstab line for a mount point, or none.

    + mountpoint: the mount point (second field) the line is found by
    + line: the whole line; None removes every active line of that mount point
    + path: the fstab file

    A line of the mount point with other options is replaced in place, never duplicated; more
    than one active line for it are folded into one. Commented-out lines do not count and are
    kept, as is every other line. Unlike ``files.line``, an unanchored partial match cannot
    count as present.

    **Example:**

    .. code:: python

        fstab.entry(
            name="fstab line of /mnt/leem",
            mountpoint="/mnt/leem",
            line="//files.lab/leem /mnt/leem cifs ro,credentials=/etc/labhub/credentials/leem 0 0",
        )
    """

    lines = read(host, FstabLines, path=path)
    current = [e.line for e in parse_fstab(lines) if e.mountpoint == mountpoint]
    if current == ([] if line is None else [line]):
        host.noop(f"{path} has {'no line' if line is None else 'the line'} for {mountpoint}")
        return

    new = set_fstab_entry(lines, mountpoint, line)
    yield from files.put._inner(
        src=StringIO("".join(f"{ln}\n" for ln in new)),
        dest=path,
        user="root",
        group="root",
        mode="0644",
    )


@operation()
def units_reloaded():
    """
    systemd's mount and automount units made again from fstab, and the automounts of new lines
    started: a daemon reload, then ``remote-fs.target`` restarted. Call it once after a task's
    ``entry`` operations, with ``_if`` on their changes: every task that writes fstab lines calls
    it from its own line, so that it is a distinct operation on each host that runs it.

    **Example:**

    .. code:: python

        fstab.units_reloaded(
            name="Reload systemd's fstab units and start the share automounts",
            _if=any_changed(*fstab_changes),
        )
    """
    yield from systemd.service._inner(
        service="remote-fs.target", running=True, restarted=True, daemon_reload=True
    )


@operation()
def mount_point(path: str):
    """
    A mount point folder, created when missing and otherwise left as it is: a mode or owner set
    on it would land on what is mounted there. Read with the shares' mount points
    (``labhub.facts.fstab.mounts_at``).

    + path: the mount point

    **Example:**

    .. code:: python

        fstab.mount_point(name="Mount point of share leem", path="/mnt/leem")
    """
    if mounts_at(host, path)["exists"]:
        host.noop(f"{path} exists")
        return
    yield from files.directory._inner(path=path)


@operation()
def mounted(path: str, fstype: str | tuple[str, ...] | None, failure: str):
    """
    Mount a file system through its systemd mount unit (made from its fstab line) unless one of
    ``fstype`` is mounted there already.

    + path: the mount point (its line must be in fstab, and systemd reloaded since)
    + fstype: the file system type that counts as mounted (an automount point alone does not),
      or several (an ``nfs`` line mounts as ``nfs`` or ``nfs4``, as the server answers); None:
      any but an automount, as a lab sees it (a share's mount point holds nothing else)
    + failure: the message printed on stderr when mounting fails, after the mount's own errors

    Mounting through the unit, not ``mount``, keeps one mount where a systemd automount already
    watches the path. Call it with ``_ignore_errors=True`` where a failed mount must not stop the
    deploy: the operation then shows as an error in the run's results, never as a change.

    **Example:**

    .. code:: python

        fstab.mounted(
            name="Mount share leem at /mnt/leem",
            path="/mnt/leem",
            fstype="cifs",
            failure="share leem is not mounted",
            _ignore_errors=True,
        )
    """

    found = [t for t in mounts_at(host, path)["types"] if t != "autofs"]
    types = (fstype,) if isinstance(fstype, str) else fstype
    if set(found) & set(types or found):
        host.noop(f"{' or '.join(types or found)} is mounted at {path}")
        return
    # On failure, the mount helper's own error (from the journal) and then ours.
    yield StringCommand(
        "unit=$(systemd-escape",
        "--path",
        "--suffix=mount",
        QuoteString(path),
        ")",
        "&&",
        "since=$(date +%s)",
        "&&",
        "systemctl",
        "start",
        '"$unit"',
        "||",
        "{",
        "journalctl",
        "--unit",
        '"$unit"',
        "--since",
        '"@$since"',
        "--no-pager",
        "--output",
        "cat",
        ">&2;",
        "echo",
        QuoteString(failure),
        ">&2;",
        "exit",
        "1;",
        "}",
    )


@operation()
def unmounted(path: str):
    """
    Nothing mounted at ``path``: its systemd automount and mount units stopped, then any mount
    left unmounted. The mount point itself stays.

    + path: the mount point

    **Example:**

    .. code:: python

        fstab.unmounted(name="Unmount /mnt/old", path="/mnt/old")
    """

    if not mounts_at(host, path)["types"]:
        host.noop(f"nothing is mounted at {path}")
        return
    # Units that do not exist (a mount made by hand) are no error; what is left is unmounted.
    yield StringCommand(
        "systemctl",
        "stop",
        "$(systemd-escape",
        "--path",
        "--suffix=automount",
        QuoteString(path),
        ")",
        "$(systemd-escape",
        "--path",
        "--suffix=mount",
        QuoteString(path),
        ")",
        "||",
        "true",
    )
    yield StringCommand(
        "while",
        "findmnt",
        "--mountpoint",
        QuoteString(path),
        ">/dev/null;",
        "do",
        "umount",
        QuoteString(path),
        "||",
        "exit",
        "1;",
        "done",
    )
