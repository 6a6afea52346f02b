"""
The pure pieces of running labs as Docker Swarm services (labhub_service.py's spawner), with lab
nodes: names swarm accepts, the lab's mounts and user as a service's container spec takes them,
and what a task's state means for a spawn, in words a person can act on. Nothing here talks to
Docker or imports DockerSpawner, so that each is tested on recorded swarm JSON.
"""

from __future__ import annotations

import hashlib

# Swarm refuses longer service names ("name must be 63 characters or fewer"): a DNS label.
MAX_SERVICE_NAME = 63
# Swarm's own limit on a config's name.
MAX_CONFIG_NAME = 64
# Task states on the way to running (swarmkit's api.TaskState, lower case as the API says them).
STARTING = frozenset(
    {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
)
# A task the swarm will not run: no node may take it, or the node refused it before its
# container ran (an image it cannot pull, a mount source it lacks).
NO_SUITABLE_NODE = "no suitable node"


def service_name(name: str) -> str:
    """
    DockerSpawner's name for the lab (``jupyter-<escaped user name>``), as swarm accepts it: a
    longer one is cut and ends with a hash of the whole, so two long names stay two services.
    """
    if len(name) <= MAX_SERVICE_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{name[: MAX_SERVICE_NAME - len(digest) - 1].rstrip('-')}-{digest}"


def node_image(image: str, registry: str, node_registry: str) -> str:
    """A lab image of the hub server's registry (``registry/name:version``) as the lab nodes
    pull it, from the same registry at the address they reach it by; any other image as it is."""
    prefix = f"{registry}/"
    if registry and node_registry and image.startswith(prefix):
        return f"{node_registry}/{image[len(prefix) :]}"
    return image


def mounts(volume_binds: dict[str, dict]) -> list[dict]:
    """
    DockerSpawner's ``volume_binds`` (``{source: {"bind": target, "mode": "ro"|"rw"}}``) as the
    keyword arguments of ``docker.types.Mount``: a host path (absolute) a bind mount, a name a
    named volume (SwarmSpawner makes every one a bind, dockerspawner#536, which a name is not).
    """
    return [
        {
            "target": bind["bind"],
            "source": source,
            "type": "bind" if source.startswith("/") else "volume",
            "read_only": bind.get("mode") == "ro",
        }
        for source, bind in volume_binds.items()
    ]


def container_user(account: dict) -> dict:
    """
    The lab's account (labhub_spawn.pre_spawn_hook's ``lab_account``: uid, groups primary first)
    as ``docker.types.ContainerSpec`` keyword arguments: the user as ``uid:gid`` and the other
    groups by gid, the same the container of one server gets from ``user`` and ``group_add``.
    """
    (_, primary), *others = account["groups"]
    return {"user": f"{account['uid']}:{primary}", "groups": [str(gid) for _, gid in others]}


def config_name(kind: str, text: str) -> str:
    """The name of the swarm config holding one account file: by its content, so that a spawn
    with the same account and image finds it made, and a changed file is a new config."""
    name = f"labhub-{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"
    assert len(name) <= MAX_CONFIG_NAME
    return name


def current_task(tasks: list[dict]) -> dict | None:
    """The task that says how the lab is doing: the one the swarm still wants running, else the
    newest (a lab's service has one replica and never restarts, but a task that had to go
    stays listed beside its successor)."""
    if not tasks:
        return None
    wanted = [t for t in tasks if t.get("DesiredState") == "running"]
    return max(wanted or tasks, key=lambda t: t.get("CreatedAt", ""))


def task_address(task: dict, network: str) -> str | None:
    """
    The task's own address on the swarm network named ``network`` (None before it has one).
    The hub reaches a lab there rather than by its service's name: the engine's DNS answers a
    name with a TTL of 600 s, which the hub's resolver (aiodns) keeps, so a user's next lab, a
    new task with a new address under the same name, would be looked for at the old one.
    """
    for attachment in task.get("NetworksAttachments") or ():
        if (attachment.get("Network") or {}).get("Spec", {}).get("Name") == network:
            for address in attachment.get("Addresses") or ():
                return address.split("/", 1)[0]
    return None


def task_outcome(task: dict) -> str:
    """
    ``"running"``; ``"starting"`` (on its way); ``"refused"``: the swarm will not run it (no node
    meets its placement or has the resources it reserves, or the node rejected it before its
    container ran); ``"stopped"``: its container ran and stopped.
    """
    status = task.get("Status") or {}
    state = (status.get("State") or "").lower()
    if state == "running":
        return "running"
    if state == "rejected":
        return "refused"
    if state in STARTING:
        # A task no node can take stays pending and says why, retried for ever: refused now.
        return "refused" if (status.get("Err") or "").startswith(NO_SUITABLE_NODE) else "starting"
    return "stopped"


def exit_code(task: dict) -> int | None:
    """The exit code of a stopped task's container (None when it never ran)."""
    container = (task.get("Status") or {}).get("ContainerStatus") or {}
    return container.get("ExitCode") if container.get("ContainerID") else None


# A container's exit code when the kernel killed its main process (SIGKILL), as the kernel's OOM
# killer does when the container uses more than its memory limit.
KILLED = 137


def memory_killed(task: dict) -> int | None:
    """
    The memory limit (bytes) of a lab whose task failed because the kernel killed its main
    process (exit code 137) while it had a limit: killed for memory, the swarm's own word for it
    being only the exit code (a task has no OOMKilled; the node's container has, where the hub's
    engine can inspect it). None for any other task.
    """
    status = task.get("Status") or {}
    resources = (task.get("Spec") or {}).get("Resources") or {}
    limit = (resources.get("Limits") or {}).get("MemoryBytes")
    if (status.get("State") or "").lower() != "failed" or exit_code(task) != KILLED:
        return None
    return limit or None


def refusal_message(
    task: dict,
    image: str,
    placement: dict | None = None,
    node: str | None = None,
) -> str:
    """
    What a person reads on the spawn page when the swarm refuses a lab (``task_outcome`` is
    ``"refused"``): the lab's placement (``{"group", "constraints"}``, from lab_placement) that no
    node meets, named; the image a node could not pull; anything else a node said, with its name.
    """
    status = task.get("Status") or {}
    error = status.get("Err") or status.get("Message") or "refused"
    if error.startswith(NO_SUITABLE_NODE):
        if "constraints not satisfied" in error:
            if placement:
                where = " and ".join(placement["constraints"])
                return (
                    f"Labs of group {placement['group']} run only on a node where {where} "
                    f"(lab_placement), and no node of the swarm is one ({error}). Ask the "
                    "lab's admin to add such a node or change the group's placement."
                )
            return f"No node of the swarm meets your lab's placement ({error})."
        if "insufficient resources" in error:
            return (
                "No node of the swarm has the memory or CPUs free that your lab reserves "
                f"({error}). Try again when other labs have stopped, or ask the lab's admin."
            )
        return f"No node of the swarm can run your lab ({error})."
    on = f" on node {node}" if node else ""
    if "No such image" in error or "pull" in error.lower():
        return (
            f"The image {image} could not be pulled{on} ({error}). Pick another image, or ask "
            "the lab's admin to push it again."
        )
    return f"Your lab could not start{on}: {error}."
