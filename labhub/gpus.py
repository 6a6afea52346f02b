"""
What a server's GPUs (``labhub.facts.gpus``) mean for its engine and its labs, as pure functions:

- on a single server, labs get GPUs by device id from the hub (files/hub/labhub_spawn.py), which
  needs the NVIDIA container toolkit (Docker's ``--gpus`` calls its hook);
- on a swarm, services have no device requests (moby#40133): a GPU node advertises each GPU as
  a generic resource (``node-generic-resources`` in its daemon.json, NVIDIA's runtime as the
  default so that every task runs through it), GPU labs ask for a number of them, and the
  runtime exposes the ones the swarm assigned, named in the environment variable the toolkit's
  ``swarm-resource`` setting names. The toolkit before 1.19 ignores that assignment and exposes
  every GPU to every task (nvidia-container-toolkit#1599): such a node is refused.
"""

from __future__ import annotations

# The generic resource kind GPU nodes advertise and GPU labs ask for (files/hub/labhub_spawn.py
# says the same: GPU_RESOURCE).
GPU_RESOURCE = "NVIDIA-GPU"
# The environment variable the swarm names a task's GPUs in, and that the toolkit reads them from
# (swarm-resource in /etc/nvidia-container-runtime/config.toml).
SWARM_RESOURCE_ENV = f"DOCKER_RESOURCE_{GPU_RESOURCE}"
TOOLKIT_CONFIG = "/etc/nvidia-container-runtime/config.toml"
# The first toolkit that exposes only the GPUs the swarm assigned a task.
SWARM_TOOLKIT = (1, 19, 0)


def devices(gpus: list[dict]) -> list[str]:
    """The UUIDs of what a lab can be given: each GPU, or each MIG instance of one split."""
    return [mig["uuid"] for gpu in gpus for mig in gpu["mig"]] + [
        gpu["uuid"] for gpu in gpus if not gpu["mig"]
    ]


def node_daemon_settings(gpus: list[dict]) -> dict:
    """The daemon.json keys of a swarm GPU node: its GPUs as generic resources, NVIDIA's runtime
    as the default (swarm tasks cannot name a runtime)."""
    return {
        # Sorted, as the engine reports them back (docker info), to compare.
        "node-generic-resources": sorted(f"{GPU_RESOURCE}={uuid}" for uuid in devices(gpus)),
        "default-runtime": "nvidia",
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
    }


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def node_toolkit_problem(host: str, gpus: list[dict], version: str | None) -> str | None:
    """Why a swarm node's GPUs cannot go to labs safely, or None (a node without GPUs: None)."""
    if not gpus:
        return None
    wanted = ".".join(map(str, SWARM_TOOLKIT))
    if version is None:
        return (
            f"{host}: has {len(gpus)} GPU(s) (nvidia-smi -L) but no NVIDIA container toolkit "
            f"(nvidia-ctk): install nvidia-container-toolkit {wanted} or newer"
        )
    if version_tuple(version) < SWARM_TOOLKIT:
        return (
            f"{host}: NVIDIA container toolkit {version} exposes every GPU of the node to every "
            f"swarm task, whatever GPUs the swarm assigned it (nvidia-container-toolkit#1599): "
            f"labs would share GPU 0; upgrade nvidia-container-toolkit to {wanted} or newer"
        )
    return None


def server_gpu_problems(host: str, lab_gpus: dict, found: dict, version: str | None) -> list[str]:
    """Why a single server cannot give labs the GPUs lab_gpus promises, before any change."""
    if not lab_gpus:
        return []
    if found["problem"]:
        return [f"lab_gpus: {host}'s nvidia-smi -L does not list its GPUs: {found['problem']}"]
    if not found["gpus"]:
        return [f"lab_gpus: set, but {host} has no GPU (nvidia-smi -L lists none)"]
    problems = []
    if version is None:
        problems.append(
            f"lab_gpus: {host} has no NVIDIA container toolkit (nvidia-ctk), which Docker hands "
            "GPUs to containers with: install nvidia-container-toolkit"
        )
    # As the hub names what it hands out: a GPU by index or UUID, a MIG instance as
    # "<GPU>:<instance>" or by its UUID.
    names = set(devices(found["gpus"]))
    for gpu in found["gpus"]:
        names |= {f"{gpu['index']}:{mig['index']}" for mig in gpu["mig"]} or {str(gpu["index"])}
    for group, request in lab_gpus.items():
        if isinstance(request, tuple):
            missing = [device for device in request if device not in names]
            if missing:
                problems.append(
                    f"lab_gpus.{group}: {', '.join(missing)} not among {host}'s GPUs "
                    f"(nvidia-smi -L: {', '.join(sorted(names))})"
                )
        elif isinstance(request, int) and request > len(devices(found["gpus"])):
            problems.append(
                f"lab_gpus.{group}: {request} GPUs, and {host} has "
                f"{len(devices(found['gpus']))}: no lab of the group could start"
            )
    return problems


def swarm_gpu_problems(lab_gpus: dict) -> list[str]:
    """lab_gpus a swarm cannot give: it hands out GPUs by number, on a node that has them free."""
    return [
        f"lab_gpus.{group}: {request!r}: on a swarm (with lab_nodes) a group's labs get a "
        "number of GPUs, which the swarm picks on a node that has them free; give a number"
        for group, request in lab_gpus.items()
        if not isinstance(request, int)
    ]
