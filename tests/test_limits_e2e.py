"""
Lab limits and GPUs on a lab server of their own, as lab members meet them: the limits of a
user's groups in ``docker inspect`` of the running lab, a notebook that allocates past its memory
limit killed and its user and the hub's log told why, GPUs handed out by device id, and spawns
the server cannot give refused with a message.

This machine has no GPU. The lab server gets stand-ins of what a GPU server has: ``nvidia-smi``
printing a recorded list of two GPUs (tests/cases/gpu/), ``nvidia-ctk`` printing a toolkit
version, and NVIDIA's ``nvidia-container-runtime-hook``, whose presence makes the real Docker
engine accept ``--gpus`` device requests and call it before each GPU container starts (the
stand-in does nothing). The engine's own container specs are what the tests read: which GPU
each lab was given, ``NVIDIA_VISIBLE_DEVICES`` in the lab as Docker sets it for NVIDIA's runtime,
``/dev/shm``. That a GPU so named is the one the lab computes on is NVIDIA's part, seen only on a
real GPU server.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest
from hubclient import Hub

import labhost

pytestmark = [pytest.mark.e2e, pytest.mark.engine_installed]

MIB = 1024**2
GPU_LIST = Path(__file__).parent / "cases" / "gpu" / "nvidia-smi-L-2x-l40s.txt"
GPUS = ["GPU-a3f9c2d1-6b4e-8d70-25c1-9e8f7a6b5c4d", "GPU-1c7e5b3a-9d2f-4e61-b8a0-3f2e1d0c9b8a"]
PASSWORD = "a-long-first-password"
HUB_PORT = 8000
STAND_INS = {
    "/usr/local/bin/nvidia-smi": f"#!/bin/sh\ncat {shlex.quote('/usr/local/share/gpus.txt')}\n",
    "/usr/local/bin/nvidia-ctk": "#!/bin/sh\necho 'NVIDIA Container Toolkit CLI version 1.17.8'\n",
    "/usr/local/bin/nvidia-container-runtime-hook": "#!/bin/sh\ncat >/dev/null\nexit 0\n",
}


def put(server: labhost.LabServer, path: str, content: str, mode: str = "0755") -> None:
    server.exec(f"printf %s {shlex.quote(content)} > {path} && chmod {mode} {path}")


@pytest.fixture(scope="module")
def hub(lab_server, tmp_path_factory):
    server = lab_server
    overrides = labhost.load_stack_images(server)
    put(server, "/usr/local/share/gpus.txt", GPU_LIST.read_text(), "0644")
    for path, content in STAND_INS.items():
        put(server, path, content)
    # The engine registers NVIDIA's device driver when it starts and finds the hook.
    server.exec("systemctl restart docker")
    cpus = int(server.exec("docker info --format '{{.NCPU}}'"))
    data = {
        "docker_source": "distro",
        "tls": "off",
        # Not about who gets in: the first login sets the password.
        "first_login": "open",
        "hub_bind": "0.0.0.0",
        "hub_port": HUB_PORT,
        "hub_users": [
            "bob",
            {"name": "alice", "groups": ["gpu"]},
            {"name": "carol", "groups": ["gpu"]},
            {"name": "dave", "groups": ["gpu"]},
            {"name": "erin", "groups": ["big"]},
            {"name": "frank", "groups": ["big"]},
            {"name": "gus", "groups": ["tiny"]},
        ],
        "lab_limits": {
            "*": {
                "mem_limit": "256M",
                "cpu_limit": 0.5,
                "mem_guarantee": "64M",
                "cpu_guarantee": 0.25,
            },
            "gpu": {"mem_limit": "512M", "cpu_limit": 1, "cpu_guarantee": 0.5},
            # More than the server has left once the two GPU labs run.
            "big": {"cpu_limit": cpus, "cpu_guarantee": cpus - 0.5},
            # Less than a Jupyter server needs to start.
            "tiny": {"mem_limit": "24M", "mem_guarantee": "16M"},
        },
        "lab_gpus": {"gpu": 1},
        "lab_shm_size": "256M",
        **overrides,
    }
    labhost.run_pyinfra(server.inventory_file(data), "deploy.py").check()
    return {
        "server": server,
        "url": f"http://{server.address}:{HUB_PORT}",
        "cpus": cpus,
        "data": data,
    }


def login(hub: dict, name: str) -> Hub:
    user = Hub(hub["url"], name)
    user.login(PASSWORD)
    assert user.logged_in()
    user.api_token()
    return user


def inspect(server: labhost.LabServer, container: str) -> dict:
    return json.loads(server.exec(f"docker inspect {shlex.quote(container)}"))[0]


def hub_log(server: labhost.LabServer) -> str:
    return server.exec("docker logs labhub-hub-1 2>&1")


def eventually(check, timeout: float = 180, step: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout} s: {step}"
        time.sleep(2)


def run_until_it_dies(user: Hub, code: str) -> None:
    """Run code in a new kernel that the kernel OOM killer is expected to kill."""
    try:
        user.run(code, timeout=60)
    except AssertionError:  # the WebSocket closes, or the lab says the kernel died
        pass


def test_the_spawn_form_shows_the_limits_of_the_users_groups(hub):
    bob = login(hub, "bob")
    form = bob.spawn_form()
    assert "Memory: at most 256M, 64M guaranteed" in form
    assert "CPU: at most 0.5 CPUs, 0.25 CPUs guaranteed" in form
    alice = login(hub, "alice")
    form = alice.spawn_form()
    assert "Memory: at most 512M, 64M guaranteed" in form
    assert "GPUs: 1 of the lab&#x27;s own" in form
    assert "GPUs free now: 2 of 2" in form


def test_the_limits_are_in_the_running_labs_container(hub):
    bob = login(hub, "bob")
    bob.start()
    config = inspect(hub["server"], "jupyter-bob")["HostConfig"]
    assert config["Memory"] == 256 * MIB
    assert config["MemorySwap"] == 256 * MIB  # no swap beyond the limit
    assert config["NanoCpus"] == 500_000_000
    assert config["MemoryReservation"] == 64 * MIB
    assert config["CpuShares"] == 256
    assert config["AutoRemove"] is False  # kept until the hub has read why it stopped
    assert not config["DeviceRequests"]
    # The lab knows its limit, as jupyter-resource-usage reads it.
    assert bob.run("import os; print(os.environ['MEM_LIMIT'])").strip() == str(256 * MIB)


def test_a_notebook_past_the_memory_limit_is_killed_and_its_user_told(hub):
    server = hub["server"]
    bob = login(hub, "bob")
    assert bob.server() and bob.server()["ready"]
    # Touched pages, 384M, past bob's 256M: the kernel's own OOM killer ends the kernel.
    run_until_it_dies(bob, "block = b'x' * (384 * 1024 * 1024)\nprint(len(block))")
    assert inspect(server, "jupyter-bob")["State"]["OOMKilled"] is True
    page = eventually(
        lambda: (text := bob.home_page()) and "used more than its memory limit" in text and text,
        step="the home page tells bob",
    )
    assert (
        "A process in your lab was killed because the lab used more than its memory limit of "
        "256M" in page
    )
    log = hub_log(server)
    assert "bob's lab jupyter-bob hit its memory limit (256M)" in log
    assert "the kernel killed a process in it, the lab runs on" in log
    # The lab itself runs on: a new kernel answers.
    assert bob.run("print(6 * 7)").strip() == "42"


def test_a_lab_whose_server_is_killed_for_memory_stops_and_its_user_is_told(hub):
    server = hub["server"]
    bob = login(hub, "bob")
    # The lab's Jupyter server first in the OOM killer's line (any user may raise their own
    # processes' score), then a kernel past the limit: the server is killed, the lab stops.
    run_until_it_dies(
        bob,
        "import os\n"
        "open(f'/proc/{os.getppid()}/oom_score_adj', 'w').write('1000')\n"
        "block = b'x' * (384 * 1024 * 1024)",
    )
    eventually(lambda: bob.server() is None, step="the hub sees bob's lab stopped")
    page = bob.home_page()
    assert "Your lab was stopped because it used more than its memory limit of 256M." in page
    log = hub_log(server)
    assert "the kernel killed its main process, the lab stopped (OOMKilled, exit code 137)" in log
    # Read, then removed.
    assert "jupyter-bob" not in server.exec("docker ps -a --format '{{.Names}}'").split()
    # The notice stays until the next lab starts.
    bob.start()
    assert "used more than its memory limit" not in bob.home_page()


def test_two_labs_asking_for_one_gpu_each_get_different_ones(hub):
    server = hub["server"]
    given = {}
    for name in ("alice", "carol"):
        user = login(hub, name)
        user.start()
        container = inspect(server, f"jupyter-{name}")
        (request,) = container["HostConfig"]["DeviceRequests"]
        assert request["Driver"] == "nvidia" and request["Capabilities"] == [["gpu"]]
        given[name] = request["DeviceIDs"]
        assert container["HostConfig"]["ShmSize"] == 256 * MIB
        # What NVIDIA's runtime reads to expose the GPU, as Docker sets it in the lab.
        visible = user.run("import os; print(os.environ['NVIDIA_VISIBLE_DEVICES'])").strip()
        assert visible == ",".join(given[name])
        shm = user.run("import os; s = os.statvfs('/dev/shm'); print(s.f_blocks * s.f_frsize)")
        assert shm.strip() == str(256 * MIB)
    assert sorted(given.values()) == sorted([[gpu] for gpu in GPUS])
    assert "alice's lab gets GPUs" in hub_log(server)


def test_a_lab_asking_for_a_gpu_when_none_is_free_is_refused(hub):
    dave = login(hub, "dave")
    assert "GPUs free now: 0 of 2 (too few: the spawn would be refused)" in dave.spawn_form()
    refused = dave.api("POST", "/hub/api/users/dave/server", json={})
    assert refused.status_code >= 400, refused.text
    assert (
        "Your lab cannot start now: your lab needs 1 GPU of its own and none is free"
        in refused.json()["message"]
    )
    assert dave.server() is None
    assert "jupyter-dave" not in hub["server"].exec("docker ps -a --format '{{.Names}}'").split()
    assert "refused dave's lab: your lab needs 1 GPU of its own" in hub_log(hub["server"])


def spawn_failure(user: Hub) -> str:
    """The message of a spawn that fails: the API's answer when it fails at once, else the
    failure the spawn's progress reports."""
    response = user.api("POST", f"/hub/api/users/{user.user}/server", json={})
    if response.status_code >= 400:
        return response.json()["message"]
    assert response.status_code == 202, response.text
    progress = user.api("GET", f"/hub/api/users/{user.user}/server/progress", stream=True)
    for line in progress.iter_lines(decode_unicode=True):
        if line.startswith("data:") and json.loads(line[5:]).get("failed"):
            return json.loads(line[5:])["message"]
    raise AssertionError(f"{user.user}'s spawn did not fail")


def test_a_lab_killed_for_memory_while_it_starts_says_so_not_that_the_image_is_broken(hub):
    gus = login(hub, "gus")
    message = spawn_failure(gus)
    assert (
        "Your lab cannot start now: it used more than its memory limit of 24M while it started"
        in message
    ), message
    assert "cannot start a Jupyter server" not in message
    assert gus.server() is None


def test_a_lab_whose_guarantee_the_server_cannot_give_is_refused(hub):
    erin = login(hub, "erin")
    refused = erin.api("POST", "/hub/api/users/erin/server", json={})
    assert refused.status_code >= 400, refused.text
    # alice's and carol's labs hold 0.5 CPUs each, bob's 0.25.
    left = hub["cpus"] - 1.25
    assert (
        f"your lab is guaranteed {hub['cpus'] - 0.5:g} CPUs, and this server has "
        f"{left:g} CPUs of its {hub['cpus']} CPUs left to guarantee" in refused.json()["message"]
    )
    assert erin.server() is None


def test_a_change_of_groups_applies_at_the_next_spawn_without_a_hub_restart(hub):
    server = hub["server"]
    started = inspect(server, "labhub-hub-1")["State"]["StartedAt"]
    data = dict(hub["data"])
    data["hub_users"] = [
        {"name": "erin", "groups": ["leem"]} if isinstance(u, dict) and u["name"] == "erin" else u
        for u in data["hub_users"]
    ]
    labhost.run_pyinfra(server.inventory_file(data), "deploy.py").check()
    assert inspect(server, "labhub-hub-1")["State"]["StartedAt"] == started
    erin = login(hub, "erin")
    assert "CPU: at most 0.5 CPUs, 0.25 CPUs guaranteed" in erin.spawn_form()
    erin.start()
    config = inspect(server, "jupyter-erin")["HostConfig"]
    assert config["NanoCpus"] == 500_000_000 and config["Memory"] == 256 * MIB


def node_inventory(server: labhost.LabServer) -> Path:
    """The lab server as a swarm's lab node (the hub server named, never reached: --limit)."""
    node = {**server.login_data(), "docker_source": "distro"}
    path = server.workdir / "node-inventory.py"
    path.write_text(
        f"lab_servers = [('hub.invalid', {{}})]\nlab_nodes = [({server.address!r}, {node!r})]\n"
    )
    return path


def test_a_gpu_node_with_a_toolkit_before_1_19_is_refused_before_any_change(hub):
    server = hub["server"]
    inventory = node_inventory(server)
    daemon = server.exec("cat /etc/docker/daemon.json")
    refused = labhost.run_pyinfra(inventory, "tasks/docker.py", extra=("--limit", server.address))
    assert refused.returncode != 0
    assert (
        f"{server.address}: NVIDIA container toolkit 1.17.8 exposes every GPU of the node to "
        "every swarm task" in refused.stderr + refused.stdout
    )
    assert "nvidia-container-toolkit#1599" in refused.stderr + refused.stdout
    assert server.exec("cat /etc/docker/daemon.json") == daemon


def test_a_gpu_node_advertises_its_gpus_to_the_swarm(hub):
    server = hub["server"]
    put(
        server,
        "/usr/local/bin/nvidia-ctk",
        "#!/bin/sh\necho 'NVIDIA Container Toolkit CLI version 1.19.0'\n",
    )
    # NVIDIA's runtime stands in as runc itself, its configuration as the package ships it.
    put(server, "/usr/local/bin/nvidia-container-runtime", '#!/bin/sh\nexec runc "$@"\n')
    server.exec("mkdir -p /etc/nvidia-container-runtime")
    put(
        server,
        "/etc/nvidia-container-runtime/config.toml",
        '#swarm-resource = "DOCKER_RESOURCE_GPU"\n\n[nvidia-container-cli]\nldconfig = '
        '"@/sbin/ldconfig"\n',
        "0644",
    )
    labhost.run_pyinfra(
        node_inventory(server), "tasks/docker.py", extra=("--limit", server.address)
    ).check()
    daemon = json.loads(server.exec("cat /etc/docker/daemon.json"))
    assert daemon["node-generic-resources"] == sorted(f"NVIDIA-GPU={gpu}" for gpu in GPUS)
    assert daemon["default-runtime"] == "nvidia"
    assert daemon["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    # labhub's other keys kept (live-restore off: a swarm's server, which refuses it).
    assert daemon["live-restore"] is False
    config = server.exec("cat /etc/nvidia-container-runtime/config.toml")
    assert config.splitlines()[0] == 'swarm-resource = "DOCKER_RESOURCE_NVIDIA-GPU"'
    # The engine was restarted and reads them.
    info = json.loads(server.exec("docker info --format '{{json .}}'"))
    assert info["DefaultRuntime"] == "nvidia"
    assert sorted(
        spec["NamedResourceSpec"]["Value"] for spec in info.get("GenericResources") or []
    ) == sorted(GPUS)
    again = labhost.run_pyinfra(
        node_inventory(server), "tasks/docker.py", extra=("--limit", server.address)
    ).check()
    assert not [name for name in again.changed_operations if "GPU" in name], (
        again.changed_operations
    )
