"""
The homes across the lab's servers without a host: home_storage with the error a lab admin
sees, the hub server's exports file, the fstab line each home becomes, and what keeps a home
from being mounted over a folder of the server's disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labhost import write_secret
from labhub import homes, shares
from labhub.facts.folders import Folders
from labhub.settings import SettingsError, validate


@pytest.fixture
def credentials(tmp_path: Path) -> str:
    path = tmp_path / "homes.cred"
    return str(write_secret(path, "username=labhomes\npassword=not-a-real-one\n"))


def storage(value):
    return validate({"home_storage": value}, "lab1").home_storage


def problems(value) -> list[str]:
    with pytest.raises(SettingsError) as excinfo:
        validate({"home_storage": value}, "lab1")
    return [line.strip() for line in str(excinfo.value).splitlines()[1:]]


# --- home_storage --------------------------------------------------------------------------------


def test_the_default_is_the_hub_server_export():
    assert validate({}, "lab1").home_storage.kind == "export"
    assert storage("export").kind == "export"


def test_an_nfs_export_is_kept_in_one_spelling():
    assert storage({"nfs": "files.lab:/export//homes/"}).nfs == "files.lab:/export/homes"
    assert storage({"nfs": "10.0.0.5:/homes", "options": "vers=4.2,hard"}).options == (
        "vers=4.2",
        "hard",
    )
    assert storage({"nfs": "[fd00::5]:/homes"}).nfs == "[fd00::5]:/homes"


def test_a_cifs_export_is_given_like_a_share(credentials):
    cifs = storage({"cifs": {"source": "//files.lab/homes", "credentials": credentials}})
    assert cifs.kind == "cifs" and cifs.cifs.source == "//files.lab/homes"


NFS_RULE = (
    "is not an NFS export like server:/export (a server name or address, then an absolute path "
    "without spaces or commas)"
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "nfs",
            "home_storage: 'nfs' is not \"export\" (the hub server exports the homes over NFS), "
            '{"nfs": "server:/export"} or {"cifs": {"source": ..., "credentials": ...}}',
        ),
        ({}, 'home_storage: an empty mapping: give "export", {"nfs": ...} or {"cifs": {...}}'),
        ({"nfs": "files.lab"}, f"home_storage.nfs: 'files.lab' {NFS_RULE}"),
        ({"nfs": "files.lab:homes"}, f"home_storage.nfs: 'files.lab:homes' {NFS_RULE}"),
        ({"nfs": "files.lab:/lab homes"}, f"home_storage.nfs: 'files.lab:/lab homes' {NFS_RULE}"),
        ({"nfs": "files lab:/homes"}, f"home_storage.nfs: 'files lab:/homes' {NFS_RULE}"),
        (
            {"nfs": "files.lab:/a/../etc"},
            "home_storage.nfs: '/a/../etc' must be a path without '..'",
        ),
        (
            {"nfs": "files.lab:/homes", "options": ["noauto"]},
            "home_storage.options: mount option 'noauto' is not allowed: labhub mounts every "
            "share and home at boot through a systemd automount",
        ),
        (
            {"nfs": "files.lab:/homes", "options": ["vers=4 x"]},
            "home_storage.options: mount option 'vers=4 x' may not contain spaces or commas",
        ),
        (
            {"options": ["vers=4.2"]},
            "home_storage: options go with nfs (a CIFS export's options go in its own mapping)",
        ),
        ({"nfs": "files.lab:/homes", "mode": "ro"}, "home_storage.mode: unknown setting"),
        (
            {"cifs": {"source": "files.lab/homes", "credentials": "/nonexistent/homes.cred"}},
            "home_storage.cifs.source: 'files.lab/homes' is not a CIFS source like "
            "//server/share (no spaces)",
        ),
        (
            {"cifs": {"source": "//files.lab/homes"}},
            "home_storage.cifs.credentials: Field required",
        ),
    ],
)
def test_bad_home_storage_is_named(value, expected):
    assert expected in problems(value)


def test_a_cifs_export_takes_no_login_in_its_options(credentials):
    value = {"cifs": {"source": "//f/homes", "credentials": credentials, "options": ["pass=x"]}}
    assert problems(value) == [
        "home_storage.cifs.options: mount option 'pass' is not allowed (mount.cifs reads it "
        "as the password): put the login in the credentials file"
    ]


def test_nfs_and_cifs_together_are_refused(credentials):
    value = {"nfs": "f:/homes", "cifs": {"source": "//f/homes", "credentials": credentials}}
    assert problems(value) == ["home_storage: give nfs or cifs, not both"]


# --- What the servers get --------------------------------------------------------------------------


def test_mounted_on_the_nodes_alone_with_the_hub_server_export(credentials):
    assert [homes.mounted_here(storage("export"), node) for node in (False, True)] == [False, True]
    nfs = storage({"nfs": "f:/homes"})
    assert [homes.mounted_here(nfs, node) for node in (False, True)] == [True, True]


def test_the_exports_file_names_each_home_to_the_nodes_alone():
    assert homes.exports(
        ["/home/jupyter-alice", "/home/jupyter-bob"], ["10.0.0.21", "gpu1.lab"]
    ).splitlines() == [
        '# Written by labhub (home_storage "export"): the hub users\' homes, to the lab nodes.',
        "/home/jupyter-alice 10.0.0.21(rw,sync,root_squash,no_subtree_check) "
        "gpu1.lab(rw,sync,root_squash,no_subtree_check)",
        "/home/jupyter-bob 10.0.0.21(rw,sync,root_squash,no_subtree_check) "
        "gpu1.lab(rw,sync,root_squash,no_subtree_check)",
    ]


BOOT = "x-labhub-home,_netdev,nofail,x-systemd.automount"


def test_fstab_line_of_a_home_from_the_hub_server():
    line = homes.fstab_line(storage("export"), "jupyter-alice", "hub.lab")
    assert line == f"hub.lab:/home/jupyter-alice /home/jupyter-alice nfs4 rw,{BOOT} 0 0"


def test_fstab_line_of_a_home_on_an_nfs_export():
    nfs = storage({"nfs": "files.lab:/export/homes", "options": ["vers=4.2", "nofail"]})
    assert homes.fstab_line(nfs, "jupyter-alice", "hub.lab") == (
        f"files.lab:/export/homes/jupyter-alice /home/jupyter-alice nfs rw,vers=4.2,{BOOT} 0 0"
    )
    root = storage({"nfs": "files.lab:/"})
    assert homes.source(root, "jupyter-alice", "hub.lab") == "files.lab:/jupyter-alice"


def test_fstab_line_of_a_home_on_a_cifs_export(credentials):
    cifs = storage(
        {"cifs": {"source": "//files.lab/homes", "credentials": credentials, "options": "vers=3.0"}}
    )
    assert homes.fstab_line(cifs, "jupyter-alice", "hub.lab") == (
        "//files.lab/homes/jupyter-alice /home/jupyter-alice cifs rw,uid=jupyter-alice,gid=100,"
        "file_mode=0600,dir_mode=0700,credentials=/etc/labhub/home-credentials,vers=3.0,"
        f"{BOOT} 0 0"
    )


def test_a_home_line_is_never_taken_for_a_share(credentials):
    cifs = storage({"cifs": {"source": "//files.lab/homes", "credentials": credentials}})
    (entry,) = shares.parse_fstab([homes.fstab_line(cifs, "jupyter-alice", "hub.lab")])
    assert homes.is_labhub_home(entry) and not entry.is_labhub_share
    (share_line,) = shares.parse_fstab(
        ["//f/leem /mnt/leem cifs ro,credentials=/etc/labhub/credentials/leem,_netdev 0 0"]
    )
    assert share_line.is_labhub_share and not homes.is_labhub_home(share_line)


# --- Never over a user's files ---------------------------------------------------------------------

# Folders' output on a hub server: alice's home is new (skeleton files), bob's has his work.
FOLDERS_OUTPUT = [
    "@ folder n /etc/skel",
    ". .bash_logout",
    ". .bashrc",
    ". .profile",
    "@ folder n /home/jupyter-alice",
    ". .bash_logout",
    ". .bashrc",
    ". .profile",
    "@ folder n /home/jupyter-bob",
    ". .bashrc",
    ". results.csv",
    ". thesis",
    "@ missing n /home/jupyter-carol",
    "@ folder y /home/jupyter-dave",
]
HOMES = [f"/home/jupyter-{name}" for name in ("alice", "bob", "carol", "dave")]


def test_a_home_with_a_user_file_on_the_disk_is_refused():
    folders = Folders().process(FOLDERS_OUTPUT)
    found = homes.hidden_files_problems(HOMES, [], folders, folders["/etc/skel"]["entries"])
    assert found == [
        "home_storage: /home/jupyter-bob holds files on this server's disk (results.csv, thesis) "
        "that mounting the home over it would hide: move them into the home's folder on the "
        "export (rsync -a /home/jupyter-bob/ ...), empty /home/jupyter-bob, and deploy again",
        "home_storage: something is mounted at /home/jupyter-dave already",
    ]


def test_a_home_labhub_mounts_already_is_no_problem_and_another_line_is():
    folders = Folders().process(FOLDERS_OUTPUT)
    entries = shares.parse_fstab(
        [
            f"f:/homes/jupyter-bob /home/jupyter-bob nfs rw,{BOOT} 0 0",
            f"f:/homes/jupyter-dave /home/jupyter-dave nfs rw,{BOOT} 0 0",
            "old:/dave /home/jupyter-dave nfs rw 0 0",
        ]
    )
    found = homes.hidden_files_problems(HOMES, entries, folders, folders["/etc/skel"]["entries"])
    assert found == [
        "home_storage: /etc/fstab already mounts old:/dave at /home/jupyter-dave (line 3, not "
        "written by labhub): labhub does not change it"
    ]
