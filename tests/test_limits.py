"""
Lab limits and GPUs without a server: the settings refused, what a user's groups give a lab,
the container and service specs built from it, GPUs handed out by device id, guarantees counted
against the server, what a user is told when the lab met its memory limit; the GPU facts parsed
from recorded output of nvidia-smi and the NVIDIA container toolkit (tests/cases/gpu/), and the
daemon.json of a swarm's GPU node.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from labhub import gpus, limits, stack
from labhub.facts.engine import EngineInfo, running_settings
from labhub.facts.gpus import ContainerToolkit, Gpus
from labhub.registry import CLIENT_SOURCE_FILE
from labhub.settings import SettingsError, validate

CASES = Path(__file__).parent / "cases"
GIB = 1024**3
MIB = 1024**2


@pytest.fixture(scope="module")
def spawn(tmp_path_factory):
    """files/hub/labhub_spawn.py as the hub image installs it, beside the registry client."""
    lib = tmp_path_factory.mktemp("hub-lib")
    shutil.copy(stack.HUB_CONTEXT / "labhub_spawn.py", lib)
    shutil.copy(CLIENT_SOURCE_FILE, lib / "labhub_registry.py")
    sys.path.insert(0, str(lib))
    for module in ("labhub_spawn", "labhub_registry"):
        sys.modules.pop(module, None)
    import labhub_spawn

    yield labhub_spawn
    sys.path.remove(str(lib))
    for module in ("labhub_spawn", "labhub_registry"):
        sys.modules.pop(module, None)


def recorded(name: str) -> list[str]:
    return (CASES / "gpu" / name).read_text().splitlines()


def state(name: str) -> dict:
    return json.loads((CASES / "lab-state" / f"{name}.json").read_text())


USERS = {
    "tls": "off",
    "hub_users": [
        {"name": "alice", "groups": ["leem", "gpu"]},
        {"name": "carol", "groups": ["gpu"]},
        "bob",
    ],
}
LIMITS = {
    "*": {"mem_limit": "2G", "cpu_limit": 1, "mem_guarantee": "512M", "cpu_guarantee": 0.25},
    "leem": {"mem_limit": "8G", "mem_guarantee": "2G", "cpu_guarantee": 0.5},
    "gpu": {"mem_limit": "16G", "cpu_limit": 4},
}


def settings(**data):
    return validate({**USERS, **data})


# --- Settings ----------------------------------------------------------------------------------


def test_limits_are_completed_with_the_default_and_kept_in_bytes():
    given = settings(lab_limits=LIMITS, lab_gpus={"gpu": 1}, lab_shm_size="1G")
    limits = stack.hub_settings(given)["limits"]
    assert limits["groups"]["leem"] == {
        "mem_limit": 8 * GIB,
        "cpu_limit": 1.0,  # the default's: leem says nothing of CPUs
        "mem_guarantee": 2 * GIB,
        "cpu_guarantee": 0.5,
    }
    assert limits["groups"]["*"]["mem_guarantee"] == 512 * MIB
    assert limits["gpus"] == {"gpu": 1}
    assert limits["shm_size"] == GIB
    assert limits["server_gpus"] == []


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"lab_limits": {"leem": {"mem_limit": "1G", "mem_guarantee": "2G"}}},
            "lab_limits.leem.mem_guarantee: 2G is more than the mem_limit of 1G",
        ),
        (
            {"lab_limits": {"leem": {"cpu_limit": 1, "cpu_guarantee": 1.5}}},
            "lab_limits.leem.cpu_guarantee: 1.5 CPUs is more than the cpu_limit of 1 CPU",
        ),
        (
            {"lab_limits": {"*": {"mem_limit": "1G"}, "leem": {"mem_guarantee": "2G"}}},
            "lab_limits.leem.mem_guarantee: 2G is more than the mem_limit of 1G: a lab cannot be "
            "guaranteed more than it may use (with the default's, lab_limits.*)",
        ),
        (
            {"lab_limits": {"physics": {"mem_limit": "1G"}}},
            "lab_limits.physics: 'physics' is not a group of any hub user (their groups: gpu, leem)",
        ),
        ({"lab_limits": {"sudo": {"mem_limit": "1G"}}}, "lab_limits: 'sudo' is a system group"),
        (
            {"lab_limits": {"leem": {"mem_limit": "8 GB"}}},
            "lab_limits.leem.mem_limit: '8 GB' is not a size",
        ),
        (
            {"lab_limits": {"leem": {"mem_limit": 512}}},
            "lab_limits.leem.mem_limit: 512 bytes is less than Docker's smallest memory limit",
        ),
        ({"lab_limits": {"leem": {"memory": "8G"}}}, "lab_limits.leem.memory: unknown setting"),
        (
            {"lab_limits": {"leem": {"cpu_limit": 0}}},
            "lab_limits.leem.cpu_limit: Input should be greater than 0",
        ),
        ({"lab_gpus": {"gpu": 0}}, "lab_gpus.gpu: 0 is not a GPU request"),
        ({"lab_gpus": {"gpu": "any"}}, "lab_gpus.gpu: 'any' is not a GPU request"),
        (
            {"lab_gpus": {"gpu": ["0", "gpu0"]}},
            "lab_gpus.gpu: 'gpu0' is not a GPU as nvidia-smi -L names it",
        ),
        ({"lab_gpus": {"gpu": ["1", "1"]}}, "lab_gpus.gpu: lists a GPU twice"),
        (
            {"lab_gpus": {"physics": 1}},
            "lab_gpus.physics: 'physics' is not a group of any hub user",
        ),
        ({"lab_shm_size": "1G"}, "lab_shm_size: set, but used only for GPU labs"),
        ({"lab_gpus": {"gpu": 1}, "lab_shm_size": "lots"}, "lab_shm_size: 'lots' is not a size"),
        ({"lab_pids_limit": 10}, "lab_pids_limit: Input should be greater than or equal to 128"),
        ({"lab_pids_limit": "many"}, "lab_pids_limit: should be a whole number (got 'many')"),
    ],
)
def test_bad_limits_and_gpus_are_refused_naming_the_setting(data, message):
    with pytest.raises(SettingsError) as refused:
        settings(**data)
    assert message in str(refused.value)


# --- What a user's groups give a lab -----------------------------------------------------------


def hub_limits(**data) -> dict:
    return stack.hub_settings(settings(**data))["limits"]


def test_a_user_in_several_groups_gets_the_largest_of_each(spawn):
    limits = hub_limits(lab_limits=LIMITS, lab_gpus={"gpu": 1, "leem": ["0"]})
    # leem: 8G, 1 CPU (default), 2G and 0.5 guaranteed; gpu: 16G, 4 CPUs, 512M and 0.25.
    assert spawn.lab_resources(["users", "leem", "gpu"], limits) == {
        "mem_limit": 16 * GIB,
        "cpu_limit": 4.0,
        "mem_guarantee": 2 * GIB,
        "cpu_guarantee": 0.5,
        # One GPU named by the group beats one of the lab's own: what the group paid for.
        "gpus": ["0"],
    }
    assert spawn.lab_resources(["users"], limits) == {
        "mem_limit": 2 * GIB,
        "cpu_limit": 1.0,
        "mem_guarantee": 512 * MIB,
        "cpu_guarantee": 0.25,
        "gpus": None,
    }


def test_no_limit_is_the_largest_and_no_setting_no_limit(spawn):
    limits = hub_limits(lab_limits={"leem": {"mem_limit": "8G"}, "gpu": {"cpu_limit": 2}})
    assert spawn.lab_resources(["leem", "gpu"], limits) == {
        "mem_limit": None,
        "cpu_limit": None,
        "mem_guarantee": None,
        "cpu_guarantee": None,
        "gpus": None,
    }
    assert spawn.lab_resources(["users"], hub_limits())["mem_limit"] is None
    assert spawn.lab_resources(["gpu"], hub_limits(lab_gpus={"gpu": "all", "leem": 3}))["gpus"] == (
        "all"
    )
    assert spawn.lab_resources(["gpu", "leem"], hub_limits(lab_gpus={"gpu": "all", "leem": 3}))[
        "gpus"
    ] == ("all")


def test_the_container_gets_the_limits_guarantees_and_gpus_by_id(spawn):
    resources = {
        "mem_limit": 8 * GIB,
        "cpu_limit": 2.5,
        "mem_guarantee": 2 * GIB,
        "cpu_guarantee": 0.5,
        "gpus": 1,
    }
    config = spawn.lab_host_config(resources, ["GPU-4b2f"], GIB)
    assert config == {
        "mem_limit": 8 * GIB,
        # No swap beyond the limit: a lab cannot use as much again on swap.
        "memswap_limit": 8 * GIB,
        "nano_cpus": 2_500_000_000,
        "mem_reservation": 2 * GIB,
        "cpu_shares": 512,
        "device_requests": [
            {"driver": "nvidia", "device_ids": ["GPU-4b2f"], "capabilities": [["gpu"]]}
        ],
        "shm_size": GIB,
    }
    # docker-py takes it as it is: the Engine API's HostConfig.
    from docker.api.client import APIClient

    host = APIClient(version="1.44").create_host_config(**config)
    assert host["Memory"] == 8 * GIB and host["NanoCpus"] == 2_500_000_000
    assert host["MemoryReservation"] == 2 * GIB and host["ShmSize"] == GIB
    assert host["DeviceRequests"] == [
        {
            "Driver": "nvidia",
            "Count": 0,
            "DeviceIDs": ["GPU-4b2f"],
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]
    # A lab without GPUs keeps Docker's /dev/shm.
    assert "shm_size" not in spawn.lab_host_config(resources, [], GIB)
    unlimited = dict.fromkeys(("mem_limit", "cpu_limit", "mem_guarantee", "cpu_guarantee"))
    assert spawn.lab_host_config(unlimited, [], None) == {}


def test_swarm_services_carry_reservations_limits_and_gpus_as_generic_resources(spawn):
    resources = {
        "mem_limit": 8 * GIB,
        "cpu_limit": 2,
        "mem_guarantee": 2 * GIB,
        "cpu_guarantee": 0.5,
        "gpus": 2,
    }
    spec = spawn.service_resources(resources)
    assert spec == {
        "cpu_limit": 2_000_000_000,
        "mem_limit": 8 * GIB,
        "cpu_reservation": 500_000_000,
        "mem_reservation": 2 * GIB,
        "generic_resources": {"NVIDIA-GPU": 2},
    }
    import docker.types

    built = docker.types.Resources(**spec)
    assert built["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": 2}}
    ]
    assert built["Limits"] == {"NanoCPUs": 2_000_000_000, "MemoryBytes": 8 * GIB}
    assert spawn.GPU_RESOURCE == gpus.GPU_RESOURCE
    with pytest.raises(spawn.SpawnRefused, match="give the group a number of GPUs"):
        spawn.service_resources({**resources, "gpus": "all"})


# --- GPUs handed out by device id --------------------------------------------------------------


def server_devices(spawn, name: str) -> list[dict]:
    return spawn.gpu_devices(Gpus().process(recorded(name))["gpus"])


def lab(state: str = "running", **labels) -> dict:
    return {"State": state, "Labels": {"org.labhub.lab": "someone", **labels}}


def test_two_labs_asking_for_one_gpu_get_different_ones_then_none_is_free(spawn):
    devices = server_devices(spawn, "nvidia-smi-L-a100x4.txt")
    first, own = spawn.gpu_grant(1, devices, set())
    assert own and first == ["GPU-4b2f3e1a-8c7d-2e6f-9a0b-1c2d3e4f5a6b"]
    labels = spawn.lab_labels("alice", {"mem_guarantee": None, "cpu_guarantee": None}, first)
    held = spawn.held_gpus([{"State": "running", "Labels": labels}])
    second, _ = spawn.gpu_grant(1, devices, held)
    assert second == ["GPU-9e8d7c6b-5a49-3827-1605-f4e3d2c1b0a9"]
    two, _ = spawn.gpu_grant(2, devices, held | set(second))
    assert two == [d["id"] for d in devices[2:]]
    with pytest.raises(spawn.SpawnRefused) as refused:
        spawn.gpu_grant(1, devices, {d["id"] for d in devices})
    assert "your lab needs 1 GPU of its own and none is free" in str(refused.value)
    with pytest.raises(spawn.SpawnRefused, match="only 1 of 4 are free"):
        spawn.gpu_grant(2, devices, {d["id"] for d in devices[1:]})
    # A stopped lab's container holds nothing.
    stopped = lab("exited", **{"org.labhub.gpus": devices[0]["id"]})
    assert spawn.held_gpus([stopped]) == set()


def test_all_and_listed_gpus_are_shared_and_checked(spawn):
    devices = server_devices(spawn, "nvidia-smi-L-a100x4.txt")
    everything = {d["id"] for d in devices}
    assert spawn.gpu_grant("all", devices, everything) == ([d["id"] for d in devices], False)
    assert spawn.gpu_grant(["1", devices[3]["id"]], devices, everything) == (
        [devices[1]["id"], devices[3]["id"]],
        False,
    )
    with pytest.raises(spawn.SpawnRefused, match="GPU 7 is not one of this server's"):
        spawn.gpu_grant(["7"], devices, set())
    with pytest.raises(spawn.SpawnRefused, match="this server has no GPU"):
        spawn.gpu_grant(1, [], set())


def test_mig_instances_are_handed_out_instead_of_their_gpu(spawn):
    devices = server_devices(spawn, "nvidia-smi-L-h100-mig.txt")
    assert [(d["index"], d["name"]) for d in devices] == [
        ("0:0", "NVIDIA H100 80GB HBM3 3g.40gb"),
        ("0:1", "NVIDIA H100 80GB HBM3 2g.20gb"),
        ("0:2", "NVIDIA H100 80GB HBM3 1g.10gb"),
        ("1", "NVIDIA H100 80GB HBM3"),
    ]
    assert spawn.gpu_grant(1, devices, set())[0] == ["MIG-1a2b3c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d"]


def test_a_spawn_past_what_the_server_can_guarantee_is_refused(spawn):
    info = {"MemTotal": 16 * GIB, "NCPU": 4}
    running = [
        lab(**{"org.labhub.mem-guarantee": str(6 * GIB), "org.labhub.cpu-guarantee": "1.5"}),
        lab(**{"org.labhub.mem-guarantee": str(6 * GIB), "org.labhub.cpu-guarantee": "2"}),
        # Stopped labs guarantee nothing any more.
        lab("exited", **{"org.labhub.mem-guarantee": str(16 * GIB)}),
    ]
    wanted = {"mem_guarantee": 4 * GIB, "cpu_guarantee": 0.5}
    assert spawn.guarantee_problem(wanted, running, info) is None
    problem = spawn.guarantee_problem({**wanted, "mem_guarantee": 5 * GIB}, running, info)
    assert problem.startswith(
        "your lab is guaranteed 5G of memory, and this server has 4G of its 16G left"
    )
    problem = spawn.guarantee_problem({**wanted, "cpu_guarantee": 1}, running, info)
    assert "guaranteed 1 CPU, and this server has 0.5 CPUs of its 4 CPUs left" in problem
    unguaranteed = {"mem_guarantee": None, "cpu_guarantee": None}
    assert spawn.guarantee_problem(unguaranteed, running * 5, info) is None


# --- Told why ----------------------------------------------------------------------------------


def test_a_lab_killed_for_memory_is_told_with_its_limit(spawn):
    stopped = spawn.oom_notice(state("oom-main-process-exited"), 512 * MIB)
    assert stopped.startswith(
        "Your lab was stopped because it used more than its memory limit of 512M."
    )
    kernel = spawn.oom_notice(state("oom-kernel-lab-running"), 1536 * MIB)
    assert kernel.startswith(
        "A process in your lab was killed because the lab used more than its memory limit "
        "of 1.5G (most often a notebook's kernel"
    )
    assert spawn.oom_notice(state("stopped-by-hub"), 512 * MIB) is None
    # Killed, but not by the kernel for memory (docker kill, a stop that timed out).
    assert spawn.oom_notice(state("killed-not-for-memory"), 512 * MIB) is None


def test_the_spawn_form_shows_the_limits_and_gpus_beside_the_images(spawn, tmp_path):
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps({"alice": {"groups": ["users", "leem", "gpu"]}}))
    limits = hub_limits(lab_limits=LIMITS, lab_gpus={"gpu": 1}, lab_shm_size="1G")
    limits["server_gpus"] = Gpus().process(recorded("nvidia-smi-L-a100x4.txt"))["gpus"]
    lab_limits = spawn.LabLimits(accounts, limits)

    class Images:
        default = "127.0.0.1:5000/lab:1.0"

        async def current(self, spawner):
            return [{"ref": self.default, "name": "lab 1.0", "title": "", "description": ""}]

    class Spawner:
        class user:
            name = "alice"

        def lab_containers(self):
            return [lab(**{"org.labhub.gpus": limits["server_gpus"][0]["uuid"]})]

    form = asyncio.run(spawn.image_form(Images(), lab_limits.summary)(Spawner()))
    assert 'name="image"' in form
    items = form.split('<fieldset class="labhub-limits">', 1)[1]
    assert [line.split("</li>")[0] for line in items.split('"labhub-limit">')[1:]] == [
        "Memory: at most 16G, 2G guaranteed",
        "CPU: at most 4 CPUs, 0.5 CPUs guaranteed",
        "GPUs: 1 of the lab&#x27;s own",
        "GPUs free now: 3 of 4",
    ]
    # A group change in the accounts file applies at the next form, with no restart.
    accounts.write_text(json.dumps({"alice": {"groups": ["users"]}}))
    assert lab_limits.summary(Spawner()) == [
        "Memory: at most 2G, 512M guaranteed",
        "CPU: at most 1 CPU, 0.25 CPUs guaranteed",
    ]


# --- The GPU facts, on recorded output ---------------------------------------------------------


def test_nvidia_smi_lists_gpus_and_mig_instances():
    found = Gpus().process(recorded("nvidia-smi-L-a100x4.txt"))
    assert found["problem"] == ""
    assert [(g["index"], g["name"], g["uuid"][:12]) for g in found["gpus"]] == [
        (0, "NVIDIA A100-SXM4-80GB", "GPU-4b2f3e1a"),
        (1, "NVIDIA A100-SXM4-80GB", "GPU-9e8d7c6b"),
        (2, "NVIDIA A100-SXM4-80GB", "GPU-0f1e2d3c"),
        (3, "NVIDIA A100-SXM4-80GB", "GPU-77a1b2c3"),
    ]
    mig = Gpus().process(recorded("nvidia-smi-L-h100-mig.txt"))["gpus"]
    assert [m["name"] for m in mig[0]["mig"]] == ["3g.40gb", "2g.20gb", "1g.10gb"]
    assert mig[1]["mig"] == []
    single = Gpus().process(recorded("nvidia-smi-L-rtx4090.txt"))["gpus"]
    assert single[0]["name"] == "NVIDIA GeForce RTX 4090"
    assert Gpus().process(recorded("nvidia-smi-L-no-devices.txt")) == {"gpus": [], "problem": ""}
    failed = Gpus().process(recorded("nvidia-smi-L-driver-failed.txt"))
    assert (
        failed["gpus"] == [] and "couldn't communicate with the NVIDIA driver" in failed["problem"]
    )


def test_the_toolkit_version_from_nvidia_ctk_or_its_older_cli():
    assert ContainerToolkit().process(recorded("nvidia-ctk-version-1.17.8.txt")) == "1.17.8"
    assert ContainerToolkit().process(recorded("nvidia-ctk-version-1.19.0-rc.1.txt")) == "1.19.0"
    assert (
        ContainerToolkit().process(recorded("nvidia-container-cli-version-1.13.5.txt")) == "1.13.5"
    )
    assert ContainerToolkit().process([]) is None


# --- A swarm's GPU nodes, a single server's GPUs at deploy time --------------------------------


def test_a_gpu_node_advertises_its_gpus_through_nvidias_runtime():
    found = Gpus().process(recorded("nvidia-smi-L-h100-mig.txt"))["gpus"]
    assert gpus.node_daemon_settings(found) == {
        "node-generic-resources": [
            "NVIDIA-GPU=GPU-c3d4e5f6-a7b8-4c9d-0e1f-2a3b4c5d6e7f",
            "NVIDIA-GPU=MIG-1a2b3c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d",
            "NVIDIA-GPU=MIG-6e7f8a9b-0c1d-5e2f-a3b4-c5d6e7f8a9b0",
            "NVIDIA-GPU=MIG-b1c2d3e4-f5a6-5b7c-8d9e-0f1a2b3c4d5e",
        ],
        "default-runtime": "nvidia",
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
    }
    # What the running engine reports back, in daemon.json's words (a restart not yet done).
    running = running_settings(
        EngineInfo().process(
            [
                json.dumps(
                    {
                        "DefaultRuntime": "runc",
                        "GenericResources": [
                            {"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-c3d4"}}
                        ],
                    }
                )
            ]
        )
    )
    assert running == {
        "default-runtime": "runc",
        "node-generic-resources": ["NVIDIA-GPU=GPU-c3d4"],
    }


def test_a_gpu_node_with_a_toolkit_before_1_19_is_refused():
    found = Gpus().process(recorded("nvidia-smi-L-a100x4.txt"))["gpus"]
    old = gpus.node_toolkit_problem("gpu1.lab", found, "1.17.8")
    assert old.startswith("gpu1.lab: NVIDIA container toolkit 1.17.8 exposes every GPU")
    assert "nvidia-container-toolkit#1599" in old and "1.19.0 or newer" in old
    assert "no NVIDIA container toolkit" in gpus.node_toolkit_problem("gpu1.lab", found, None)
    assert gpus.node_toolkit_problem("gpu1.lab", found, "1.19.0") is None
    assert gpus.node_toolkit_problem("cpu1.lab", [], None) is None


def test_a_single_server_without_the_gpus_lab_gpus_names_is_refused():
    found = Gpus().process(recorded("nvidia-smi-L-h100-mig.txt"))
    assert gpus.server_gpu_problems("hub", {"gpu": 2, "leem": ("0:1", "1")}, found, "1.17.8") == []
    assert gpus.server_gpu_problems("hub", {"leem": ("0", "3")}, found, "1.17.8") == [
        "lab_gpus.leem: 0, 3 not among hub's GPUs (nvidia-smi -L: 0:0, 0:1, 0:2, 1, "
        "GPU-c3d4e5f6-a7b8-4c9d-0e1f-2a3b4c5d6e7f, MIG-1a2b3c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d, "
        "MIG-6e7f8a9b-0c1d-5e2f-a3b4-c5d6e7f8a9b0, MIG-b1c2d3e4-f5a6-5b7c-8d9e-0f1a2b3c4d5e)"
    ]
    assert gpus.server_gpu_problems("hub", {"gpu": 5}, found, "1.17.8") == [
        "lab_gpus.gpu: 5 GPUs, and hub has 4: no lab of the group could start"
    ]
    none = Gpus().process(recorded("nvidia-smi-L-no-devices.txt"))
    assert gpus.server_gpu_problems("hub", {"gpu": 1}, none, None) == [
        "lab_gpus: set, but hub has no GPU (nvidia-smi -L lists none)"
    ]
    assert (
        "install nvidia-container-toolkit"
        in gpus.server_gpu_problems("hub", {"gpu": 1}, found, None)[0]
    )
    assert gpus.server_gpu_problems("hub", {}, none, None) == []


def test_a_swarm_is_asked_for_a_number_of_gpus_only():
    assert gpus.swarm_gpu_problems({"gpu": 2}) == []
    assert gpus.swarm_gpu_problems({"gpu": "all", "leem": ("0",)}) == [
        "lab_gpus.gpu: 'all': on a swarm (with lab_nodes) a group's labs get a number of GPUs, "
        "which the swarm picks on a node that has them free; give a number",
        "lab_gpus.leem: ('0',): on a swarm (with lab_nodes) a group's labs get a number of GPUs, "
        "which the swarm picks on a node that has them free; give a number",
    ]


def test_limits_no_lab_of_a_group_could_ever_get_are_refused():
    given = settings(
        lab_limits={
            "*": {"cpu_limit": 2},
            "leem": {"cpu_limit": 8, "mem_guarantee": "64G"},
            "gpu": {"cpu_guarantee": 6, "cpu_limit": 6},
        }
    ).group_limits
    assert limits.server_limit_problems("hub", given, 4, 32 * GIB) == [
        "lab_limits.leem.cpu_limit: 8 CPUs, and hub has 4 CPUs: Docker refuses a container "
        "more CPUs than the server has",
        "lab_limits.leem.mem_guarantee: 64G, more than all hub has (32G): no lab of the group "
        "could start",
        "lab_limits.gpu.cpu_limit: 6 CPUs, and hub has 4 CPUs: Docker refuses a container "
        "more CPUs than the server has",
        "lab_limits.gpu.cpu_guarantee: 6 CPUs, more than all hub has (4 CPUs): no lab of the "
        "group could start",
    ]
    assert limits.server_limit_problems("hub", given, 8, 64 * GIB) == []
    assert limits.server_limit_problems("hub", given, None, None) == []


# What files/hub/labhub_spawn.py also holds: the shares a lab starting now can mount.


def test_a_share_counts_as_mounted_only_with_more_than_its_automount(spawn, tmp_path):
    mountinfo = (
        "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n"
        "41 30 0:38 / /run/labhub/host/srv/data rw,relatime master:20 - autofs systemd-1 rw,fd=5\n"
        "42 41 0:40 / /run/labhub/host/srv/data rw master:21 - cifs //files/data rw\n"
        "43 30 0:39 / /run/labhub/host/srv/scratch rw,relatime master:22 - autofs systemd-1 rw\n"
    )
    assert spawn.mounted(mountinfo, "/run/labhub/host/srv/data")
    assert not spawn.mounted(mountinfo, "/run/labhub/host/srv/scratch")
    assert not spawn.mounted(mountinfo, "/run/labhub/host/srv")
    # This machine's own mounts: /proc is mounted, a plain folder is not.
    probe = spawn.ShareProbe()
    shares = [
        {"name": "proc", "mountpoint": "/proc", "seen_at": "/proc"},
        {"name": "plain", "mountpoint": "/p", "seen_at": str(tmp_path)},
        {"name": "gone", "mountpoint": "/g", "seen_at": str(tmp_path / "gone")},
    ]
    assert [share["name"] for share in probe.missing(shares, 3)] == ["plain", "gone"]
    volumes = {"/p": {"bind": "/home/jovyan/plain", "mode": "ro"}}
    assert spawn.missing_shares_notice([shares[1]], volumes).startswith(
        "Your lab started without the share plain (/home/jovyan/plain): nothing could be mounted"
    )
