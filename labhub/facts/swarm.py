"""
Facts about the Docker Swarm the lab's servers are in: this engine's membership, the nodes a
manager knows and the labs it runs, an overlay network and the join token. Paired with
``labhub.operations.swarm``.
"""

from __future__ import annotations

import json
import shlex
from typing import TypedDict

from pyinfra.api import FactBase, QuoteString, StringCommand

from labhub.facts import read
from labhub.facts.engine import EngineInfo


class SwarmDict(TypedDict):
    state: str
    node_id: str
    manager: bool
    address: str
    managers: list[dict]


def swarm_state(info: dict) -> SwarmDict:
    """
    An engine's place in a swarm, from its ``docker info`` (``labhub.facts.engine.EngineInfo``):
    ``state`` is ``inactive`` (in none), ``pending``, ``active``, ``error`` or ``locked``;
    ``manager`` whether it manages the swarm; ``managers`` the managers it knows
    (``{"id", "address"}``). An engine that does not answer reads as ``inactive``.

    .. code:: python

        {
            "state": "active",
            "node_id": "q0y3vlz4c8o8gyxh2vnfe6x8d",
            "manager": False,
            "address": "192.0.2.11",
            "managers": [{"id": "k3qdcbkefybsp6t5x3ymu2hle", "address": "192.0.2.10:2377"}],
        }
    """
    swarm = info.get("Swarm")
    if not isinstance(swarm, dict):
        swarm = {}
    return {
        "state": swarm.get("LocalNodeState") or "inactive",
        "node_id": swarm.get("NodeID") or "",
        "manager": bool(swarm.get("ControlAvailable")),
        "address": swarm.get("NodeAddr") or "",
        "managers": [
            {"id": manager.get("NodeID", ""), "address": manager.get("Addr", "")}
            for manager in swarm.get("RemoteManagers") or []
        ],
    }


def state_of(host) -> SwarmDict:
    """The host's engine's place in a swarm (``swarm_state``), read with the rest of its
    ``docker info`` (which the engine's own operations read too), again once the host changed."""
    return swarm_state(read(host, EngineInfo))


class NodeDict(TypedDict):
    id: str
    hostname: str
    address: str
    role: str
    availability: str
    state: str
    labels: dict[str, str]


class SwarmNodes(FactBase[list[NodeDict]]):
    """
    The nodes of the swarm this engine manages (empty when it manages none), from
    ``docker node inspect``.

    .. code:: python

        [
            {
                "id": "q0y3vlz4c8o8gyxh2vnfe6x8d",
                "hostname": "gpu1",
                "address": "192.0.2.11",
                "role": "worker",
                "availability": "active",
                "state": "ready",
                "labels": {"gpu": "a100"},
            },
        ]
    """

    default = list
    requires_command = "docker"

    def command(self) -> str:
        return (
            "if [ \"$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)\" = true ]; "
            "then docker node ls -q | xargs -r docker node inspect; fi"
        )

    def process(self, output) -> list[NodeDict]:
        try:
            nodes = json.loads("\n".join(output))
        except ValueError:
            return []
        return [
            {
                "id": node["ID"],
                "hostname": node.get("Description", {}).get("Hostname", ""),
                "address": node.get("Status", {}).get("Addr", ""),
                "role": node.get("Spec", {}).get("Role", ""),
                "availability": node.get("Spec", {}).get("Availability", ""),
                "state": node.get("Status", {}).get("State", ""),
                "labels": node.get("Spec", {}).get("Labels") or {},
            }
            for node in nodes
            if isinstance(node, dict) and "ID" in node
        ]


class NetworkDict(TypedDict):
    driver: str
    scope: str
    attachable: bool
    options: dict[str, str]


class DockerNetwork(FactBase[NetworkDict | None]):
    """
    A Docker network by name (None: there is none).

    .. code:: python

        {"driver": "overlay", "scope": "swarm", "attachable": True,
         "options": {"encrypted": ""}}
    """

    requires_command = "docker"

    def command(self, network: str) -> StringCommand:
        return StringCommand(
            "docker",
            "network",
            "inspect",
            "--format",
            QuoteString("{{json .}}"),
            QuoteString(network),
            "2>/dev/null",
            "||",
            "true",
        )

    def process(self, output) -> NetworkDict | None:
        try:
            network = json.loads("\n".join(output))
        except ValueError:
            return None
        if not isinstance(network, dict):
            return None
        return {
            "driver": network.get("Driver", ""),
            "scope": network.get("Scope", ""),
            "attachable": bool(network.get("Attachable")),
            "options": network.get("Options") or {},
        }


class SwarmJoinToken(FactBase[str]):
    """
    The token a worker joins this engine's swarm with (empty: it manages none). A secret: read
    it with ``labhub.pyinfra_api.quiet_fact``, never ``host.get_fact``, which prints a fact's
    output at ``-vvv``.

    .. code:: python

        "SWMTKN-1-..."
    """

    default = str
    requires_command = "docker"

    def command(self) -> str:
        return "docker swarm join-token -q worker 2>/dev/null || true"

    def process(self, output) -> str:
        return "\n".join(output).strip()


# The label the hub's spawner puts on each lab's service and container (files/hub/
# labhub_service.py): the hub user whose lab it is.
USER_LABEL = "org.labhub.hub-user"


class LabDict(TypedDict):
    user: str
    service: str
    node_id: str
    node: str
    state: str
    since: str
    image: str


def swarm_labs_command() -> str:
    """Shell: on a swarm's manager, its labs' services (``id name``), nodes (``id hostname``)
    and the tasks the swarm wants running (``docker inspect`` JSON, one a line), under
    ``#services``, ``#nodes`` and ``#tasks``; nothing elsewhere (``swarm_labs`` reads it)."""
    label = shlex.quote(f"label={USER_LABEL}")
    return (
        "if [ \"$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)\" = true ]; "
        f"then services=$(docker service ls -q --filter {label}); "
        'echo "#services"; [ -z "$services" ] || '
        "docker service inspect --format '{{.ID}} {{.Spec.Name}}' $services; "
        "echo '#nodes'; docker node ls --format '{{.ID}} {{.Hostname}}'; "
        'echo "#tasks"; [ -z "$services" ] || '
        "docker service ps -q --no-trunc --filter desired-state=running $services | "
        "xargs -r docker inspect --format '{{json .}}'; fi"
    )


def swarm_labs(output) -> list[LabDict]:
    """What ``swarm_labs_command`` printed, as the labs the swarm runs or is starting: the user,
    the service, the node (its id and host name; empty while none is given), the task's state
    and since when, the image."""
    services, nodes, section = {}, {}, None
    tasks = []
    for line in output:
        if line in ("#services", "#nodes", "#tasks"):
            section = line
        elif section == "#tasks":
            try:
                tasks.append(json.loads(line))
            except ValueError:
                continue
        elif section is not None and " " in line:
            key, _, value = line.partition(" ")
            (services if section == "#services" else nodes)[key] = value
    labs = []
    for task in tasks:
        spec = (task.get("Spec") or {}).get("ContainerSpec") or {}
        user = (spec.get("Labels") or {}).get(USER_LABEL)
        if not user or task.get("ServiceID") not in services:
            continue
        status = task.get("Status") or {}
        labs.append(
            {
                "user": user,
                "service": services[task["ServiceID"]],
                "node_id": task.get("NodeID") or "",
                "node": nodes.get(task.get("NodeID") or "", ""),
                "state": status.get("State") or "",
                "since": status.get("Timestamp") or "",
                "image": spec.get("Image", "").split("@", 1)[0],
            }
        )
    return sorted(labs, key=lambda lab: (lab["user"], lab["service"]))


class SwarmLabs(FactBase[list[LabDict]]):
    """
    The labs of the swarm this engine manages (empty when it manages none): each lab's task the
    swarm wants running, with its hub user, service and node.

    .. code:: python

        [
            {
                "user": "bob",
                "service": "jupyter-bob",
                "node_id": "q0y3vlz4c8o8gyxh2vnfe6x8d",
                "node": "gpu1",
                "state": "running",
                "since": "2026-12-02T15:11:25.09221767Z",
                "image": "hub.example.org:5443/lab:1.0",
            },
        ]
    """

    default = list
    requires_command = "docker"

    def command(self) -> str:
        return swarm_labs_command()

    def process(self, output) -> list[LabDict]:
        return swarm_labs(output)
