"""
End to end, over SSH: tasks/registry_prune.py on a real Debian 13 lab server whose registry was
brought up by tasks/hub.py (compose project ``labhub``, service ``registry``, data in a named
volume, published on 127.0.0.1:5000). The registry image is the project's stand-in for ``registry:2`` (Debian's distribution 2.8), the
only one that exists here. Images reach the registry for real: pushed through its API over an
SSH tunnel, and with ``docker push`` by the server's own engine, which then runs a container from
one of them and leaves it stopped.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time

import pytest
from registry_server import RegistryAPI, free_port, make_image, make_index

import labhost

pytestmark = pytest.mark.e2e

HUB_DIR = "/opt/labhub"
COMPOSE = f"docker compose -f {HUB_DIR}/compose.yaml"
VOLUME_DATA = "/var/lib/docker/volumes/labhub_registry-data/_data"
@pytest.fixture(scope="module")
def stack(lab_server):
    """The hub stack, registry included, brought up by tasks/hub.py as a deploy brings it up."""
    overrides = labhost.load_stack_images(lab_server)
    inventory = lab_server.inventory_file({"docker_source": "distro", **overrides})
    labhost.run_pyinfra(inventory, "tasks/hub.py").check()
    return overrides["registry_image"]


@pytest.fixture(scope="module")
def tunnel(lab_server, stack):
    """The server's loopback registry, reached from here through SSH: a RegistryAPI to push."""
    port = free_port()
    proc = subprocess.Popen([
        "ssh", "-N", "-i", str(lab_server.key_path), "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ExitOnForwardFailure=yes",
        "-L", f"127.0.0.1:{port}:127.0.0.1:5000", f"{lab_server.login_user}@{lab_server.address}"])
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
    lab = {f"1.{i}": make_image(f"2025-0{i + 1}-01T00:00:00Z", os.urandom(256 * 1024))
           for i in range(5)}
    for tag, image in lab.items():
        api.push_image("lab", tag, image)
    # multi: a stale index and a kept one.
    old_index = make_index([make_image("2025-01-01T00:00:00Z", os.urandom(100_000)),
                            make_image("2025-01-01T00:00:00Z", os.urandom(100_000), arch="arm64")])
    new_index = make_index([make_image("2025-06-01T00:00:00Z", os.urandom(1000)),
                            make_image("2025-06-01T00:00:00Z", os.urandom(1000), arch="arm64")])
    api.push_index("multi", "old", old_index)
    api.push_index("multi", "new", new_index)
    # tools: "old" pushed by the server's engine and used by a stopped container, "new" newer.
    lab_server.exec(f"docker tag {stack} 127.0.0.1:5000/tools:old && "
                    "docker push -q 127.0.0.1:5000/tools:old")
    lab_server.exec("docker run --name stopped-tool --entrypoint /bin/true "
                    "127.0.0.1:5000/tools:old")
    lab_server.exec(f"docker rmi 127.0.0.1:5000/tools:old {stack} >/dev/null || true")
    api.push_image("tools", "new", make_image("2099-01-01T00:00:00Z", b"tools"))

    inventory = lab_server.inventory_file()
    data = {"lab_images": [{"name": "lab", "version": "1.0"}],
            "registry_prune": {"keep_last": 1},
            "registry_image": stack}
    files = volume_files(lab_server)

    # Report only, then apply under --dry: nothing deleted either way.
    report = labhost.run_pyinfra(inventory, "tasks/registry_prune.py", data=data).check()
    assert report.changed == 0
    table = {tuple(line.split("] ", 1)[1].split()[:2]): line for line in report.stderr.splitlines()
             if re.search(r"\] (lab|multi|tools) ", line)}
    assert table[("lab", "1.0")].endswith("keep: lab_images (lab:1.0)")
    assert table[("tools", "old")].endswith("keep: container stopped-tool (exited)")
    deleted = sorted(k for k, line in table.items() if line.rstrip().endswith(" delete"))
    assert deleted == [("lab", "1.1"), ("lab", "1.2"), ("lab", "1.3"), ("multi", "old")]
    dry = labhost.run_pyinfra(inventory, "tasks/registry_prune.py", dry=True,
                              data={**data, "registry_prune_apply": True}).check()
    assert len(dry.planned_changes) == 2
    assert volume_files(lab_server) == files

    # Applied: exactly the listed tags go, the collector frees their blobs, the registry is back.
    started = lab_server.exec(f"docker inspect -f '{{{{.State.StartedAt}}}}' "
                              f"$({COMPOSE} ps -q registry)")
    before = volume_bytes(lab_server)
    applied = labhost.run_pyinfra(inventory, "tasks/registry_prune.py",
                                  data={**data, "registry_prune_apply": True}).check()
    assert applied.changed == 2
    assert api.tags("lab") == ["1.0", "1.4"]
    assert api.tags("multi") == ["new"]
    assert api.tags("tools") == ["new", "old"]
    freed = before - volume_bytes(lab_server)
    stale = sum(lab[t].unique_bytes for t in ("1.1", "1.2", "1.3")) + sum(
        image.unique_bytes for image in old_index.images)
    assert stale <= freed <= stale + 16 * 1024
    match = re.search(r"garbage collection freed .* \((\d+) bytes\) on disk", applied.stderr)
    # What the operation measured around the collection (the deletes' link files went before).
    assert match and stale <= int(match.group(1)) <= freed
    assert lab_server.exec(f"docker inspect -f '{{{{.State.StartedAt}}}}' "
                           f"$({COMPOSE} ps -q registry)") != started
    # Kept images pull complete through the server's own engine; the stopped container stays.
    lab_server.exec("docker pull -q 127.0.0.1:5000/lab:1.0 && docker pull -q "
                    "127.0.0.1:5000/tools:old && docker pull -q 127.0.0.1:5000/multi:new")
    assert lab_server.exec("docker ps -a --filter name=stopped-tool --format '{{.Status}}'"
                           ).startswith("Exited")

    # Nothing stale is left: a second applied run changes nothing.
    again = labhost.run_pyinfra(inventory, "tasks/registry_prune.py",
                                data={**data, "registry_prune_apply": True}).check()
    assert again.changed == 0
    assert "Nothing to delete." in again.stderr
