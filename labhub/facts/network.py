"""
How a server reaches others: the address a name resolves to there, and the server's own address
its packets to it come from. With lab nodes: the address a server's engine advertises to the
swarm, and each node's address as the hub server sees it.
"""

from __future__ import annotations

import ipaddress

from pyinfra.api import FactBase

from labhub.commands import command_line

# A public address: the route toward it is the server's default route (``ip route get`` only
# looks the route up, no packet is sent).
DEFAULT_ROUTE = "1.1.1.1"


class RouteSource(FactBase[dict]):
    """
    How the host reaches ``destination`` (a name or an address; ``DEFAULT_ROUTE``: its default
    route): the address the name resolves to on the host (its DNS or ``/etc/hosts``), and the
    host's own address its packets to it come from (``ip route get``), which is what the
    destination sees. ``address`` is None when the name does not resolve, ``source`` None when
    there is no route.

    .. code:: python

        {"address": "192.0.2.10", "source": "192.0.2.21"}
    """

    requires_command = "ip"

    def command(self, destination: str) -> str:
        resolve = command_line("getent", "ahosts", destination)
        return (
            f"address=$({resolve} | awk 'NR == 1 {{ print $1 }}'); "
            'echo "address $address"; '
            '[ -z "$address" ] || ip -o route get "$address" 2>/dev/null || true'
        )

    def process(self, output) -> dict:
        address = source = None
        for line in output:
            words = line.split()
            if words[:1] == ["address"]:
                address = words[1] if len(words) > 1 else None
            elif "src" in words[:-1]:
                source = words[words.index("src") + 1]
        if address is not None:
            address = str(ipaddress.ip_address(address))
        return {"address": address, "source": source}
