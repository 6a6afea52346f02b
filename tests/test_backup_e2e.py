"""
Backups that restore, and hub upgrades that keep everyone's data, on one lab server A in use:

- A starts on the JupyterHub before the default's (5.2.1). Two users set their passwords and write
  files, alice's lab runs, an admin pushes a second lab image.
- A is backed up with restic to an sftp repository, by the timer and by tasks/backup.py while a
  user logs in again and again, and the retention prunes.
- A fresh lab server B where another account holds alice's uid and another group leem's gid:
  the restore is refused, naming both, and nothing on B changed. Once they are gone, B is
  restored (tasks/restore.py, then the normal deploy) and used as the users would: their old
  passwords, their files with their uids, the admin's image, and the same local CA.
- A then moves to the default JupyterHub (6.x: upgrade-db on a schema change) with alice's lab
  running; a hub image that cannot start, deployed with a settings change, is rolled back whole
  (the previous image with the previous files, and a mark saying so); after three more rebuilds
  only the current and previous hub images stay.

The sftp repository is an account on A (B reaches it over the network as it would a backup host).
The hub is HTTPS with the proxy's local CA, at a name this test resolves to A (or to B).
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import subprocess
import threading
import time
from datetime import datetime

import pytest
import requests
from hubclient import Hub, resolving
from scenario import DOMAIN, REGISTRY, URL, deploy_data, local_ca_root

import labhost
from labhost.images import PREVIOUS_HUB, defaults, image_tag

pytestmark = [pytest.mark.e2e, pytest.mark.engine_installed]

PASSWORDS = {"alice": "alice-before-backup", "bob": "bob-before-the-backup"}
SECOND_IMAGE = f"{REGISTRY}/extra:1"
REPOSITORY_ACCOUNT = "restic"
# The JupyterHub A starts on, and the default it moves to.
PREVIOUS, CURRENT = PREVIOUS_HUB.version, image_tag(defaults()["hub_base_image"])
# The newest alembic revision of each JupyterHub's database schema.
SCHEMA = {"5.2.1": "4621fec11365", "6.1.1": "f460b0348206"}
HUB_DATA = "$(docker volume inspect --format '{{.Mountpoint}}' labhub_hub-data)"
# Where DOMAIN resolves: A, and B while B is checked.
RESOLVES_TO: dict[str, str] = {}


def snapshots(server: labhost.LabServer) -> list[dict]:
    return json.loads(server.exec("labhub-backup restic snapshots --json"))


def hub_version(verify: str) -> str:
    return requests.get(f"{URL}/hub/api", timeout=30, verify=verify).json()["version"]


def schema(server: labhost.LabServer, database: str = "jupyterhub.sqlite") -> str:
    return server.exec(
        f"sqlite3 {HUB_DATA}/{database} 'select version_num from alembic_version'"
    ).strip()


def hub_image(server: labhost.LabServer) -> str:
    return server.exec("docker inspect labhub-hub-1 --format '{{.Config.Image}}'").strip()


def digest(server: labhost.LabServer) -> str:
    """What a refused restore leaves as it was: accounts, groups, /etc/labhub, hub_dir (with
    owners, modes and contents) and the installed packages."""
    return server.exec(
        "getent passwd; getent group; "
        "for d in /etc/labhub /opt/labhub; do [ ! -e $d ] || find $d -printf '%p %u %g %m\\n' "
        "-type f -exec sha256sum {} +; done; dpkg-query -W -f '${Package} ${Version} ${Status}\\n'"
    )


def logs_in(name: str, password: str, verify: str) -> bool:
    user = Hub(URL, name, verify=verify)
    user.login(password)
    return user.logged_in()


@pytest.fixture(scope="module")
def site(lab_server, tmp_path_factory):
    """Lab server A on the previous JupyterHub, with backups to an sftp repository on itself."""
    RESOLVES_TO["address"] = lab_server.address
    tmp = tmp_path_factory.mktemp("backup")
    password = tmp / "restic-password"
    labhost.write_secret(password, secrets.token_urlsafe(24) + "\n")
    key = tmp / "backup_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    # The backup host's account: only labhub's key gets in.
    lab_server.exec(
        f"useradd --create-home {REPOSITORY_ACCOUNT} && install -d -o {REPOSITORY_ACCOUNT} "
        f"-m 0700 /home/{REPOSITORY_ACCOUNT}/.ssh /srv/restic && "
        f"chown {REPOSITORY_ACCOUNT} /srv/restic"
    )
    subprocess.run(
        [
            "docker",
            "exec",
            "-i",
            lab_server.container_id,
            "sh",
            "-c",
            f"cat > /home/{REPOSITORY_ACCOUNT}/.ssh/authorized_keys && chown "
            f"{REPOSITORY_ACCOUNT} /home/{REPOSITORY_ACCOUNT}/.ssh/authorized_keys",
        ],
        input=key.with_suffix(".pub").read_bytes(),
        check=True,
    )
    overrides = labhost.load_stack_images(lab_server)
    data = {
        **deploy_data(tmp, overrides),
        "shares": [],
        "hub_base_image": labhost.load_previous_hub(lab_server),
        "backup_repository": f"sftp:{REPOSITORY_ACCOUNT}@{lab_server.address}:/srv/restic/labhub",
        "backup_password_file": str(password),
        "backup_ssh_key": str(key),
    }
    inventory = lab_server.inventory_file(data)
    with resolving(DOMAIN, lambda: RESOLVES_TO["address"]):
        # The first deploy uploads the password and the key: planned with --diff, then run at
        # every verbosity, for test_the_repository_password_stays_a_secret.
        dry = labhost.run_pyinfra(
            inventory, "deploy.py", dry=True, extra=("--diff", *labhost.LOUDEST)
        )
        assert dry.returncode == 0, dry.stderr[-3000:]
        first = labhost.run_pyinfra(inventory, "deploy.py", extra=labhost.LOUDEST).check()
        yield {
            "first_outputs": [dry.stdout + dry.stderr, first.stdout + first.stderr],
            "secrets": labhost.secret_parts(password) + labhost.secret_parts(key),
            "server": lab_server,
            "data": data,
            "inventory": inventory,
            "tmp": tmp,
            "password": password.read_text().strip(),
            "current_hub": overrides["hub_base_image"],
            "verify": local_ca_root(lab_server, tmp),
        }


@pytest.fixture(scope="module")
def used(site):
    """Both users have set their passwords and written files, alice's lab runs; an admin pushed
    a second image."""
    server, verify = site["server"], site["verify"]
    assert hub_version(verify) == PREVIOUS
    alice = Hub(URL, "alice", verify=verify)
    alice.login(PASSWORDS["alice"])
    assert alice.logged_in()
    alice.api_token()
    alice.start()
    written = alice.lab(
        "PUT",
        "/api/contents/results.txt",
        json={"type": "file", "format": "text", "content": "alice's results\n"},
    )
    assert written.status_code in (200, 201), written.text
    bob = Hub(URL, "bob", verify=verify)
    bob.login(PASSWORDS["bob"])
    assert bob.logged_in()
    server.exec("runuser -u jupyter-bob -- sh -c 'echo bob notes > /home/jupyter-bob/notes.txt'")
    server.exec(
        f"printf 'FROM {REGISTRY}/lab:1.0\\nRUN echo second image > /tmp/second\\n' | "
        f"docker build -q -t {SECOND_IMAGE} - && docker push -q {SECOND_IMAGE}"
    )
    return {
        "alice_hub": alice,
        **{name: {"uid": int(server.exec(f"id -u jupyter-{name}"))} for name in PASSWORDS},
    }


@pytest.fixture(scope="module")
def backed_up(site, used):
    """A timer-triggered backup, then tasks/backup.py while bob logs in again and again."""
    server = site["server"]
    server.exec("systemctl start labhub-backup.service")
    first = snapshots(server)
    assert len(first) == 1

    stop = threading.Event()
    logins = []

    def log_in_again_and_again():
        while not stop.is_set():
            bob = Hub(URL, "bob", verify=site["verify"])
            logins.append(bob.login(PASSWORDS["bob"]).status_code)

    writer = threading.Thread(target=log_in_again_and_again)
    writer.start()
    try:
        time.sleep(2)
        # restic keeps the oldest snapshot too while fewer days than "daily 7" have backups:
        # keeping the last one shows the retention at work.
        run = labhost.run_pyinfra(
            site["inventory"],
            "tasks/backup.py",
            data={"backup_keep": {"last": 1}},
            extra=labhost.LOUDEST,
        )
    finally:
        stop.set()
        writer.join()
    run.check()
    return {"run": run, "first": first, "logins": logins, "after": snapshots(server)}


def test_the_timer_is_scheduled_and_its_backup_runs(site, backed_up):
    server = site["server"]
    timer = server.exec(
        "systemctl show labhub-backup.timer -p ActiveState -p UnitFileState -p TimersCalendar"
    )
    assert "ActiveState=active" in timer and "UnitFileState=enabled" in timer
    # systemd's normalized form of "daily".
    assert "OnCalendar=*-*-* 00:00:00" in timer and "next_elapse=" in timer
    assert backed_up["first"][0]["tags"] == ["labhub"]
    result = server.exec("systemctl show labhub-backup.service -p Result")
    assert "Result=success" in result


def test_the_backup_ran_while_the_hub_was_written_and_retention_pruned(site, backed_up):
    # bob logged in during the backup: the hub's database was being written.
    assert len(backed_up["logins"]) >= 5 and set(backed_up["logins"]) == {200}
    saved = [
        line for line in backed_up["run"].stderr.splitlines() if "backup saved as snapshot" in line
    ]
    assert saved, backed_up["run"].stderr[-3000:]
    # Keeping the last one, the timer's snapshot went.
    after = backed_up["after"]
    assert len(after) == 1
    assert after[0]["short_id"] in saved[-1]
    assert after[0]["id"] != backed_up["first"][0]["id"]


def test_the_repository_password_stays_a_secret(site, backed_up):
    server, password = site["server"], site["password"]
    # Neither the password nor the SSH key, in the first deploy's --dry --diff, and at every
    # verbosity in that deploy and in the backup.
    outputs = [*site["first_outputs"], backed_up["run"].stdout + backed_up["run"].stderr]
    assert "/etc/labhub/backup/password (a secret: content not shown)" in outputs[0]
    assert "/etc/labhub/backup/ssh_key (a secret: content not shown)" in outputs[0]
    assert len(site["secrets"]) > 3
    for text in outputs:
        assert not [part for part in site["secrets"] if part in text]
    assert server.exec(
        "stat -c '%U %a' /etc/labhub/backup/password /etc/labhub/backup/ssh_key /etc/labhub/backup"
    ).split("\n")[:3] == ["root 600", "root 600", "root 700"]
    assert password not in server.exec("journalctl -u labhub-backup.service --no-pager")
    assert password not in server.exec("cat /etc/labhub/backup/backup.env")


def status_problems(run: labhost.PyinfraRun) -> list[str]:
    return [op["name"] for op in run.result["results"]["operations"] if op["error"]]


def test_status_watches_the_backups(site, backed_up):
    """Healthy after a backup, with the snapshot's time and size; then each a problem that fails
    the run: the timer's last run failed, the snapshot older than the schedule allows, the
    repository out of reach."""
    server, inventory = site["server"], site["inventory"]
    snapshot = backed_up["after"][0]
    healthy = labhost.run_pyinfra(inventory, "tasks/status.py")
    assert healthy.returncode == 0 and status_problems(healthy) == [], healthy.stderr[-3000:]
    names = [op["name"] for op in healthy.result["results"]["operations"]]
    last = [name for name in names if name.startswith("last backup: ")]
    assert len(last) == 1, names
    # Its time (restic's, in UTC) and size, in the JSON results.
    assert last[0].startswith(f"last backup: snapshot {snapshot['short_id']} of 20"), last
    assert re.search(r"ago\), \d+(\.\d)? [kMG]?B$", last[0]), last
    assert any(
        name.startswith("backup service labhub-backup.service: its last run succeeded")
        for name in names
    ), names

    # A run of the timer's service that fails (its settings unreadable for a moment).
    env = "/etc/labhub/backup/backup.env"
    server.exec(
        f"mv {env} {env}.away; systemctl start labhub-backup.service; status=$?; "
        f"mv {env}.away {env}; [ $status -ne 0 ]"
    )
    # The key the backup host lets in, gone: the repository cannot be reached.
    keys = f"/home/{REPOSITORY_ACCOUNT}/.ssh/authorized_keys"
    try:
        # A schedule every 10 seconds: the snapshot made a minute ago is late.
        age = (
            time.time()
            - datetime.fromisoformat(last[0].split(" of ")[1].split(" (")[0]).timestamp()
        )
        time.sleep(max(0.0, 30 - age))
        late = labhost.run_pyinfra(
            inventory, "tasks/status.py", data={"backup_schedule": "*:*:0/10"}
        )
        assert late.returncode != 0
        assert late.result["results"]["failed_hosts"] == [server.address]
        problems = status_problems(late)
        assert len(problems) == 2, problems
        assert any(
            name.startswith("backup service labhub-backup.service: its last run failed")
            for name in problems
        ), problems
        assert any(
            name.startswith(f"last backup: snapshot {snapshot['short_id']} ") for name in problems
        ), problems
        assert "older than backup_schedule ('*:*:0/10') allows (20 seconds)" in late.stderr
        assert "the last backup failed at " in late.stderr

        server.exec(f"mv {keys} {keys}.away")
        unreached = labhost.run_pyinfra(inventory, "tasks/status.py")
        assert unreached.returncode != 0
        problems = status_problems(unreached)
        assert f"backup repository {site['data']['backup_repository']}: not reached" in problems
        assert "backups and restores fail" in unreached.stderr
        assert site["password"] not in unreached.stdout + unreached.stderr
    finally:
        server.exec(f"[ ! -e {keys}.away ] || mv {keys}.away {keys}")
        server.exec("systemctl reset-failed labhub-backup.service")
    assert labhost.run_pyinfra(inventory, "tasks/status.py").returncode == 0


def test_a_fresh_server_restored_from_the_backup_has_the_hub_the_users_and_their_files(
    site, used, backed_up
):
    snapshot = backed_up["after"][0]["short_id"]
    with labhost.running_lab_server(stand_ins=True) as fresh:
        labhost.load_stack_images(fresh)
        labhost.load_previous_hub(fresh)
        inventory = fresh.inventory_file(site["data"])
        # Another account holds alice's uid here, another group leem's gid.
        leem_gid = site["server"].exec("getent group leem | cut -d: -f3").strip()
        fresh.exec(
            f"useradd --uid {used['alice']['uid']} --gid users --no-create-home intruder && "
            f"groupadd --gid {leem_gid} intruders"
        )
        before = digest(fresh)
        refused = labhost.run_pyinfra(
            inventory, "tasks/restore.py", data={"restore_snapshot": snapshot}
        )
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0
        assert (
            f"clash: uid {used['alice']['uid']} of the backup's account jupyter-alice is "
            "account intruder's here: remove or renumber it here (usermod --uid, userdel)"
        ) in output, output[-4000:]
        assert (
            f"clash: gid {leem_gid} of the backup's group leem is group intruders's here"
        ) in output
        assert "refused before any change: 2 clash(es)" in output
        assert "Traceback" not in output and site["password"] not in output
        assert digest(fresh) == before
        assert "restic" not in fresh.exec("dpkg-query -W -f '${Package}\\n'").split()
        assert fresh.exec("ls -A /run | grep -c labhub-restore || true").strip() == "0"

        fresh.exec("userdel intruder && groupdel intruders")
        restore = labhost.run_pyinfra(
            inventory, "tasks/restore.py", data={"restore_snapshot": snapshot}
        )
        restore.check()
        assert "restores onto this server without a clash" in restore.stdout + restore.stderr
        assert site["password"] not in restore.stdout + restore.stderr
        labhost.run_pyinfra(inventory, "deploy.py").check()

        # The accounts, with their uids; the homes with their owners.
        for name in PASSWORDS:
            assert int(fresh.exec(f"id -u jupyter-{name}")) == used[name]["uid"]
        assert fresh.exec("id -nG jupyter-alice").split() == ["users", "leem"]
        assert fresh.exec("cat /home/jupyter-alice/results.txt") == "alice's results\n"
        assert fresh.exec(
            "stat -c '%u %a' /home/jupyter-alice /home/jupyter-alice/results.txt"
        ).split("\n")[:2] == [f"{used['alice']['uid']} 700", f"{used['alice']['uid']} 644"]
        assert int(fresh.exec("stat -c %u /home/jupyter-bob/notes.txt")) == used["bob"]["uid"]

        # The proxy's local CA came back too: browsers that trust A's root trust B.
        assert fresh.exec("cat /opt/labhub/proxy/local-ca-root.crt") == site["server"].exec(
            "cat /opt/labhub/proxy/local-ca-root.crt"
        )
        RESOLVES_TO["address"] = fresh.address
        try:
            verify = site["verify"]
            # The hub with its users and their passwords; a wrong one is still refused.
            assert not logs_in("alice", "not-alices-password", verify)
            assert logs_in("alice", PASSWORDS["alice"], verify)

            # The registry with the admin's image: bob starts a lab from it, reads his notes.
            bob = Hub(URL, "bob", verify=verify)
            bob.login(PASSWORDS["bob"])
            assert bob.logged_in()
            bob.api_token()
            assert SECOND_IMAGE in bob.spawn_form()
            bob.start(image=SECOND_IMAGE)
            out = bob.run(
                "import os; print(os.getuid()); print(open('/tmp/second').read()); "
                "print(open('notes.txt').read())"
            )
            assert out.split() == [str(used["bob"]["uid"]), "second", "image", "bob", "notes"]
        finally:
            RESOLVES_TO["address"] = site["server"].address


def test_a_restore_onto_a_server_with_a_hub_is_refused_before_any_change(site, backed_up):
    server = site["server"]
    before = server.exec("ls -l --time-style=+%s /opt/labhub /home")
    run = labhost.run_pyinfra(site["inventory"], "tasks/restore.py")
    assert run.returncode != 0
    assert (
        "hub_dir: /opt/labhub holds a labhub compose project: this server has a hub already"
        in run.stderr
    )
    assert "Traceback" not in run.stderr
    assert server.exec("ls -l --time-style=+%s /opt/labhub /home") == before


def test_an_upgrade_to_the_next_jupyterhub_keeps_passwords_and_running_labs(site, used):
    server, verify, alice = site["server"], site["verify"], used["alice_hub"]
    assert schema(server) == SCHEMA[PREVIOUS]
    lab_started = server.exec("docker inspect jupyter-alice --format '{{.State.StartedAt}}'")
    site["data"]["hub_base_image"] = site["current_hub"]
    site["inventory"] = server.inventory_file(site["data"])

    run = labhost.run_pyinfra(site["inventory"], "deploy.py").check()
    output = run.stdout + run.stderr
    assert "hub: upgrading from labhub/hub:" in output
    assert hub_version(verify) == CURRENT
    # JupyterHub's own upgrade ran; the database from before it is kept beside it.
    assert schema(server) == SCHEMA[CURRENT]
    assert schema(server, "jupyterhub.sqlite.before-upgrade") == SCHEMA[PREVIOUS]

    # Passwords kept, a wrong one still refused.
    assert logs_in("alice", PASSWORDS["alice"], verify)
    assert logs_in("bob", PASSWORDS["bob"], verify)
    assert not logs_in("bob", "not-bobs-password", verify)
    # alice's lab ran through the upgrade, untouched, and answers through the new hub.
    assert (
        server.exec("docker inspect jupyter-alice --format '{{.State.StartedAt}}'") == lab_started
    )
    assert alice.server()["ready"]
    assert alice.lab("GET", "/api/contents/results.txt").json()["content"] == "alice's results\n"
    assert alice.run("print(6 * 7)").strip() == "42"

    again = labhost.run_pyinfra(site["inventory"], "deploy.py").check()
    assert again.changed == 0, again.changed_operations


def test_a_hub_image_that_cannot_start_is_rolled_back_and_the_run_fails(site, used):
    server, verify = site["server"], site["verify"]
    before = hub_image(server)
    # The next JupyterHub's database upgrade works, but its hub exits at once.
    broken = "labhub-test/jupyterhub:cannot-start"
    wrapper = (
        '#!/bin/sh\n[ "$1" = upgrade-db ] && exec jupyterhub-real "$@"\n'
        'echo "this hub cannot start" >&2; exit 3\n'
    )
    dockerfile = (
        f"FROM {site['current_hub']}\n"
        "RUN mv /opt/jupyterhub/bin/jupyterhub /opt/jupyterhub/bin/jupyterhub-real\n"
        "COPY jupyterhub /opt/jupyterhub/bin/jupyterhub\n"
        "RUN chmod 755 /opt/jupyterhub/bin/jupyterhub\n"
    )
    server.exec(
        f"mkdir -p /root/cannot-start && cd /root/cannot-start && "
        f"printf %s {shlex.quote(wrapper)} > jupyterhub && "
        f"printf %s {shlex.quote(dockerfile)} > Dockerfile && docker build -q -t {broken} ."
    )

    files = "cat /opt/labhub/compose.yaml /opt/labhub/hub/settings.json"
    files_before = server.exec(files)
    assert json.loads(server.exec("cat /opt/labhub/hub/settings.json"))["min_password_length"] == 10

    # With a settings change in the same run: the hub's settings.json and compose.yaml change.
    run = labhost.run_pyinfra(
        site["inventory"],
        "tasks/hub.py",
        data={"hub_base_image": broken, "min_password_length": 14},
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "the hub upgrade failed: the new hub stopped" in output, output[-4000:]
    assert (
        f"rolled back: the hub runs its previous image {before} again, with the files from "
        "before this run in /opt/labhub (compose.yaml hub/accounts.json hub/settings.json"
    ) in output

    # The previous image with the previous files: on disk, and as the hub reads them.
    assert hub_image(server) == before
    assert server.exec(files) == files_before
    inside = server.exec("docker exec labhub-hub-1 cat /etc/labhub/settings.json")
    assert json.loads(inside)["min_password_length"] == 10
    mark = dict(
        line.split("=", 1)
        for line in server.exec("cat /var/lib/labhub/hub-rolled-back").splitlines()
    )
    assert mark["previous"] == before and mark["outcome"] == "rolled back"
    assert mark["reason"].startswith("the new hub stopped")
    # Status says so, as a problem, until a deploy runs the hub as built.
    status = labhost.run_pyinfra(site["inventory"], "tasks/status.py")
    assert status.returncode != 0
    assert (
        f"the hub runs its previous image {before} with its previous files; fix the cause and "
        "deploy again"
    ) in status.stdout + status.stderr
    assert hub_version(verify) == CURRENT
    assert schema(server) == SCHEMA[CURRENT]
    assert logs_in("alice", PASSWORDS["alice"], verify)
    assert used["alice_hub"].server()["ready"]


def test_after_three_hub_rebuilds_the_current_and_the_previous_hub_image_stay(site, used):
    """Each rebuild recreates the hub. The base image is the same stand-in under new names, so
    each build differs only in its build argument and takes Docker's cache."""
    server, data = site["server"], site["data"]
    # Images labhub did not build, one of them FROM its hub image (inheriting its labels).
    server.exec(
        f"docker tag {shlex.quote(data['hub_base_image'])} admin/jupyterhub:mine && "
        f"printf 'FROM %s\\nRUN true\\n' {shlex.quote(hub_image(server))} | "
        "docker build -q -t admin/hub-derived:1 -"
    )
    built = []
    for n in range(1, 4):
        base = f"labhub-test/jupyterhub:rebuild-{n}"
        server.exec(f"docker tag {data['hub_base_image']} {base}")
        run = labhost.run_pyinfra(site["inventory"], "tasks/hub.py", data={"hub_base_image": base})
        run.check()
        assert any(name.startswith("Build the hub image") for name in run.changed_operations)
        built.append(hub_image(server))
    # A hub upgrade that went through: no mark of the rollback before it.
    left = server.exec("ls /var/lib/labhub").split()
    assert "hub-rolled-back" not in left and "hub-previous" not in left
    hub_images = server.exec("docker images labhub/hub --format '{{.Repository}}:{{.Tag}}'")
    assert sorted(hub_images.split()) == sorted(built[-2:])
    assert requests.get(f"{URL}/hub/health", timeout=10, verify=site["verify"]).status_code == 200
    others = server.exec("docker images --format '{{.Repository}}:{{.Tag}}'").split()
    for image in (
        "admin/jupyterhub:mine",
        "admin/hub-derived:1",
        SECOND_IMAGE,
        f"{REGISTRY}/lab:1.0",
    ):
        assert image in others
