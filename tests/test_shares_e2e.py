"""
tasks/shares.py (with tasks/users.py, whose accounts the share groups hold) on a fresh Debian 13
lab server, over SSH, through pyinfra's CLI.

This machine's kernel cannot mount CIFS: every mount attempt fails here, which is how the tests
see that a share that cannot be mounted is reported and does not stop the deploy. What the deploy
writes is checked whole: fstab lines, credentials files, mount points, and
``mount --fake --all``. The share server's name resolves to the lab server's own loopback, so no
test traffic leaves the lab server.

A share's path from its fstab line to a lab, through the hub, is tested in test_hub_e2e.py.
"""

from __future__ import annotations

import pytest

import labhost

pytestmark = pytest.mark.e2e

PASSWORDS = {"leem": "leem-Pa55word-e2e", "xps": "xps-Pa55word-e2e", "scratch": "scr-Pa55word-e2e"}
NEW_LEEM_PASSWORD = "leem-r0tated-Pa55word"
USERS = [{"name": "alice", "groups": ["leem"]}, {"name": "bob", "groups": ["leem", "xps"]}, "carol"]
CREDENTIALS = "/etc/labhub/credentials"
FSTAB_BEFORE = [
    "# UNCONFIGURED FSTAB FOR BASE SYSTEM",
    # A commented-out share line is no line: it is kept, and the share gets a real one.
    "#//files.lab/leem /mnt/leem cifs ro,credentials=/etc/labhub/credentials/leem 0 0",
    # A CIFS line labhub did not write is never touched.
    "//files.lab/old /mnt/old cifs ro,credentials=/root/.smb-old,nofail 0 0",
]
LINES = {
    "leem": "//files.lab/leem /mnt/leem cifs ro,credentials=/etc/labhub/credentials/leem,"
    "_netdev,nofail,x-systemd.automount 0 0",
    "xps": "//files.lab/xps /mnt/xps cifs rw,uid=0,gid=100,file_mode=0664,dir_mode=0775,"
    "credentials=/etc/labhub/credentials/xps,vers=3.0,_netdev,nofail,"
    "x-systemd.automount 0 0",
    "scratch": "//files.lab/scratch /srv/scratch cifs rw,uid=0,gid=100,file_mode=0664,"
    "dir_mode=0775,credentials=/etc/labhub/credentials/scratch,_netdev,nofail,"
    "x-systemd.automount 0 0",
}


@pytest.fixture(scope="module")
def credentials(tmp_path_factory):
    """Credentials files as an admin keeps them: on this machine, outside the repository."""
    folder = tmp_path_factory.mktemp("credentials")
    paths = {}
    for name, password in PASSWORDS.items():
        paths[name] = folder / f"{name}.cred"
        labhost.write_secret(paths[name], f"username=lab-{name}\npassword={password}\n")
    return paths


def settings(credentials, xps_options=("vers=3.0",), shares=("leem", "xps", "scratch")) -> dict:
    declared = {
        "leem": {
            "name": "leem",
            "source": "//files.lab/leem",
            "mountpoint": "/mnt/leem",
            "mode": "ro",
            "groups": ["leem"],
        },
        "xps": {
            "name": "xps",
            "source": "//files.lab/xps",
            "mountpoint": "/mnt/xps",
            "mode": "rw",
            "groups": ["xps"],
            "options": list(xps_options),
        },
        "scratch": {
            "name": "scratch",
            "source": "//files.lab/scratch",
            "mountpoint": "/srv/scratch",
            "mode": "rw",
        },
    }
    return {
        "hub_users": USERS,
        "shares": [{**declared[name], "credentials": str(credentials[name])} for name in shares],
    }


def deploy(inventory, data, dry=False, extra=("-vvv",)) -> labhost.PyinfraRun:
    run = labhost.run_pyinfra(
        inventory, "tasks/users.py", "tasks/shares.py", data=data, dry=dry, extra=extra
    )
    return run.check()


def output(run: labhost.PyinfraRun) -> str:
    return run.stdout + run.stderr


def fstab(lab_host) -> list[str]:
    return lab_host.file("/etc/fstab").content_string.splitlines()


def fake_mount_all(lab_server, lab_host, verbose=False):
    """
    ``mount --fake --all``, with the shares' automounts stopped meanwhile: mount.cifs enters each
    mount point, which would trigger its automount, a real mount (failing here, where CIFS cannot
    mount).
    """
    mountpoints = ["/mnt/leem", "/mnt/xps", "/srv/scratch"]
    lab_server.automounts("stop", mountpoints)
    try:
        return lab_host.run("mount --fake --all" + (" --verbose" if verbose else ""))
    finally:
        lab_server.automounts("start", mountpoints)


@pytest.fixture(scope="module")
def inventory(lab_server):
    lab_server.exec("echo '127.0.0.1 files.lab' >> /etc/hosts")
    lab_server.exec(
        "printf '%s\\n' "
        + " ".join(f"'{line}'" for line in FSTAB_BEFORE)
        + " > /etc/fstab && mkdir -p /mnt/old && "
        "printf 'username=old\\npassword=old\\n' > /root/.smb-old"
    )
    return lab_server.inventory_file()


@pytest.fixture(scope="module")
def dry_run(inventory, credentials):
    return deploy(inventory, settings(credentials), dry=True, extra=("--diff", *labhost.LOUDEST))


@pytest.fixture(scope="module")
def first_run(dry_run, inventory, credentials):
    return deploy(inventory, settings(credentials))


def test_dry_run_diff_shows_no_password(dry_run):
    text = output(dry_run)
    assert f"Will create {CREDENTIALS}/leem (a secret: content not shown)" in text
    assert "+ //files.lab/xps /mnt/xps cifs rw," in text  # the fstab diff is shown
    for password in PASSWORDS.values():
        assert password not in text


def test_fstab_has_exactly_one_line_per_share(first_run, lab_host):
    assert fstab(lab_host) == [*FSTAB_BEFORE, LINES["leem"], LINES["xps"], LINES["scratch"]]


def test_mount_accepts_the_fstab(first_run, lab_server, lab_host):
    check = fake_mount_all(lab_server, lab_host, verbose=True)
    assert check.rc == 0, check.stderr
    verdicts = dict(line.split(":", 1) for line in check.stdout.splitlines() if ":" in line)
    verdicts = {path.strip(): verdict.strip() for path, verdict in verdicts.items()}
    for mountpoint in ("/mnt/leem", "/mnt/xps", "/srv/scratch"):
        assert verdicts[mountpoint] == "successfully mounted", check.stdout
    # mount.cifs read each share's credentials file (it shows the user, masks the password).
    for name in PASSWORDS:
        assert f"unc=\\\\files.lab\\{name}," in check.stderr
        assert f"user=lab-{name},pass=********" in check.stderr


def test_credentials_files_are_root_only_with_the_right_content(first_run, lab_host, credentials):
    folder = lab_host.file(CREDENTIALS)
    assert folder.is_directory and folder.mode == 0o700 and folder.user == "root"
    for name, local in credentials.items():
        remote = lab_host.file(f"{CREDENTIALS}/{name}")
        assert (remote.user, remote.group, remote.mode) == ("root", "root", 0o600), name
        assert remote.content_string == local.read_text(), name
    # Nothing of an upload is left in the temporary folder.
    assert lab_host.run("grep -rl Pa55word /tmp /var/tmp || true").stdout == ""


def test_mount_points_exist(first_run, lab_host):
    for mountpoint in ("/mnt/leem", "/mnt/xps", "/srv/scratch"):
        assert lab_host.file(mountpoint).is_directory, mountpoint
    assert lab_host.package("cifs-utils").is_installed


def test_password_never_appears_in_the_output(first_run):
    text = output(first_run)
    assert ">>> sudo" in text  # -vvv: the commands are shown
    for password in PASSWORDS.values():
        assert password not in text


def test_groups_of_shares_hold_their_users(first_run, lab_host):
    assert sorted(lab_host.group("leem").members) == ["jupyter-alice", "jupyter-bob"]
    assert lab_host.group("xps").members == ["jupyter-bob"]


def test_shares_that_cannot_be_mounted_are_reported_and_the_deploy_goes_on(first_run):
    results = {op["name"]: op for op in first_run.result["results"]["operations"]}
    mounts = [
        "Mount share leem at /mnt/leem",
        "Mount share xps at /mnt/xps",
        "Mount share scratch at /srv/scratch",
    ]
    for name in mounts:
        assert results[name]["error"] and not results[name]["success"], name
    assert first_run.result["results"]["failed_hosts"] == []
    # The mounts are the last operations of the run, each naming its share.
    started = [
        line.split(": ", 1)[1].strip()
        for line in first_run.stderr.splitlines()
        if line.startswith("--> Starting operation: ")
    ]
    assert started[-3:] == mounts
    assert (
        "labhub: share leem (//files.lab/leem) is not mounted at /mnt/leem: mounting it "
        "failed (see above); the deploy goes on without it"
    ) in first_run.stderr
    assert "labhub: share scratch (//files.lab/scratch) is not mounted" in first_run.stderr
    # With the mount's own failure from the journal, above ours.
    assert "Failed to mount mnt-leem.mount - /mnt/leem." in first_run.stderr


def test_a_real_mount(first_run, lab_server, lab_host, inventory, credentials, tmp_path):
    """A share served by Samba on the lab server itself, mounted for real where CIFS can be."""
    if "cifs" not in lab_host.file("/proc/filesystems").content_string:
        pytest.skip(
            "this machine's kernel cannot mount CIFS (no cifs in /proc/filesystems): real "
            "mounts are checked on a real server"
        )
    lab_server.exec("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq samba >/dev/null")
    lab_server.exec(
        "useradd -M -s /usr/sbin/nologin smbreal && "
        "printf 'real-Pa55word\\nreal-Pa55word\\n' | smbpasswd -s -a smbreal && "
        "install -d -m 0777 /srv/samba/real && "
        "printf '[real]\\npath = /srv/samba/real\\nread only = no\\nvalid users = smbreal\\n' "
        ">> /etc/samba/smb.conf && systemctl restart smbd"
    )
    real = tmp_path / "real.cred"
    labhost.write_secret(real, "username=smbreal\npassword=real-Pa55word\n")
    data = settings(credentials)
    data["shares"].append(
        {
            "name": "real",
            "source": "//files.lab/real",
            "mountpoint": "/mnt/real",
            "mode": "rw",
            "credentials": str(real),
        }
    )
    run = deploy(inventory, data)
    assert "Mount share real at /mnt/real" in run.changed_operations
    assert lab_host.run("findmnt --types cifs --mountpoint /mnt/real").rc == 0
    lab_server.exec("su jupyter-carol -c 'echo hi > /mnt/real/from-carol'")
    assert deploy(inventory, data).changed == 0
    deploy(inventory, settings(credentials))
    assert lab_host.run("findmnt --mountpoint /mnt/real").rc != 0


def test_second_run_changes_nothing(first_run, inventory, credentials):
    again = deploy(inventory, settings(credentials))
    assert again.changed == 0, again.changed_operations


def test_new_password_is_uploaded_and_never_shown(first_run, inventory, credentials, lab_host):
    credentials["leem"].write_text(f"username=lab-leem\npassword={NEW_LEEM_PASSWORD}\n")
    try:
        dry = deploy(inventory, settings(credentials), dry=True, extra=("--diff", *labhost.LOUDEST))
        assert f"Will modify {CREDENTIALS}/leem (a secret: content not shown)" in output(dry)
        # At every verbosity, the upload itself included (--debug).
        run = deploy(inventory, settings(credentials), extra=labhost.LOUDEST)
        assert f"{CREDENTIALS}/leem" in output(run)
        for text in (output(dry), output(run)):
            assert NEW_LEEM_PASSWORD not in text and PASSWORDS["leem"] not in text
        assert run.changed_operations == [f"Credentials of share leem: {CREDENTIALS}/leem"]
        remote = lab_host.file(f"{CREDENTIALS}/leem")
        assert NEW_LEEM_PASSWORD in remote.content_string and remote.mode == 0o600
    finally:
        credentials["leem"].write_text(f"username=lab-leem\npassword={PASSWORDS['leem']}\n")
        deploy(inventory, settings(credentials))


def test_changing_one_shares_options_changes_one_line(
    first_run, inventory, credentials, lab_server, lab_host
):
    before = fstab(lab_host)
    run = deploy(inventory, settings(credentials, xps_options=("vers=3.1.1", "iocharset=utf8")))
    after = fstab(lab_host)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(after) == len(before) and changed == [before.index(LINES["xps"])]
    assert after[changed[0]] == LINES["xps"].replace("vers=3.0", "vers=3.1.1,iocharset=utf8")
    fstab_operations = [name for name in run.changed_operations if name.startswith("fstab: ")]
    assert fstab_operations == [f"fstab: {after[changed[0]]}"]
    assert fake_mount_all(lab_server, lab_host).rc == 0


def test_removed_share_loses_line_credentials_and_mount_but_not_mount_point(
    first_run, inventory, credentials, lab_host
):
    before = fstab(lab_host)
    run = deploy(
        inventory,
        settings(credentials, xps_options=("vers=3.1.1", "iocharset=utf8"), shares=("leem", "xps")),
    )
    assert fstab(lab_host) == [line for line in before if " /srv/scratch " not in line]
    assert fstab(lab_host)[:3] == FSTAB_BEFORE
    assert not lab_host.file(f"{CREDENTIALS}/scratch").exists
    assert lab_host.file("/srv/scratch").is_directory
    assert not lab_host.mount_point("/srv/scratch").exists
    assert "fstab: remove the line of removed share at /srv/scratch" in run.changed_operations
    assert "Mount share scratch at /srv/scratch" not in output(run)

    again = deploy(
        inventory,
        settings(credentials, xps_options=("vers=3.1.1", "iocharset=utf8"), shares=("leem", "xps")),
    )
    assert again.changed == 0, again.changed_operations
