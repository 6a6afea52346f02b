"""
End to end, over SSH: tasks/registry_prune.py on a real Debian 13 lab server whose registry was
brought up by tasks/hub.py (compose project ``labhub``, service ``registry``, data in a named
volume, published on 127.0.0.1:5000). The registry image is the project's stand-in for
``registry:2`` (Debian's distribution 2.8), the only one that exists here. Images reach the
registry for real: pushed through its API over an SSH tunnel, with ``docker push`` by the
server's own engine, which then runs a container from one of them and leaves it stopped, and by
the thousand through the API from the server itself (``registry_populate.py``).

The tests share the server and run in order: a small prune, 10,000 stale tags pruned in one run,
then prunes killed during their deletions and during their garbage collection.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest
import registry_populate
from registry_server import RegistryAPI, free_port, make_image, make_index

import labhost

pytestmark = [pytest.mark.e2e, pytest.mark.engine_installed]

HUB_DIR = "/opt/labhub"
COMPOSE = f"docker compose -f {HUB_DIR}/compose.yaml"
VOLUME_DATA = "/var/lib/docker/volumes/labhub_registry-data/_data"
STATE_DIR = f"{HUB_DIR}/registry"
REGISTRY_URL = "http://127.0.0.1:5000"
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def stack_data(lab_server):
    """The settings the hub stack is deployed with on this server (its stand-in images)."""
    return {"docker_source": "distro", **labhost.load_stack_images(lab_server)}


@pytest.fixture(scope="module")
def stack(lab_server, stack_data):
    """The hub stack, registry included, brought up by tasks/hub.py as a deploy brings it up."""
    inventory = lab_server.inventory_file(stack_data)
    labhost.run_pyinfra(inventory, "tasks/hub.py").check()
    return stack_data["registry_image"]


@pytest.fixture(scope="module")
def tunnel(lab_server, stack):
    """The server's loopback registry, reached from here through SSH: a RegistryAPI to push."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "ssh",
            "-N",
            "-i",
            str(lab_server.key_path),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            f"127.0.0.1:{port}:127.0.0.1:5000",
            f"{lab_server.login_user}@{lab_server.address}",
        ]
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield RegistryAPI(f"127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait()


def volume_files(server) -> str:
    return server.exec(f"cd {VOLUME_DATA} && find . -type f -printf '%p %s\\n' | sort")


def volume_bytes(server) -> int:
    return int(server.exec(f"du -sb {VOLUME_DATA} | cut -f1").strip())


def test_prune_over_ssh(lab_server, stack, tunnel):
    api = tunnel
    # lab: five versions; lab_images pins 1.0, keep_last 1 keeps 1.4.
    lab = {
        f"1.{i}": make_image(f"2025-0{i + 1}-01T00:00:00Z", os.urandom(256 * 1024))
        for i in range(5)
    }
    for tag, image in lab.items():
        api.push_image("lab", tag, image)
    # multi: a stale index and a kept one.
    old_index = make_index(
        [
            make_image("2025-01-01T00:00:00Z", os.urandom(100_000)),
            make_image("2025-01-01T00:00:00Z", os.urandom(100_000), arch="arm64"),
        ]
    )
    new_index = make_index(
        [
            make_image("2025-06-01T00:00:00Z", os.urandom(1000)),
            make_image("2025-06-01T00:00:00Z", os.urandom(1000), arch="arm64"),
        ]
    )
    api.push_index("multi", "old", old_index)
    api.push_index("multi", "new", new_index)
    # tools: "old" pushed by the server's engine and used by a stopped container, "new" newer.
    lab_server.exec(
        f"docker tag {stack} 127.0.0.1:5000/tools:old && docker push -q 127.0.0.1:5000/tools:old"
    )
    lab_server.exec(
        "docker run --name stopped-tool --entrypoint /bin/true 127.0.0.1:5000/tools:old"
    )
    lab_server.exec(f"docker rmi 127.0.0.1:5000/tools:old {stack} >/dev/null || true")
    api.push_image("tools", "new", make_image("2099-01-01T00:00:00Z", b"tools"))

    inventory = lab_server.inventory_file()
    data = {
        "lab_images": [{"name": "lab", "version": "1.0"}],
        "registry_prune": {"keep_last": 1},
        "registry_image": stack,
    }
    files = volume_files(lab_server)

    # Report only, then apply under --dry: nothing deleted either way.
    report = labhost.run_pyinfra(inventory, "tasks/registry_prune.py", data=data).check()
    assert report.changed == 0
    table = {
        tuple(line.split("] ", 1)[1].split()[:2]): line
        for line in report.stderr.splitlines()
        if re.search(r"\] (lab|multi|tools) ", line)
    }
    assert table[("lab", "1.0")].endswith("keep: lab_images (lab:1.0)")
    assert table[("tools", "old")].endswith("keep: container stopped-tool (exited)")
    deleted = sorted(k for k, line in table.items() if line.rstrip().endswith(" delete"))
    assert deleted == [("lab", "1.1"), ("lab", "1.2"), ("lab", "1.3"), ("multi", "old")]
    dry = labhost.run_pyinfra(
        inventory, "tasks/registry_prune.py", dry=True, data={**data, "registry_prune_apply": True}
    ).check()
    assert len(dry.planned_changes) == 2
    assert volume_files(lab_server) == files

    # Applied: exactly the listed tags go, the collector frees their blobs, the registry is back.
    started = lab_server.exec(
        f"docker inspect -f '{{{{.State.StartedAt}}}}' $({COMPOSE} ps -q registry)"
    )
    before = volume_bytes(lab_server)
    applied = labhost.run_pyinfra(
        inventory, "tasks/registry_prune.py", data={**data, "registry_prune_apply": True}
    ).check()
    assert applied.changed == 2
    assert api.tags("lab") == ["1.0", "1.4"]
    assert api.tags("multi") == ["new"]
    assert api.tags("tools") == ["new", "old"]
    freed = before - volume_bytes(lab_server)
    stale = sum(lab[t].unique_bytes for t in ("1.1", "1.2", "1.3")) + sum(
        image.unique_bytes for image in old_index.images
    )
    assert stale <= freed <= stale + 16 * 1024
    match = COLLECTED.search(applied.stderr)
    # What the operation measured around the collection (the deletes' link files went before).
    assert match and stale <= int(match.group(1)) <= freed
    assert (
        lab_server.exec(f"docker inspect -f '{{{{.State.StartedAt}}}}' $({COMPOSE} ps -q registry)")
        != started
    )
    # Kept images pull complete through the server's own engine; the stopped container stays.
    lab_server.exec(
        "docker pull -q 127.0.0.1:5000/lab:1.0 && docker pull -q "
        "127.0.0.1:5000/tools:old && docker pull -q 127.0.0.1:5000/multi:new"
    )
    assert lab_server.exec(
        "docker ps -a --filter name=stopped-tool --format '{{.Status}}'"
    ).startswith("Exited")

    # Nothing stale is left: a second applied run changes nothing.
    again = labhost.run_pyinfra(
        inventory, "tasks/registry_prune.py", data={**data, "registry_prune_apply": True}
    ).check()
    assert again.changed == 0
    assert "Nothing to delete." in again.stderr


# --- Many tags, and prunes that are killed ---------------------------------------------------------

POPULATE_DIR = "/var/tmp/labhub-populate"  # not /tmp: the server mounts a tmpfs there
FREES = re.compile(r"frees(?: about)? \S+ \S+ \((\d+) bytes\)")
COLLECTED = re.compile(r"garbage collection freed \S+ \S+ \((\d+) bytes\) of blobs")
REGISTRY_CONTAINER = (
    "docker ps -aq --filter label=com.docker.compose.project=labhub "
    "--filter label=com.docker.compose.service=registry "
    "--filter label=com.docker.compose.oneoff=False"
)
# Kills a process tree, each parent stopped before its children are looked up (in /proc: the
# lab server has no procps).
KILL_TREE = (
    'kill_tree() { kill -STOP "$1" 2>/dev/null; for c in $(cat /proc/"$1"/task/*/children '
    '2>/dev/null); do kill_tree "$c"; done; kill -KILL "$1" 2>/dev/null; }'
)


def copy_in(server, folder: str, files: dict[str, bytes]) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    server.exec(f"mkdir -p {folder}")
    server.container.put_archive(folder, archive.getvalue())


def populate(server, spec: dict) -> dict:
    """Push a ``registry_populate`` layout from the server itself, over its loopback."""
    copy_in(
        server,
        POPULATE_DIR,
        {
            "registry_images.py": (TESTS / "registry_images.py").read_bytes(),
            "registry_populate.py": (TESTS / "registry_populate.py").read_bytes(),
            "layout.json": json.dumps(spec).encode(),
        },
    )
    return json.loads(
        server.exec(
            f"python3 {POPULATE_DIR}/registry_populate.py fill "
            f"{REGISTRY_URL} {POPULATE_DIR}/layout.json"
        )
    )


def missing(server, refs: list[str]) -> list[str]:
    """The manifests and blobs of ``refs`` the registry does not serve (a pull would fail)."""
    out = server.exec(
        f"python3 {POPULATE_DIR}/registry_populate.py check {REGISTRY_URL} "
        + " ".join(shlex.quote(r) for r in refs)
    )
    result = json.loads(out)
    assert result["checked"] == len(refs)
    return result["missing"]


def blob_bytes(server) -> int:
    """Bytes of the registry's blob files (what its garbage collector deletes)."""
    return int(
        server.exec(
            f"find {VOLUME_DATA}/docker/registry/v2/blobs -type f -printf "
            "'%s\\n' | awk '{s += $1} END {printf \"%.0f\", s}'"
        )
    )


def blob_on_disk(server, digest: str) -> bool:
    hexa = digest.split(":", 1)[1]
    return (
        server.exec(
            f"test -f {VOLUME_DATA}/docker/registry/v2/blobs/sha256/{hexa[:2]}/"
            f"{hexa}/data && echo yes || true"
        ).strip()
        == "yes"
    )


def registry_status(server) -> str:
    return server.exec(f"docker inspect -f '{{{{.State.Status}}}}' $({REGISTRY_CONTAINER})").strip()


def registry_answers(server) -> bool:
    return (
        server.exec(f"curl -s -o /dev/null -w '%{{http_code}}' {REGISTRY_URL}/v2/ || true").strip()
        == "200"
    )


def stale_left(server, refs: list[str]) -> int:
    repos = sorted({ref.rsplit(":", 1)[0] for ref in refs})
    script = (
        "import json, sys, urllib.request\n"
        "for repo in sys.argv[1:]:\n"
        "    tags = json.load(urllib.request.urlopen("
        f"{REGISTRY_URL!r} + '/v2/' + repo + '/tags/list')).get('tags') or []\n"
        "    print('\\n'.join(repo + ':' + t for t in tags))\n"
    )
    out = server.exec(f"python3 -c {shlex.quote(script)} " + " ".join(repos))
    return len(set(out.split()) & set(refs))


PRUNE = {
    "lab_images": [{"name": "lab", "version": "1.0"}],
    "registry_prune": {"keep_last": 2, "keep_tags": ["^stable$"]},
}


def test_ten_thousand_stale_tags_in_twenty_repositories_pruned_in_one_run(lab_server, stack):
    # 500 stale tags a repository (and a stale index), five on each manifest: 10,001 tags on
    # 2,001 manifests. Each DELETE makes registry 2.8 read every tag of the repository (about
    # 40 ms of its CPU at 500 tags): distinct manifests for all 10,000 tags cost minutes.
    pushed = populate(
        lab_server,
        registry_populate.layout(
            [f"team{i:02d}/app" for i in range(20)],
            stale=500,
            common=True,
            indexes=True,
            seed="scale",
            tags_per_image=5,
        ),
    )
    assert len(pushed["stale"]) == 10_001
    # Every command line the SSH server receives, measured by the login user's shell.
    user = lab_server.login_user
    shell = lab_server.exec(f"getent passwd {user} | cut -d: -f7").strip()
    copy_in(
        lab_server,
        "/usr/local/bin",
        {
            "measured-shell": (
                b"#!/bin/bash\n"
                b'if [ "$1" = -c ]; then printf "%s\\n" "${#2}" >> /var/tmp/command-lengths; fi\n'
                b'exec /bin/bash "$@"\n'
            )
        },
    )
    lab_server.exec(
        "chmod 755 /usr/local/bin/measured-shell && : > /var/tmp/command-lengths && "
        f"chmod 666 /var/tmp/command-lengths && chsh -s /usr/local/bin/measured-shell "
        f"{user}"
    )
    before = blob_bytes(lab_server)
    try:
        applied = labhost.run_pyinfra(
            lab_server.inventory_file(),
            "tasks/registry_prune.py",
            data={**PRUNE, "registry_image": stack, "registry_prune_apply": True},
        ).check()
    finally:
        lab_server.exec(f"chsh -s {shlex.quote(shell)} {user}")
    lengths = [int(x) for x in lab_server.exec("cat /var/tmp/command-lengths").split()]

    # One run deleted every stale tag; what the collector freed is what the report said.
    assert re.search(r"2001 stale image\(s\) \(10001 tag\(s\), 1 platform manifest", applied.stderr)
    would_free = int(FREES.search(applied.stderr).group(1))
    assert before - blob_bytes(lab_server) == would_free
    assert int(COLLECTED.search(applied.stderr).group(1)) == would_free
    progress = re.findall(r"labhub registry delete: (\d+) of 2001 stale manifest", applied.stderr)
    assert len(progress) >= 20 and progress[-1] == "2001"  # a batch at a time
    assert stale_left(lab_server, pushed["stale"]) == 0
    # Kept tags pull complete; blobs that kept, untagged or other repositories' manifests use
    # are there; the stale families' own layers are gone.
    assert missing(lab_server, pushed["kept"]) == []
    lab_server.exec(
        "docker pull -q 127.0.0.1:5000/team00/app:stable && "
        "docker pull -q 127.0.0.1:5000/team07/app:2.1"
    )
    assert all(blob_on_disk(lab_server, d) for d in pushed["shared"])
    assert not any(blob_on_disk(lab_server, d) for d in pushed["family_layers"])
    # The deletions went up as a file: no command line carried them (their list is
    # hundreds of kB, more than one argument of a command may hold: 128 kB).
    assert lengths and max(lengths) < 64 * 1024, max(lengths)


def start_prune(server, stack) -> subprocess.Popen:
    return labhost.start_pyinfra(
        server.inventory_file(),
        "tasks/registry_prune.py",
        data={**PRUNE, "registry_image": stack, "registry_prune_apply": True},
    )


def kill_run(run: subprocess.Popen) -> str:
    """Kill a pyinfra run as a dying terminal would; return what it printed."""
    run.send_signal(signal.SIGKILL)
    _, err = run.communicate(timeout=60)
    return err


def test_prune_killed_during_deletions_is_finished_by_the_next_run(lab_server, stack):
    pushed = populate(
        lab_server,
        registry_populate.layout(
            ["killed/d0", "killed/d1"], stale=150, families=20, seed="deletions"
        ),
    )
    run = start_prune(lab_server, stack)
    printed = []
    for line in run.stderr:
        printed.append(line)
        if "labhub registry delete: " in line and " of 300 stale manifest(s) done" in line:
            break
    else:
        raise AssertionError("no deletion progress:\n" + "".join(printed[-40:]))
    # The terminal dies, and the host's side of the prune with it.
    printed.append(kill_run(run))
    lab_server.exec(f"{KILL_TREE}; pid=$(cat {STATE_DIR}/prune.lock); kill_tree $pid")
    left = stale_left(lab_server, pushed["stale"])
    assert 0 < left < 300, left
    assert registry_answers(lab_server)
    assert missing(lab_server, pushed["kept"]) == []
    assert lab_server.exec(f"cat {STATE_DIR}/prune-pending").strip() == "deleting"

    # The next run deletes what is left and collects all of it: exactly what its report said.
    before = blob_bytes(lab_server)
    again = labhost.run_pyinfra(
        lab_server.inventory_file(),
        "tasks/registry_prune.py",
        data={**PRUNE, "registry_image": stack, "registry_prune_apply": True},
    ).check()
    assert (
        "a previous prune stopped before its garbage collection finished (it was deleting)"
        in again.stderr
    )
    assert f"{left} stale image(s)" in again.stderr
    assert before - blob_bytes(lab_server) == int(FREES.search(again.stderr).group(1))
    assert stale_left(lab_server, pushed["stale"]) == 0
    assert missing(lab_server, pushed["kept"]) == []
    assert lab_server.exec(f"test -e {STATE_DIR}/prune-pending && echo left || true") == ""


def kill_during_collection(server, stack) -> str:
    """Run an applied prune and kill it, terminal and host side, once its garbage collection
    has stopped the registry. Returns what the run printed."""
    watcher = subprocess.Popen(
        [
            "docker",
            "exec",
            server.container_id,
            "sh",
            "-c",
            f"""
{KILL_TREE}
end=$(($(date +%s) + 600))
while [ "$(date +%s)" -lt "$end" ]; do
  if [ "$(cat {STATE_DIR}/prune-pending 2>/dev/null)" = collecting ] && \
     [ "$(docker inspect -f '{{{{.State.Status}}}}' $({REGISTRY_CONTAINER}))" = exited ]; then
    pid=$(cat {STATE_DIR}/prune.lock); kill_tree "$pid"; echo "killed $pid"; exit 0
  fi
  sleep 0.05
done
exit 1
""",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    run = start_prune(server, stack)
    printed: list[str] = []
    reader = threading.Thread(target=lambda: printed.extend(run.stderr))
    reader.start()
    try:
        out, _ = watcher.communicate(timeout=600)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(60)
        reader.join(60)
    assert watcher.returncode == 0 and out.startswith("killed"), "".join(printed)[-3000:]
    return "".join(printed)


def test_prune_killed_during_garbage_collection_is_recovered(lab_server, stack, stack_data):
    first = populate(
        lab_server,
        registry_populate.layout(["killed/gc1"], stale=120, families=30, seed="collection-1"),
    )
    kill_during_collection(lab_server, stack)
    # Killed with the registry stopped: it stays down until labhub is run again.
    assert registry_status(lab_server) == "exited" and not registry_answers(lab_server)

    # The next prune finishes the collection and starts the registry.
    inventory = lab_server.inventory_file()
    data = {**PRUNE, "registry_image": stack, "registry_prune_apply": True}
    finished = labhost.run_pyinfra(inventory, "tasks/registry_prune.py", data=data).check()
    assert "interrupted during garbage collection" in finished.stderr
    assert registry_answers(lab_server)
    assert missing(lab_server, first["kept"]) == []
    assert stale_left(lab_server, first["stale"]) == 0
    assert lab_server.exec("docker ps -aq --filter name=labhub-registry-gc") == ""
    # Nothing is left to delete or collect.
    report = labhost.run_pyinfra(
        inventory, "tasks/registry_prune.py", data={**PRUNE, "registry_image": stack}
    ).check()
    assert "Nothing to delete." in report.stderr

    # Killed again; this time tasks/hub.py brings the registry back, and the next prune
    # collects what the killed one left, as its report says.
    second = populate(
        lab_server,
        registry_populate.layout(["killed/gc2"], stale=120, families=30, seed="collection-2"),
    )
    kill_during_collection(lab_server, stack)
    assert not registry_answers(lab_server)
    labhost.load_stack_images(lab_server)  # the registry's image, untagged by the first test
    labhost.run_pyinfra(lab_server.inventory_file(stack_data), "tasks/hub.py").check()
    assert registry_answers(lab_server)
    assert missing(lab_server, second["kept"] + first["kept"]) == []
    before = blob_bytes(lab_server)
    done = labhost.run_pyinfra(
        lab_server.inventory_file(), "tasks/registry_prune.py", data=data
    ).check()
    assert "it was collecting" in done.stderr
    assert before - blob_bytes(lab_server) == int(FREES.search(done.stderr).group(1))
    assert missing(lab_server, second["kept"] + first["kept"]) == []
    assert lab_server.exec(f"test -e {STATE_DIR}/prune-pending && echo left || true") == ""
