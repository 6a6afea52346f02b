"""
Hub users and shares without a host: every name and share rule with the error a lab admin sees,
the fstab lines a share becomes, the editing of fstab by mount point, and the facts' parsing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from labhost import write_secret
from labhub import accounts, shares, stack
from labhub.facts.accounts import LocalAccounts, LocalGroups
from labhub.facts.fstab import MountsAt
from labhub.settings import ROOT, SettingsError, validate


@pytest.fixture
def credentials(tmp_path: Path) -> str:
    path = tmp_path / "leem.cred"
    return str(write_secret(path, "username=labuser\npassword=not-a-real-one\ndomain=LAB\n"))


def share(credentials: str, **fields) -> dict:
    return {
        "name": "leem",
        "source": "//files.lab/leem",
        "mountpoint": "/mnt/leem",
        "mode": "ro",
        "credentials": credentials,
        **fields,
    }


def problems(**data) -> list[str]:
    with pytest.raises(SettingsError) as excinfo:
        validate(data, "lab1")
    header, *lines = str(excinfo.value).splitlines()
    assert header == "invalid labhub settings for lab1:"
    return [line.strip() for line in lines]


# --- Hub user names ------------------------------------------------------------------------------

NAME_RULE = "use lower case letters, digits, '_' and '-', starting with a letter"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"hub_users": ["Alice"]},
            f"hub_users[0].name: 'Alice' is not a valid hub user name: {NAME_RULE}",
        ),
        (
            {"hub_users": ["1alice"]},
            f"hub_users[0].name: '1alice' is not a valid hub user name: {NAME_RULE}",
        ),
        (
            {"hub_users": ["_alice"]},
            f"hub_users[0].name: '_alice' is not a valid hub user name: {NAME_RULE}",
        ),
        (
            {"hub_users": ["al.ice"]},
            f"hub_users[0].name: 'al.ice' is not a valid hub user name: {NAME_RULE}",
        ),
        (
            {"hub_users": ["al ice"]},
            f"hub_users[0].name: 'al ice' is not a valid hub user name: {NAME_RULE}",
        ),
        (
            {"hub_users": ["bob", ""]},
            f"hub_users[1].name: '' is not a valid hub user name: {NAME_RULE}",
        ),
        ({"hub_users": ["alice", "bob", "alice"]}, "hub_users[2]: 'alice' is listed twice"),
        (
            {"hub_users": ["a" * 25]},
            f"hub_users[0]: account name 'jupyter-{'a' * 25}' is 33 characters, more than 32",
        ),
        (
            {"hub_users": ["alice"], "hub_admins": ["bob"]},
            "hub_admins[0]: 'bob' is not in hub_users",
        ),
        ({"hub_users": [], "hub_admins": ["alice"]}, "hub_admins[0]: 'alice' is not in hub_users"),
        (
            {"hub_users": [{"name": "alice", "uid": 999}]},
            "hub_users[0].uid: Input should be greater than or equal to 1000 (got 999)",
        ),
        (
            {"hub_users": [{"name": "alice", "uid": "2001"}]},
            "hub_users[0].uid: should be a whole number (got '2001')",
        ),
        (
            {"hub_users": [{"name": "alice", "uid": 2001}, {"name": "bob", "uid": 2001}]},
            "hub_users: uid 2001 is pinned for more than one user",
        ),
        (
            {"hub_users": [{"name": "alice", "groups": ["Leem"]}]},
            "hub_users[0].groups[0]: 'Leem' is not a valid Linux group name",
        ),
        (
            {"hub_users": [{"name": "alice", "shell": "/bin/zsh"}]},
            "hub_users[0].shell: unknown setting",
        ),
        ({"hub_users": [{"uid": 2001}]}, "hub_users[0].name: Field required"),
        (
            {"user_prefix": "Jupyter-"},
            "user_prefix: 'Jupyter-' must start with a lower case letter and use a-z0-9_-",
        ),
    ],
)
def test_hub_user_rules(data, expected):
    assert expected in problems(**data)


def test_account_name_limit_counts_the_prefix():
    assert validate({"hub_users": ["a" * 24]}).account_name("a" * 24) == "jupyter-" + "a" * 24
    assert problems(hub_users=["abcdefghijkl"], user_prefix="labhub-notebook-user-") == [
        "hub_users[0]: account name 'labhub-notebook-user-abcdefghijkl' is 33 characters, "
        "more than 32"
    ]


def test_all_name_problems_are_reported_together():
    lines = problems(hub_users=["Alice", "bob", "bob"], hub_admins=["carol"])
    assert lines == [
        f"hub_users[0].name: 'Alice' is not a valid hub user name: {NAME_RULE}",
    ]  # a bad name stops the cross-field checks: they need valid users
    lines = problems(hub_users=["alice", "bob", "bob"], hub_admins=["carol"])
    assert lines == [
        "hub_users[2]: 'bob' is listed twice",
        "hub_admins[0]: 'carol' is not in hub_users",
    ]


def test_hub_users_accept_names_and_mappings():
    settings = validate(
        {
            "hub_users": ["alice", {"name": "bob", "uid": 2001, "groups": ["leem"]}],
            "hub_admins": ["bob"],
        }
    )
    assert [settings.account_name(user.name) for user in settings.hub_users] == [
        "jupyter-alice",
        "jupyter-bob",
    ]
    assert settings.hub_users[1].uid == 2001 and settings.hub_users[0].uid is None
    assert (
        validate({"hub_users": ["alice"], "user_prefix": "lab-"}).account_name("alice")
        == "lab-alice"
    )


# --- Shares -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"name": "Leem"},
            "shares[0].name: 'Leem' is not a valid share name (a-z, 0-9, '_', '.', '-')",
        ),
        ({"name": "lab/book"}, "shares[0].name: 'lab/book' is not a valid share name"),
        (
            {"source": "\\\\files.lab\\leem"},
            "shares[0].source: '\\\\\\\\files.lab\\\\leem' is not a CIFS source like //server/share (no spaces)",
        ),
        (
            {"source": "//files.lab"},
            "shares[0].source: '//files.lab' is not a CIFS source like //server/share",
        ),
        (
            {"source": "//files.lab/lab book"},
            "shares[0].source: '//files.lab/lab book' is not a CIFS source",
        ),
        (
            {"mountpoint": "mnt/leem"},
            "shares[0].mountpoint: 'mnt/leem' must be an absolute path without '..'",
        ),
        (
            {"mountpoint": "/mnt/../etc"},
            "shares[0].mountpoint: '/mnt/../etc' must be a path without '..'",
        ),
        (
            {"mountpoint": "/"},
            "shares[0].mountpoint: '/' is a system folder: use a folder inside it",
        ),
        (
            {"mountpoint": "/mnt/lab book"},
            "shares[0].mountpoint: '/mnt/lab book' may not contain spaces",
        ),
        ({"mode": "readonly"}, "shares[0].mode: Input should be 'ro' or 'rw' (got 'readonly')"),
        (
            {"options": ["password=hunter2"]},
            "shares[0].options: mount option 'password' is not allowed (mount.cifs reads it as the password): put the login in the credentials file",
        ),
        (
            {"options": "vers=3.0,username=lab"},
            "shares[0].options: mount option 'username' is not allowed (mount.cifs reads it as the user name): put the login in the credentials file",
        ),
        (
            {"options": ["rw"]},
            "shares[0].options: mount option 'rw' is not allowed (mount.cifs reads it as rw): set the share's mode instead",
        ),
        (
            {"options": ["noauto"]},
            "shares[0].options: mount option 'noauto' is not allowed: labhub mounts every share and home at boot "
            "through a systemd automount",
        ),
        (
            {"options": ["iocharset=utf8 x"]},
            "shares[0].options: mount option 'iocharset=utf8 x' may not contain spaces or commas",
        ),
        (
            {"groups": []},
            "shares[0].groups: an empty list gives it to nobody; leave groups out for all hub users",
        ),
        (
            {"groups": ["lemm"]},
            "shares[0].groups: 'lemm' is not a group of any hub user (their groups: leem, xps)",
        ),
        (
            {"container_path": "../leem"},
            "shares[0].container_path: '../leem' must be a path without '..'",
        ),
        ({"server": "files.lab"}, "shares[0].server: unknown setting"),
    ],
)
def test_share_rules(credentials, fields, expected):
    users = [{"name": "alice", "groups": ["leem"]}, {"name": "bob", "groups": ["xps"]}]
    assert any(
        line.startswith(expected)
        for line in problems(hub_users=users, shares=[share(credentials, **fields)])
    ), expected


def test_share_needs_every_field(credentials):
    lines = problems(shares=[{"name": "leem"}])
    assert lines == [
        f"shares[0].{field}: Field required"
        for field in ("source", "mountpoint", "mode", "credentials")
    ]


def test_share_names_and_mount_points_are_unique(credentials):
    lines = problems(shares=[share(credentials), share(credentials, source="//files.lab/other")])
    assert lines == [
        "shares[1].name: 'leem' is used by another share",
        "shares[1].mountpoint: '/mnt/leem' overlaps shares[0].mountpoint ('/mnt/leem')",
        "shares[1].container_path: '/home/jovyan/leem' in labs is also shares[0].container_path's",
    ]


def test_credentials_file_rules(tmp_path, credentials):
    def error(path: str) -> str:
        (line,) = problems(shares=[share(path)])
        return line

    assert error("leem.cred") == (
        "shares[0].credentials: 'leem.cred' must be an absolute path (or start with ~/)"
    )
    assert error(str(tmp_path / "missing")) == (
        f"shares[0].credentials: '{tmp_path}/missing': no such file on this machine"
    )
    inside = str(ROOT / "README.md")
    assert error(inside) == (
        f"shares[0].credentials: '{inside}' is inside the labhub repository: keep secret files "
        "outside it so that they are never committed"
    )
    no_password = tmp_path / "no-password"
    write_secret(no_password, "username=labuser\npasword=typo-secret\n")
    message = error(str(no_password))
    assert message == (
        f"shares[0].credentials: '{no_password}' has no password= line with a value (a "
        "credentials file holds username= and password= lines, and optionally domain=)"
    )
    empty = tmp_path / "empty"
    write_secret(empty, "")
    assert "has no username= and no password= line" in error(str(empty))
    # The error never shows the file's content.
    assert "typo-secret" not in message


def test_credentials_path_under_home_is_expanded(monkeypatch, tmp_path, credentials):
    monkeypatch.setenv("HOME", str(Path(credentials).parent))
    settings = validate({"shares": [share("~/leem.cred")]})
    assert settings.shares[0].credentials == credentials


def test_share_container_paths_and_users(credentials):
    settings = validate(
        {
            "hub_users": [{"name": "alice", "groups": ["leem"]}, "bob"],
            "lab_home": "/home/jovyan",
            "shares": [
                share(credentials, groups=["leem"]),
                share(
                    credentials, name="data", mountpoint="/srv/data", container_path="shared/data"
                ),
                share(credentials, name="ref", mountpoint="/srv/ref", container_path="/opt/ref"),
            ],
        }
    )
    leem, data, ref = settings.shares
    assert settings.share_container_path(leem) == "/home/jovyan/leem"
    assert settings.share_container_path(data) == "/home/jovyan/shared/data"
    assert settings.share_container_path(ref) == "/opt/ref"
    assert settings.share_users(leem) == ("alice",)
    assert settings.share_users(data) == ("alice", "bob")
    assert settings.host_groups == ("leem",)
    assert accounts.group_members(settings, "leem") == ["jupyter-alice"]


def test_the_hub_sees_the_shares_through_their_folders(credentials):
    settings = validate(
        {
            "shares": [
                share(credentials),
                share(credentials, name="data", mountpoint="/srv/data"),
                share(credentials, name="ref", mountpoint="/srv/ref/2024"),
            ],
        }
    )
    compose = yaml.safe_load(stack.compose_file_text(settings, "labhub/hub:x", "{}", ""))
    binds = [v for v in compose["services"]["hub"]["volumes"] if isinstance(v, dict)]
    # Never a mount point itself: binding an automount whose mount fails is refused.
    assert binds == [
        {
            "type": "bind",
            "source": folder,
            "target": f"/run/labhub/host{folder}",
            "read_only": True,
            "bind": {"propagation": "rslave"},
        }
        for folder in ("/mnt", "/srv")
    ]
    assert stack.hub_settings(settings)["shares"][2] == {
        "name": "ref",
        "mountpoint": "/srv/ref/2024",
        "seen_at": "/run/labhub/host/srv/ref/2024",
    }


# --- fstab lines --------------------------------------------------------------------------------


def test_read_only_share_line(credentials):
    (leem,) = validate({"shares": [share(credentials)]}).shares
    assert shares.fstab_line(leem) == (
        "//files.lab/leem /mnt/leem cifs ro,credentials=/etc/labhub/credentials/leem,"
        "_netdev,nofail,x-systemd.automount 0 0"
    )


def test_read_write_share_line_as_the_original_setup(credentials):
    (scratch,) = validate(
        {
            "shares": [
                share(
                    credentials,
                    name="scratch",
                    mode="rw",
                    mountpoint="/srv/scratch",
                    options="vers=3.0,nofail",
                )
            ]
        }
    ).shares
    assert shares.fstab_line(scratch) == (
        "//files.lab/leem /srv/scratch cifs rw,uid=0,gid=100,file_mode=0664,dir_mode=0775,"
        "credentials=/etc/labhub/credentials/scratch,vers=3.0,_netdev,nofail,"
        "x-systemd.automount 0 0"
    )


def test_share_options_override_the_read_write_defaults(credentials):
    (scratch,) = validate(
        {"shares": [share(credentials, mode="rw", options=["uid=2001", "dir_mode=0770"])]}
    ).shares
    assert shares.mount_options(scratch) == [
        "rw",
        "gid=100",
        "file_mode=0664",
        "credentials=/etc/labhub/credentials/leem",
        "uid=2001",
        "dir_mode=0770",
        "_netdev",
        "nofail",
        "x-systemd.automount",
    ]


FSTAB = [
    "# /etc/fstab: static file system information.",
    "UUID=0a3407de /               ext4    errors=remount-ro 0       1",
    "#//files.lab/leem /mnt/leem cifs ro,credentials=/etc/labhub/credentials/leem 0 0",
    "",
    "//files.lab/leem /mnt/leem cifs ro,credentials=/etc/labhub/credentials/leem,vers=1.0 0 0",
    "tmpfs /mnt/leem2 tmpfs defaults 0 0",
]
LINE = (
    "//files.lab/leem /mnt/leem cifs ro,credentials=/etc/labhub/credentials/leem,_netdev,"
    "nofail,x-systemd.automount 0 0"
)


def test_fstab_line_is_replaced_in_place_found_by_mount_point():
    new = shares.set_fstab_entry(FSTAB, "/mnt/leem", LINE)
    assert new == FSTAB[:4] + [LINE] + FSTAB[5:]


def test_commented_out_line_is_no_match():
    lines = FSTAB[:4]
    assert shares.set_fstab_entry(lines, "/mnt/leem", LINE) == lines + [LINE]
    assert [e.line for e in shares.parse_fstab(lines)] == [FSTAB[1]]


def test_duplicate_lines_of_a_mount_point_become_one():
    lines = [LINE.replace("nofail", "x"), "proc /proc proc defaults 0 0", LINE]
    assert shares.set_fstab_entry(lines, "/mnt/leem", LINE) == [
        LINE,
        "proc /proc proc defaults 0 0",
    ]


def test_removing_a_line_keeps_everything_else():
    assert shares.set_fstab_entry(FSTAB, "/mnt/leem", None) == FSTAB[:4] + FSTAB[5:]
    assert shares.set_fstab_entry(FSTAB, "/mnt/other", None) == FSTAB


def test_labhub_lines_are_recognized_by_their_credentials():
    entries = {
        e.mountpoint: e
        for e in shares.parse_fstab(
            FSTAB
            + [
                "//nas/old /mnt/old cifs credentials=/root/.smb 0 0",
                r"//nas/x /mnt/lab\040book cifs credentials=/etc/labhub/credentials/x 0 0",
            ]
        )
    }
    assert entries["/mnt/leem"].is_labhub_share
    assert entries["/mnt/lab book"].is_labhub_share
    assert not entries["/mnt/old"].is_labhub_share
    assert not entries["/"].is_labhub_share


# --- Accounts and facts -------------------------------------------------------------------------


def test_labhub_accounts_are_recognized_by_their_comment():
    assert accounts.hub_user_of(accounts.account_comment("alice")) == "alice"
    assert accounts.hub_user_of("labhub hub user bob,,,") == "bob"
    assert accounts.hub_user_of("Jupyter user alice") is None
    assert accounts.hub_user_of("") is None and accounts.hub_user_of(None) is None
    local = {
        "jupyter-alice": {"comment": "labhub hub user alice"},
        "jupyter-old": {"comment": ""},
        "labadmin": {"comment": "Lab Admin"},
    }
    assert accounts.labhub_accounts(local) == {"jupyter-alice": "alice"}


def test_local_accounts_fact_reads_passwd_and_shadow_expiry():
    output = [
        "root:x:0:0:root:/root:/bin/bash",
        "jupyter-alice:x:2001:100:labhub hub user alice:/home/jupyter-alice:/bin/bash",
        "jupyter-bob:x:2002:100:labhub hub user bob:/home/jupyter-bob:/usr/sbin/nologin",
        "#shadow",
        "root:",
        "jupyter-alice:",
        "jupyter-bob:1",
    ]
    facts = LocalAccounts().process(output)
    assert facts["jupyter-alice"] == {
        "uid": 2001,
        "gid": 100,
        "comment": "labhub hub user alice",
        "home": "/home/jupyter-alice",
        "shell": "/bin/bash",
        "expire": None,
    }
    assert facts["jupyter-bob"]["expire"] == 1
    assert "password" not in LocalAccounts().command() and "-f1,8" in LocalAccounts().command()


def test_local_groups_fact():
    facts = LocalGroups().process(["users:x:100:", "leem:x:1001:jupyter-alice,jupyter-bob"])
    assert facts == {
        "users": {"gid": 100, "members": []},
        "leem": {"gid": 1001, "members": ["jupyter-alice", "jupyter-bob"]},
    }


def test_mounts_fact_lists_stacked_file_systems():
    assert MountsAt().process(["autofs", "cifs", ""]) == ["autofs", "cifs"]
    assert "--mountpoint '/mnt/lab book'" in MountsAt().command("/mnt/lab book").get_raw_value()


def test_accounts_and_groups_labhub_does_not_own_are_found_before_any_change():
    settings = validate(
        {
            "hub_users": [
                {"name": "alice", "uid": 2001, "groups": ["bluetooth"]},
                "daemon",
                {"name": "admin", "groups": ["admin", "leem"]},
            ],
            "user_prefix": "",
        }
    )
    local = {
        "daemon": {"uid": 1, "gid": 1, "comment": "daemon"},
        "olduser": {"uid": 2001, "gid": 2001, "comment": ""},
        "alice": {"uid": 1500, "gid": 100, "comment": "labhub hub user alice"},
        "admin": {"uid": 1000, "gid": 1000, "comment": "Lab Admin"},
    }
    # A system group of a package labhub does not know by name (refused by gid on the host).
    groups = {
        "bluetooth": {"gid": 113, "members": []},
        "admin": {"gid": 1000, "members": []},
        "leem": {"gid": 1001, "members": []},
    }
    assert accounts.account_problems(settings, local, groups) == [
        "hub_users: uid 2001 of alice is taken by account olduser",
        "hub_users: account daemon exists as a system account (uid 1): labhub does not take it "
        "over",
        "hub_users: account admin exists and labhub did not make it (its comment is not "
        "'labhub hub user admin'): labhub does not take it over; choose another user_prefix or "
        "name, or hand the account to labhub: usermod --comment 'labhub hub user admin' admin",
        "hub_users[0].groups: bluetooth is a system group (gid 113): labhub does not add hub users to it",
        "hub_users[2].groups: admin is the primary group of account admin: labhub does not add hub users to it",
    ]
    assert accounts.account_problems(validate({"hub_users": ["alice"]}), local, groups) == []
