"""
tasks/users.py and tasks/homes.py (home_storage "export") on a hub server and one lab node,
fresh Debian 13 lab servers, over SSH, through pyinfra's CLI.

This machine's kernel has no NFS (no nfsd, no nfs client): the hub server's NFS server does not
start here and the node's NFS mounts fail, each reported without stopping the deploy. What the
deploy writes is checked whole: the exports file (``exportfs`` reads it), the node's fstab lines
and ``mount --fake --all``. Then a folder this machine shares between the two servers stands in
for the export: the hub server's /home is an engine volume, which the node has at
/srv/labhost-homes, and the node's NFS lines become binds of it
(``labhost.LabServer.stand_in_nfs``): a file the user writes on the hub server is seen on the
node, with the same owner.
"""

from __future__ import annotations

import uuid

import pytest

import labhost

pytestmark = pytest.mark.e2e

USERS = [{"name": "alice", "uid": 2101}, {"name": "bob", "uid": 2102}]
HOMES = ["/home/jupyter-alice", "/home/jupyter-bob"]
SHARED_AT = "/srv/labhost-homes"
OPTIONS = "rw,x-labhub-home,_netdev,nofail,x-systemd.automount"
BOOT_CIFS = "x-labhub-home,_netdev,nofail,x-systemd.automount"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The hub server, with its /home on a volume, and the node, which has it elsewhere."""
    volume = f"labhost-homes-{uuid.uuid4().hex[:8]}"
    hub = labhost.start_lab_server("homes-hub", volumes={volume: "/home"})
    try:
        node = labhost.start_lab_server("homes-node", volumes={volume: SHARED_AT})
    except BaseException:
        hub.remove()
        labhost.remove_volume(volume)
        raise
    try:
        yield hub, node
    finally:
        hub.remove()
        node.remove()
        labhost.remove_volume(volume)


@pytest.fixture(scope="module")
def inventory(lab, tmp_path_factory):
    hub, node = lab
    data = {"hub_users": USERS}
    path = tmp_path_factory.mktemp("homes") / "inventory.py"
    return labhost.write_inventory(path, [(hub, data)], [(node, data)])


def deploy(inventory, dry=False) -> labhost.PyinfraRun:
    return labhost.run_pyinfra(inventory, "tasks/users.py", "tasks/homes.py", dry=dry).check()


@pytest.fixture(scope="module")
def single_server_dry_run(lab, tmp_path_factory):
    """The homes task on the fresh hub server alone, as an inventory without nodes has it."""
    hub, _ = lab
    path = tmp_path_factory.mktemp("single") / "inventory.py"
    return labhost.run_pyinfra(
        hub.inventory_file({"hub_users": USERS}, path), "tasks/homes.py", dry=True
    ).check()


@pytest.fixture(scope="module")
def first_run(single_server_dry_run, inventory):
    return deploy(inventory)


def test_a_fresh_single_server_plans_nothing_of_homes(single_server_dry_run):
    assert single_server_dry_run.planned_changes == []
    assert not single_server_dry_run.result["plan"], single_server_dry_run.result["plan"]


def fstab(server) -> list[str]:
    return server.exec("cat /etc/fstab").splitlines()


def test_the_hub_server_exports_the_homes_to_the_node_alone(first_run, lab):
    hub, node = lab
    assert hub.exec("cat /etc/exports.d/labhub.exports").splitlines()[1:] == [
        f"{home} {node.address}(rw,sync,root_squash,no_subtree_check)" for home in HOMES
    ]
    # exportfs read the file: the export table names each home, to the node's address alone.
    table = hub.exec("exportfs -s").split("\n")
    for home in HOMES:
        assert any(line.startswith(home) and node.address in line for line in table), table
    assert hub.address not in hub.exec("cat /etc/exports.d/labhub.exports")


def test_the_hub_server_mounts_nothing_over_its_homes(first_run, lab):
    hub, _ = lab
    assert not [line for line in fstab(hub) if "x-labhub-home" in line]
    owners = hub.exec(f"stat -c '%u %a %n' {' '.join(HOMES)}").splitlines()
    assert owners == [f"2101 700 {HOMES[0]}", f"2102 700 {HOMES[1]}"]


def test_the_node_has_one_fstab_line_a_home(first_run, lab):
    hub, node = lab
    lines = [line for line in fstab(node) if "x-labhub-home" in line]
    assert lines == [f"{hub.address}:{home} {home} nfs4 {OPTIONS} 0 0" for home in HOMES]
    # The node's own accounts stay on its disk, in sight: the admin logs in with its key.
    assert node.exec("ls /home/labadmin/.ssh") == "authorized_keys\n"


def test_mount_accepts_the_node_fstab(first_run, lab):
    _, node = lab
    node.automounts("stop", HOMES)
    try:
        out = node.exec("mount --fake --all --verbose 2>&1")
    finally:
        node.automounts("start", HOMES)
    for home in HOMES:
        assert f"{home}" in out and "successfully mounted" in out, out


def test_the_node_reports_each_home_it_cannot_mount(first_run):
    # No NFS client in this kernel: the mount fails, is named, and stops nothing.
    errors = [op["name"] for op in first_run.result["results"]["operations"] if op["error"]]
    assert "Mount the home of jupyter-alice at /home/jupyter-alice" in errors
    assert "labhub: the home of jupyter-alice" in first_run.stderr + first_run.stdout


def test_rerun_changes_nothing(first_run, inventory):
    again = deploy(inventory)
    assert again.changed == 0, again.changed_operations


def test_without_nodes_the_hub_server_stops_exporting(first_run, lab, tmp_path):
    hub, _ = lab
    run = labhost.run_pyinfra(
        hub.inventory_file({"hub_users": USERS}, tmp_path / "one.py"), "tasks/homes.py", dry=True
    ).check()
    # The exports file of a lab that had nodes goes; nothing else is planned.
    assert run.planned_changes == [
        "No export of the homes without lab nodes: /etc/exports.d/labhub.exports",
        "Export the homes as the exports files say (exportfs -ra)",
    ]


def test_a_file_of_the_user_on_the_hub_server_is_on_the_node(first_run, lab):
    hub, node = lab
    node.stand_in_nfs(HOMES, export="/home", shared_at=SHARED_AT)
    hub.exec("echo from-the-hub > /home/jupyter-alice/notes.txt", user="jupyter-alice")
    assert node.exec("cat /home/jupyter-alice/notes.txt") == "from-the-hub\n"
    assert node.exec("stat -c '%u %U' /home/jupyter-alice/notes.txt") == "2101 jupyter-alice\n"
    if labhost.HAS_AUTOFS:
        assert "autofs" in node.exec("findmnt --noheadings --output FSTYPE /home/jupyter-alice")


def test_an_existing_export_never_hides_a_user_file_on_the_disk(first_run, lab, inventory):
    hub, _ = lab
    before = fstab(hub)
    hub.exec("echo mine > /home/jupyter-bob/results.csv", user="jupyter-bob")
    run = labhost.run_pyinfra(
        inventory,
        "tasks/users.py",
        "tasks/homes.py",
        data={"home_storage": {"nfs": "files.lab:/export/homes"}},
    )
    assert run.returncode != 0
    assert (
        "home_storage: /home/jupyter-bob holds files on this server's disk (results.csv) that "
        "mounting the home over it would hide" in run.stdout + run.stderr
    )
    assert fstab(hub) == before
    assert hub.exec("cat /home/jupyter-bob/results.csv") == "mine\n"


# --- An existing CIFS export, on an inventory of one server ---------------------------------------

CIFS_PASSWORD = "homes-Pa55word-e2e"


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """A server of its own, deployed with the homes on an existing CIFS export."""
    folder = tmp_path_factory.mktemp("cifs")
    credentials = labhost.write_secret(
        folder / "homes.cred", f"username=labhomes\npassword={CIFS_PASSWORD}\n"
    )
    server = labhost.start_lab_server("homes-single")
    try:
        server.exec("echo '127.0.0.1 files.lab' >> /etc/hosts")
        data = {
            "hub_users": USERS,
            "home_storage": {
                "cifs": {"source": "//files.lab/homes", "credentials": str(credentials)}
            },
        }
        inventory = server.inventory_file(data, folder / "inventory.py")
        run = labhost.run_pyinfra(
            inventory, "tasks/users.py", "tasks/homes.py", extra=("--diff",)
        ).check()
        yield server, inventory, run
    finally:
        server.remove()


def test_an_existing_export_is_mounted_on_a_single_server(single):
    server, _, run = single
    lines = [line for line in fstab(server) if "x-labhub-home" in line]
    assert lines == [
        f"//files.lab/homes/{account} /home/{account} cifs rw,uid={account},gid=100,"
        f"file_mode=0600,dir_mode=0700,credentials=/etc/labhub/home-credentials,{BOOT_CIFS} 0 0"
        for account in ("jupyter-alice", "jupyter-bob")
    ]
    assert server.exec("stat -c '%U %a' /etc/labhub/home-credentials") == "root 600\n"
    assert CIFS_PASSWORD not in run.stdout + run.stderr
    # No home was made on the server's disk: each is the export's folder.
    assert server.exec("ls -A /home/jupyter-alice /home/jupyter-bob").split() == [
        "/home/jupyter-alice:",
        "/home/jupyter-bob:",
    ]
    assert "labhub: the home of jupyter-alice (//files.lab/homes/jupyter-alice)" in (
        run.stdout + run.stderr
    )


def test_mount_accepts_the_single_server_fstab(single):
    server, _, _ = single
    server.automounts("stop", HOMES)
    try:
        out = server.exec("mount --fake --all --verbose 2>&1")
    finally:
        server.automounts("start", HOMES)
    assert out.count("successfully mounted") >= len(HOMES), out


def test_rerun_on_the_single_server_changes_nothing(single):
    _, inventory, _ = single
    again = deploy(inventory)
    assert again.changed == 0, again.changed_operations
