"""
The servers of one lab, as the inventory names them: the hub server, and with it any number of
lab nodes (the inventory group ``lab_nodes``) that run labs in a Docker Swarm the hub server
manages. An inventory without ``lab_nodes`` is one server (or several independent ones), as
before nodes existed.

    lab_servers = [("hub.example.org", {...})]
    lab_nodes = [("gpu1.example.org", {"node_labels": {"gpu": "a100"}})]
"""

from __future__ import annotations

import ipaddress

from pyinfra.api import Host

from labhub.facts.swarm import state_of
from labhub.pyinfra_api import real_host

# The inventory group of the servers that run labs for the hub server.
LAB_NODES = "lab_nodes"


class ClusterError(ValueError):
    """An inventory whose servers do not make one lab."""


def is_node(host) -> bool:
    """Whether the host is a lab node (in the inventory group ``lab_nodes``)."""
    return LAB_NODES in real_host(host).groups


def lab_nodes(host) -> list[Host]:
    """The lab nodes of the host's inventory, in inventory order (empty: one server)."""
    return [other for other in host.state.inventory if LAB_NODES in other.groups]


def hub_server(host) -> Host:
    """
    The hub server of the lab the host belongs to: the host itself on an inventory without lab
    nodes; with nodes, the one server outside ``lab_nodes`` (more than one is refused: nodes
    cannot tell which hub they serve).
    """
    host = real_host(host)
    if not lab_nodes(host):
        return host
    hubs = [other for other in host.state.inventory if LAB_NODES not in other.groups]
    if len(hubs) != 1:
        names = ", ".join(other.name for other in hubs) or "none"
        raise ClusterError(
            f"an inventory with {LAB_NODES} has exactly one hub server (a host outside "
            f"{LAB_NODES}); it has {len(hubs)}: {names}"
        )
    return hubs[0]


def servers(host) -> list[Host]:
    """Every server of the host's lab: the hub server first, then the lab nodes."""
    return [hub_server(host), *lab_nodes(host)]


def address(host) -> str:
    """The name or address the lab's other servers reach a server at: its ``ssh_hostname``
    when the inventory gives one, otherwise its name in the inventory."""
    host = real_host(host)
    return str(host.data.get("ssh_hostname") or host.name)


# The attachable, encrypted overlay network of the lab's swarm.
SWARM_NETWORK = "labhub-swarm"


def advertise_address(name: str, setting: str | None, route_source: str | None) -> str | None:
    """
    The address a server's engine is reached at by the lab's other servers: its
    ``swarm_advertise_address``, else its inventory ``name`` when that is an IP address, else its
    source address on its default route (``route_source``; None: there is none).
    """
    if setting is not None:
        return setting
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return route_source or None


def in_swarm(host) -> bool:
    """
    Whether the host's engine is (or is to be) in the lab's swarm: every server of an inventory
    with lab nodes, and a hub server that still manages a swarm (whose nodes were all removed
    from the inventory: the deploy reconciles them). Read before any change.
    """
    return bool(lab_nodes(host)) or state_of(real_host(host))["manager"]
