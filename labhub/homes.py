"""
The hub users' homes across the lab's servers (setting ``home_storage``): what the hub server
exports, and the fstab line that mounts each home where it is not on the server's own disk.
Pure functions, so that what a run writes can be checked without a host.

One line a home, at the home's own path (``/home/<account>``), never one for all of ``/home``:
a server's own accounts (the admin's SSH login, with its keys) stay on its disk and in sight, a
home stays where it is on an inventory without lab nodes, and the hub server exports exactly the
hub users' homes, nothing else of its ``/home``::

    # "export", on a lab node (the hub server exports /home/jupyter-alice to the nodes)
    hub.lab:/home/jupyter-alice /home/jupyter-alice nfs4 rw,x-labhub-home,_netdev,nofail,x-systemd.automount 0 0
    # {"nfs": "files.lab:/export/homes"}, on every server
    files.lab:/export/homes/jupyter-alice /home/jupyter-alice nfs rw,x-labhub-home,_netdev,nofail,x-systemd.automount 0 0

The ``x-labhub-home`` option marks a line as labhub's (mount ignores ``x-`` options): a home
no longer mounted is recognized by it, and other lines of the file are never touched.
"""

from __future__ import annotations

from labhub import accounts
from labhub.settings import USERS_GID, HomeStorage
from labhub.shares import BOOT_OPTIONS, CONFIG_DIR, FstabEntry

EXPORTS_FILE = "/etc/exports.d/labhub.exports"
# What a new account's home holds (useradd copies it): no user's files yet.
SKELETON = "/etc/skel"
# Written at once to the disk (sync), and root on a node is nobody on the homes (root_squash):
# a node's root cannot read or change a user's files through the export.
EXPORT_OPTIONS = ("rw", "sync", "root_squash", "no_subtree_check")
MARKER = "x-labhub-home"
# The credentials of a CIFS export of the homes; outside the shares' folder, whose files are
# the shares' (a share may have any name).
CREDENTIALS = f"{CONFIG_DIR}/home-credentials"
# A CIFS home is its user's alone, as a home on the disk is (accounts.HOME_MODE).
CIFS_HOME_OPTIONS = ("file_mode=0600", "dir_mode=0700")
# The packages with each kind of mount's helper (mount.nfs, mount.cifs).
CLIENT_PACKAGES = {"nfs4": "nfs-common", "nfs": "nfs-common", "cifs": "cifs-utils"}


def mounted_here(storage: HomeStorage, node: bool) -> bool:
    """Whether a server mounts the homes: every server from an existing export; with "export",
    the lab nodes (the hub server has them on its disk)."""
    return storage.kind != "export" or node


def exports(homes: list[str], clients: list[str]) -> str:
    """``/etc/exports.d/labhub.exports``: each home to each lab node's address alone."""
    options = ",".join(EXPORT_OPTIONS)
    lines = [
        '# Written by labhub (home_storage "export"): the hub users\' homes, to the lab nodes.',
        *(f"{home} {' '.join(f'{client}({options})' for client in clients)}" for home in homes),
    ]
    return "".join(f"{line}\n" for line in lines)


def fstype(storage: HomeStorage) -> str:
    # The hub server serves NFSv4, which needs no rpcbind or statd and one port (2049).
    return {"export": "nfs4", "nfs": "nfs", "cifs": "cifs"}[storage.kind]


def source(storage: HomeStorage, account: str, hub_address: str) -> str:
    """Where the home of ``account`` comes from: the hub server's ``/home/<account>`` or the
    account's folder on the existing export."""
    if storage.kind == "export":
        return f"{hub_address}:{accounts.home_of(account)}"
    root = storage.nfs if storage.nfs is not None else storage.cifs.source
    return f"{root.rstrip('/')}/{account}"


def mount_options(storage: HomeStorage, account: str) -> list[str]:
    options = ["rw"]
    own: tuple[str, ...] = storage.options
    if storage.cifs is not None:
        # mount.cifs takes the account by name: the uid of an account made in the same run.
        options += [f"uid={account}", f"gid={USERS_GID}", *CIFS_HOME_OPTIONS]
        options.append(f"credentials={CREDENTIALS}")
        own = storage.cifs.options
    options += [o for o in own if o not in options and o not in BOOT_OPTIONS]
    return [*options, MARKER, *BOOT_OPTIONS]


def fstab_line(storage: HomeStorage, account: str, hub_address: str) -> str:
    """The one ``/etc/fstab`` line of a home (paths never hold spaces)."""
    home = accounts.home_of(account)
    return (
        f"{source(storage, account, hub_address)} {home} {fstype(storage)} "
        f"{','.join(mount_options(storage, account))} 0 0"
    )


def is_labhub_home(entry: FstabEntry) -> bool:
    """A line this project wrote for a home (marked ``x-labhub-home``)."""
    return MARKER in entry.options


def hidden_files_problems(
    homes: list[str], entries: list[FstabEntry], folders: dict, skeleton: list[str]
) -> list[str]:
    """
    What keeps labhub from mounting the homes over the folders at their paths, before any
    change: a home folder holding more than the skeleton files an account gets (the mount would
    hide a user's files; they are never deleted, and labhub does not move them), something
    else mounted there, or an fstab line labhub did not write.
    """
    problems = []
    ours = {entry.mountpoint for entry in entries if is_labhub_home(entry)}
    for home in homes:
        for entry in entries:
            if entry.mountpoint == home and not is_labhub_home(entry):
                problems.append(
                    f"home_storage: /etc/fstab already mounts {entry.source} at {home} (line "
                    f"{entry.index + 1}, not written by labhub): labhub does not change it"
                )
        folder = folders.get(home)
        if home in ours or folder is None or folder["kind"] == "missing":
            continue
        if folder["kind"] == "other":
            problems.append(f"home_storage: {home} exists and is not a folder")
        elif folder["mounted"]:
            problems.append(f"home_storage: something is mounted at {home} already")
        elif extra := [name for name in folder["entries"] if name not in skeleton]:
            problems.append(
                f"home_storage: {home} holds files on this server's disk "
                f"({', '.join(extra[:5])}{', ...' if len(extra) > 5 else ''}) that mounting the "
                "home over it would hide: move them into the home's folder on the export "
                f"(rsync -a {home}/ ...), empty {home}, and deploy again"
            )
    return problems
