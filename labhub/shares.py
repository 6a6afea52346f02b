"""
CIFS shares on the host: the fstab line of each share, where its credentials live, and the
editing of ``/etc/fstab`` by mount point. Pure functions, so that what a run writes can be
checked without a host.

A share's line, as the lab's original hand-edited fstab had it, plus a systemd automount so that
a share server that is down never blocks boot::

    //files.lab/leem /mnt/leem cifs ro,credentials=/etc/labhub/credentials/leem,_netdev,nofail,x-systemd.automount 0 0
    //files.lab/scratch /mnt/scratch cifs rw,uid=0,gid=100,file_mode=0664,dir_mode=0775,credentials=/etc/labhub/credentials/scratch,_netdev,nofail,x-systemd.automount 0 0

The ``credentials=`` option under ``CREDENTIALS_DIR`` marks a line as labhub's: a share removed
from the settings is recognized by it, and other lines of the file are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from labhub.settings import USERS_GID, Share

# labhub's own configuration on the host (read in one command with what is in it).
CONFIG_DIR = "/etc/labhub"
CREDENTIALS_DIR = f"{CONFIG_DIR}/credentials"
FSTAB = "/etc/fstab"
# Read-write shares: files belong to root and group users, which every notebook user is in, so
# all of them can write (the original setup's options). A share's own options override these.
RW_OPTIONS = ("uid=0", f"gid={USERS_GID}", "file_mode=0664", "dir_mode=0775")
# A share server that is down never blocks boot: mounted on first access, after the network.
BOOT_OPTIONS = ("_netdev", "nofail", "x-systemd.automount")
# How long a share's mount point is waited for once entered (which starts its automount): a lab
# starts without a share not mounted by then, and status names it (a server down).
MOUNT_WAIT = 3


def credentials_path(share_name: str) -> str:
    """Where the credentials file of a share lives on the host (root only)."""
    return f"{CREDENTIALS_DIR}/{share_name}"


def mount_options(share: Share) -> list[str]:
    """The share's mount options: mode, ownership for rw, credentials, its own, boot safety."""
    options: list[str] = [share.mode]
    own_keys = {option.split("=", 1)[0] for option in share.options}
    if share.mode == "rw":
        options += [o for o in RW_OPTIONS if o.split("=", 1)[0] not in own_keys]
    options.append(f"credentials={credentials_path(share.name)}")
    for option in share.options:
        if option not in options and option not in BOOT_OPTIONS:
            options.append(option)
    return options + list(BOOT_OPTIONS)


def fstab_line(share: Share) -> str:
    """The one ``/etc/fstab`` line of a share (sources and mount points never hold spaces)."""
    return f"{share.source} {share.mountpoint} cifs {','.join(mount_options(share))} 0 0"


@dataclass(frozen=True)
class FstabEntry:
    """One active (not commented-out) line of ``/etc/fstab``."""

    index: int
    line: str
    source: str
    mountpoint: str
    fstype: str
    options: tuple[str, ...]

    @property
    def credentials(self) -> str | None:
        for option in self.options:
            if option.startswith("credentials="):
                return option.split("=", 1)[1]
        return None

    @property
    def is_labhub_share(self) -> bool:
        """A CIFS line whose credentials labhub keeps: a line this project wrote."""
        credentials = self.credentials
        return (
            self.fstype == "cifs"
            and credentials is not None
            and PurePosixPath(credentials).parent == PurePosixPath(CREDENTIALS_DIR)
        )


def unescape_fstab(field: str) -> str:
    """fstab writes spaces and tabs in paths as octal escapes (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def parse_fstab(lines: list[str]) -> list[FstabEntry]:
    """The active entries of fstab lines; comments, blank and malformed lines are skipped."""
    entries = []
    for index, line in enumerate(lines):
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith("#"):
            continue
        options = tuple(fields[3].split(",")) if len(fields) > 3 else ()
        entries.append(
            FstabEntry(index, line, fields[0], unescape_fstab(fields[1]), fields[2], options)
        )
    return entries


def set_fstab_entry(lines: list[str], mountpoint: str, line: str | None) -> list[str]:
    """
    Lines of fstab with exactly one active entry for ``mountpoint``, ``line`` (in place of the
    first entry found there, or appended), or none when ``line`` is None. Commented-out lines
    and every other line are kept as they are.
    """
    matches = [e.index for e in parse_fstab(lines) if e.mountpoint == mountpoint]
    new: list[str] = []
    for index, current in enumerate(lines):
        if index not in matches:
            new.append(current)
        elif line is not None and index == matches[0]:
            new.append(line)
    if line is not None and not matches:
        new.append(line)
    return new


def new_mountpoints(settings_shares: tuple[Share, ...], entries: list[FstabEntry]) -> list[str]:
    """The mount points of shares that have no labhub fstab line yet (to be made)."""
    ours = {entry.mountpoint for entry in entries if entry.is_labhub_share}
    return [share.mountpoint for share in settings_shares if share.mountpoint not in ours]


def mountpoint_problems(
    settings_shares: tuple[Share, ...], entries: list[FstabEntry], folders: dict
) -> list[str]:
    """
    What keeps labhub from mounting the shares where they are declared, before any change: an
    fstab line at the mount point that labhub did not write, or a new mount point that is a file
    or a folder with something in it (the share would hide it).
    """
    problems = []
    for i, share in enumerate(settings_shares):
        for entry in entries:
            if entry.mountpoint == share.mountpoint and not entry.is_labhub_share:
                problems.append(
                    f"shares[{i}].mountpoint: /etc/fstab already mounts {entry.source} at "
                    f"{share.mountpoint} (line {entry.index + 1}, not written by labhub): labhub "
                    "does not change it"
                )
        folder = folders.get(share.mountpoint)
        if folder is None:
            continue
        if folder["kind"] == "other":
            problems.append(
                f"shares[{i}].mountpoint: {share.mountpoint} exists and is not a folder"
            )
        elif folder["entries"] or folder["mounted"]:
            what = (
                "something is mounted there"
                if folder["mounted"]
                else f"it holds {', '.join(folder['entries'][:5])}"
            )
            problems.append(
                f"shares[{i}].mountpoint: {share.mountpoint} is in use ({what}): the "
                "share would hide it; choose an empty or new folder"
            )
    return problems
