"""
The lab's Docker Swarm: the hub server manages it, with an attachable overlay network whose
traffic is encrypted, and each lab node (the inventory group ``lab_nodes``) is a worker with the
labels of its ``node_labels``. A node no longer in the inventory leaves the swarm: the labs there
are stopped through the hub, then it is drained and removed; one added later joins, and nothing
else changes. A node in another swarm leaves it first.

    pyinfra inventory.py tasks/swarm.py
"""

from pyinfra import host, logger
from pyinfra.api.exceptions import OperationError

from labhub import cluster, stack
from labhub.facts.network import DEFAULT_ROUTE, RouteSource
from labhub.facts.swarm import state_of
from labhub.operations import packages, swarm
from labhub.settings import get_settings

settings = get_settings(host)
hub = cluster.hub_server(host)
address = cluster.advertise_address(
    host.name,
    settings.swarm_advertise_address,
    host.get_fact(RouteSource, destination=DEFAULT_ROUTE)["source"],
)
if address is None:
    raise OperationError(
        f"{host.name}: swarm_advertise_address: not set, and the server's inventory name is not "
        "an IP address and it has no default route: set the address the lab's other servers "
        "reach it at"
    )
if not cluster.is_node(host):
    # Refused before any change: the hub server leaves no swarm it is in on its own.
    current = state_of(host)
    if current["state"] != "inactive" and not current["manager"]:
        raise OperationError(
            f"{host.name}: the hub server is {current['state']} in a swarm it does not manage: "
            "it must be the lab swarm's manager; leave that swarm (docker swarm leave) and "
            "deploy again"
        )

# On every server of the lab, at one line: pyinfra runs the operations that follow this one on
# all of them in their order here, so that the hub server's manager exists before the nodes join
# (pyinfra orders the operations of different hosts only by what they share).
packages.installed(
    name="Install curl (the engine's API from the shell)",
    packages=["curl"],
    update=True,
    cache_time=24 * 3600,
)

if not cluster.is_node(host):
    swarm.manager(
        name=f"Manage the lab's swarm, advertised at {address}", advertise_address=address
    )
    if not settings.swarm_encrypted:
        logger.warning(
            f"{host.name}: swarm_encrypted is false: the labs' traffic between the lab's "
            f"servers crosses the network in clear on {cluster.SWARM_NETWORK}"
        )
    swarm.overlay_network(
        name=f"Overlay network {cluster.SWARM_NETWORK} (attachable"
        + (", encrypted)" if settings.swarm_encrypted else ", not encrypted)"),
        network=cluster.SWARM_NETWORK,
        encrypted=settings.swarm_encrypted,
    )
    swarm.nodes(
        name="The lab nodes in the swarm with their labels, other workers drained and removed",
        nodes={node.name: get_settings(node).node_labels for node in cluster.lab_nodes(host)},
        stack=stack.Stack.from_settings(settings),
    )
else:
    swarm.worker(
        name=f"Join the swarm of {hub.name} as a worker",
        hub=hub.name,
        advertise_address=address,
    )
