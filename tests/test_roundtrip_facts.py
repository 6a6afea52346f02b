"""
The facts that read several things in one command: what they parse from what the host prints,
and that a secret's hash, not its content, is what leaves the host.
"""

from __future__ import annotations

from labhub.facts.accounts import HostAccounts
from labhub.facts.compose import HttpStatuses
from labhub.facts.fstab import Mounts
from labhub.facts.services import ServiceStates
from labhub.facts.status import BackupStatus, LabStatus
from labhub.facts.tree import FileTree, folder_of


def test_file_tree_reads_kinds_owners_modes_and_hashes():
    tree = FileTree().process(
        [
            "d 755 root root /opt/labhub",
            "f 644 root root /opt/labhub/compose.yaml",
            "f 600 root root /opt/labhub/a file with spaces",
            "l 777 root root /opt/labhub/link",
            "--labhub-tree-hashes--",
            "5c1f  /opt/labhub/compose.yaml",
            "9a9a  /opt/labhub/a file with spaces",
            "\\0bad  /opt/labhub/odd\\nname",
        ]
    )
    assert tree["/opt/labhub"] == {
        "kind": "folder",
        "mode": 0o755,
        "user": "root",
        "group": "root",
        "sha256": None,
    }
    assert tree["/opt/labhub/compose.yaml"]["sha256"] == "5c1f"
    assert tree["/opt/labhub/a file with spaces"]["mode"] == 0o600
    assert tree["/opt/labhub/a file with spaces"]["sha256"] == "9a9a"
    assert tree["/opt/labhub/link"]["kind"] == "link"
    assert folder_of(tree, "/opt/labhub")["entries"] == [
        "a file with spaces",
        "compose.yaml",
        "link",
    ]
    assert folder_of(tree, "/opt/other")["kind"] == "missing"
    assert folder_of(tree, "/opt/labhub/compose.yaml")["kind"] == "other"
    # Content never leaves the host: only hashes.
    command = FileTree().command("/etc/labhub")
    assert "sha256sum" in command and "cat" not in command


def test_host_accounts_reads_accounts_groups_and_homes_in_one_command():
    facts = HostAccounts().process(
        [
            "root:x:0:0:root:/root:/bin/bash",
            "jupyter-alice:x:2001:100:labhub hub user alice:/home/jupyter-alice:/bin/bash",
            "#shadow",
            "root:",
            "jupyter-alice:1",
            "#group",
            "users:x:100:",
            "leem:x:1001:jupyter-alice",
            "#homes",
            "jupyter-alice users 700 /home/jupyter-alice",
        ]
    )
    assert facts["accounts"]["jupyter-alice"]["expire"] == 1
    assert facts["groups"]["leem"]["members"] == ["jupyter-alice"]
    assert facts["homes"]["/home/jupyter-alice"] == {
        "kind": "folder",
        "user": "jupyter-alice",
        "group": "users",
        "mode": 0o700,
    }
    command = HostAccounts().command()
    assert "-f1,8 /etc/shadow" in command and "/etc/group" in command


def test_mounts_reads_existence_and_types_without_entering_a_mount_point():
    mounts = Mounts().process(
        [
            "@ y /srv/shares/data",
            "@ n /srv/new share",
            "/ overlay",
            "/srv/shares/data autofs",
            "/srv/shares/data cifs",
            "/srv/new\\x20share tmpfs",
        ]
    )
    assert mounts["/srv/shares/data"] == {"exists": True, "types": ["autofs", "cifs"]}
    assert mounts["/srv/new share"] == {"exists": False, "types": ["tmpfs"]}
    assert "ls" not in Mounts().command(["/srv/shares/data"]).split()
    # With enter, each is entered (its automount started), for a bounded time.
    assert "timeout -s KILL 3 ls" in Mounts().command(["/srv/shares/data"], enter=3)


def test_service_states_of_several_services():
    states = ServiceStates().process(
        [
            "Id=containerd.service",
            "SubState=running",
            "UnitFileState=enabled",
            "",
            "Id=docker.service",
            "SubState=dead",
            "UnitFileState=disabled",
        ]
    )
    assert states == {
        "containerd": {"running": True, "enabled": True},
        "docker": {"running": False, "enabled": False},
    }


def test_http_statuses_of_several_urls():
    assert HttpStatuses().process(
        ["200 http://127.0.0.1:8000/hub/health", "000 http://127.0.0.1:5000/v2/"]
    ) == {"http://127.0.0.1:8000/hub/health": 200, "http://127.0.0.1:5000/v2/": 0}


def test_lab_status_sections():
    found = LabStatus().process(
        [
            "#http",
            "200 http://127.0.0.1:8000/hub/health",
            "000 http://127.0.0.1:5000/v2/",
            "#api",
            '{"version": "5.2.1"}',
            "#containers",
            "/labhub-hub-1\trunning\t2026-11-30T10:00:00Z\tlabhub/hub:abc\thub",
            "/jupyter-alice\trunning\t2026-11-30T11:00:00Z\t127.0.0.1:5000/lab:1.0\t",
            "#passwords",
            "alice",
            "#docker-root",
            "/var/lib/docker",
            "#registry-data",
            "/var/lib/docker/volumes/labhub_registry-data/_data",
            "#df",
            "100 95 5 /var/lib/docker/volumes/labhub_registry-data/_data",
            "#du",
            "4096\t/home/jupyter-alice",
        ]
    )
    assert found["http"] == {"hub": 200, "registry": 0}
    assert found["hub_version"] == "5.2.1"
    assert found["containers"]["jupyter-alice"]["service"] is None
    assert found["containers"]["labhub-hub-1"]["started"] == "2026-11-30T10:00:00Z"
    assert found["passwords"] == ["alice"]
    assert found["df"]["/var/lib/docker/volumes/labhub_registry-data/_data"]["used"] == 95
    assert found["du"] == {"/home/jupyter-alice": 4096}
    # The hub is not running: whether a user has a password is not known.
    stopped = LabStatus().process(
        [
            "#containers",
            "/labhub-hub-1\texited\t2026-11-30T10:00:00Z\tlabhub/hub:abc\thub",
            "#passwords",
            "#unreadable",
        ]
    )
    assert stopped["passwords"] is None


def test_backup_status_reads_the_service_the_schedule_and_the_latest_snapshot():
    snapshot = (
        '[{"time":"2026-12-02T01:00:02.123456789+01:00","tree":"ab","paths":["/etc/labhub"],'
        '"hostname":"lab","tags":["labhub"],"id":"4e1f9a7c0000","short_id":"4e1f9a7c",'
        '"summary":{"total_bytes_processed":73400320,"data_added":1024}},'
        '{"time":"2026-12-01T00:00:01Z","id":"0b2c4d6e0000","short_id":"0b2c4d6e"}]'
    )
    found = BackupStatus().process(
        [
            "#service",
            "Result=exit-code",
            "ExecMainStatus=1",
            "ExecMainExitTimestamp=Wed 2026-12-02 00:00:41 UTC",
            "#timer",
            "ActiveState=active",
            "LastTriggerUSec=Wed 2026-12-02 00:00:00 UTC",
            "#elapses",
            "Thu 2026-12-03 00:00:00 UTC",
            "Fri 2026-12-04 00:00:00 UTC",
            "#snapshots",
            snapshot,
            "",
            "#restic-exit",
            "0",
            "#restic-errors",
        ]
    )
    assert found == {
        "installed": True,
        "service": {
            "result": "exit-code",
            "exit_status": 1,
            "exited": "Wed 2026-12-02 00:00:41 UTC",
        },
        "timer": {"active": "active", "last_trigger": "Wed 2026-12-02 00:00:00 UTC"},
        "elapses": ["2026-12-03T00:00:00+00:00", "2026-12-04T00:00:00+00:00"],
        "repository": {"reached": True, "error": None},
        # restic's local time with nanoseconds, in UTC.
        "snapshot": {
            "id": "4e1f9a7c",
            "time": "2026-12-02T00:00:02.123456+00:00",
            "size": 73400320,
        },
    }


def test_backup_status_tells_a_repository_not_reached_and_a_program_not_installed():
    lost = BackupStatus().process(
        [
            "#service",
            "Result=success",
            "#snapshots",
            "",
            "#restic-exit",
            "1",
            "#restic-errors",
            "subprocess ssh: Permission denied (publickey).",
            "Fatal: unable to open repository at sftp:restic@10.0.0.2:/srv/restic: EOF",
        ]
    )
    assert lost["installed"] and lost["snapshot"] is None
    assert lost["repository"] == {
        "reached": False,
        "error": "subprocess ssh: Permission denied (publickey).; "
        "Fatal: unable to open repository at sftp:restic@10.0.0.2:/srv/restic: EOF",
    }
    slow = BackupStatus().process(["#snapshots", "", "#restic-exit", "124", "#restic-errors"])
    assert slow["repository"]["error"] == "no answer within 120 s"
    absent = BackupStatus().process(["#service", "Result=success", "#timer", "#elapses"])
    assert not absent["installed"] and absent["repository"]["reached"] is False
    # The schedule goes to systemd-analyze quoted, the password never on the command line.
    command = BackupStatus().command(
        "/usr/local/sbin/labhub-backup",
        "labhub-backup.service",
        "labhub-backup.timer",
        "Mon *-*-* 02:00",
    )
    assert "-- 'Mon *-*-* 02:00'" in command and "password" not in command
