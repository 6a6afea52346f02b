"""
The hub users' homes, the same on every server of the lab (setting ``home_storage``). With
"export" (the default), the hub server keeps them on its disk and exports each over NFS to the
lab nodes alone; each node mounts them at the same paths. With an existing NFS or CIFS export,
every server mounts each home from its folder there. One fstab line a home, with a systemd
automount (``_netdev,nofail,x-systemd.automount``) like the shares: a file server that is down
never blocks boot, and its mount shows as an error in the run's results, naming the home, without
stopping the deploy. A home that is no longer mounted loses its line and its mount; nothing in
it, on the export or on the disk, is ever deleted. On an inventory without lab nodes, "export"
changes nothing.

    pyinfra inventory.py tasks/homes.py
"""

from io import StringIO

from pyinfra import host
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import File
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from labhub import accounts, cluster, homes, shares
from labhub.facts import read
from labhub.facts.folders import Folders
from labhub.facts.fstab import FstabLines
from labhub.facts.tree import files_at
from labhub.operations import fstab, packages, secret_files, tree
from labhub.settings import get_settings, url_host

NFS_SERVER = "nfs-kernel-server"

settings = get_settings(host)
storage = settings.home_storage
nodes = cluster.lab_nodes(host)
hub = cluster.hub_server(host)
wanted = {
    accounts.home_of(account): account
    for account in (settings.account_name(user.name) for user in settings.hub_users)
}
mounted_here = homes.mounted_here(storage, cluster.is_node(host))
entries = shares.parse_fstab(read(host, FstabLines, path=shares.FSTAB))
if mounted_here:
    # Refused before any change: a user's files on this server's disk are never hidden.
    folders = host.get_fact(Folders, paths=[homes.SKELETON, *wanted])
    problems = homes.hidden_files_problems(
        list(wanted), entries, folders, folders.get(homes.SKELETON, {}).get("entries", [])
    )
    if problems:
        raise OperationError(f"{host.name}: " + "; ".join(problems))

# The hub server's NFS export, to the nodes' addresses alone. Without nodes there is none: an
# exports file left from a lab that had nodes goes (looked for only where an NFS server was
# installed, so a server that never had nodes is asked nothing more).
exported = storage.kind == "export" and bool(nodes) and not cluster.is_node(host)
if exported:
    packages.installed(
        name="Install nfs-kernel-server (the homes' NFS server)",
        packages=[NFS_SERVER],
        update=True,
        cache_time=24 * 3600,
    )
    exports = files.put(
        name=f"Export the homes to the lab nodes: {homes.EXPORTS_FILE}",
        src=StringIO(homes.exports(sorted(wanted), [cluster.address(node) for node in nodes])),
        dest=homes.EXPORTS_FILE,
        user="root",
        group="root",
        mode="0644",
    )
elif NFS_SERVER in read(host, DebPackages) and host.get_fact(File, path=homes.EXPORTS_FILE):
    exports = files.file(
        name=f"No export of the homes without lab nodes: {homes.EXPORTS_FILE}",
        path=homes.EXPORTS_FILE,
        present=False,
    )
else:
    exports = None
if exports is not None:
    # exportfs also checks the file: a bad line fails here, naming it.
    server.shell(
        name="Export the homes as the exports files say (exportfs -ra)",
        commands=["exportfs -ra"],
        _if=exports.did_change,
    )
if exported:
    # The kernel's NFS server: an error here (a kernel without nfsd) does not stop the deploy;
    # the nodes' homes then fail to mount, each named in the run's results.
    systemd.service(
        name="The NFS server runs (nfs-server.service)",
        service="nfs-server",
        running=True,
        enabled=True,
        _ignore_errors=True,
    )

# Each home mounted on this server, unless it is on this server's disk.
mounts = wanted if mounted_here else {}
hub_address = url_host(cluster.address(hub))
if mounts:
    package = homes.CLIENT_PACKAGES[homes.fstype(storage)]
    packages.installed(
        name=f"Install {package} (the homes' mounts)",
        packages=[package],
        update=True,
        cache_time=24 * 3600,
    )
if mounts and storage.cifs is not None:
    tree.written(
        name=f"Create {shares.CONFIG_DIR}",
        files={},
        folders=[shares.CONFIG_DIR],
        folder_mode="0755",
    )
    secret_files.put(
        name=f"Credentials of the homes' CIFS export: {homes.CREDENTIALS}",
        src=storage.cifs.credentials,
        dest=homes.CREDENTIALS,
        user="root",
        group="root",
        mode="0600",
    )
elif homes.CREDENTIALS in files_at(host, shares.CONFIG_DIR):
    files.file(
        name=f"Remove the credentials of a former CIFS export of the homes: {homes.CREDENTIALS}",
        path=homes.CREDENTIALS,
        present=False,
    )

fstab_changes = []
for home, account in mounts.items():
    fstab.mount_point(name=f"Mount point of the home of {account}: {home}", path=home)
    line = homes.fstab_line(storage, account, hub_address)
    fstab_changes.append(fstab.entry(name=f"fstab: {line}", mountpoint=home, line=line))

# Lines labhub wrote for homes no longer mounted here: the home stays where it is kept.
for entry in entries:
    if homes.is_labhub_home(entry) and entry.mountpoint not in mounts:
        fstab.unmounted(name=f"Unmount the home at {entry.mountpoint}", path=entry.mountpoint)
        fstab_changes.append(
            fstab.entry(
                name=f"fstab: remove the line of the home at {entry.mountpoint}",
                mountpoint=entry.mountpoint,
                line=None,
            )
        )

if fstab_changes:
    fstab.units_reloaded(
        name="Reload systemd's fstab units and start the homes' automounts",
        _if=any_changed(*fstab_changes),
    )

# Last: a file server that does not answer is reported at the end, and the deploy goes on.
for home, account in mounts.items():
    fstab.mounted(
        name=f"Mount the home of {account} at {home}",
        path=home,
        fstype=("nfs", "nfs4") if storage.kind != "cifs" else "cifs",
        failure=(
            f"labhub: the home of {account} ({homes.source(storage, account, hub_address)}) is "
            f"not mounted at {home}: mounting it failed (see above); the deploy goes on "
            "without it, and it is mounted on first access once its server answers"
        ),
        _ignore_errors=True,
    )
