"""
What the harness needs to know of this machine and its Docker engine, found without assuming the
engine's defaults: the engine may be Docker's own or the distribution's, started by systemd or by
hand, with a ``bip`` or ``default-address-pools`` of its own (a 10.x or 192.168.x bridge), a
second bridge, and containers of its owner's.

Pure functions of what the engine and the kernel answer (``docker network inspect``, ``docker
inspect``, ``ip -j addr``), so that ``tests/test_labhost_probes.py`` runs them on recorded
answers; the thin readers below them ask the real ones.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections.abc import Callable

# The default bridge's interface when its network record names none.
DEFAULT_BRIDGE_INTERFACE = "docker0"


class ProbeError(RuntimeError):
    """Something the harness looked for and did not find, said in one line."""


def bridge_gateway(network: dict, interface_address: Callable[[str], str | None]) -> str:
    """
    This machine's IPv4 address on a bridge network (``docker network inspect`` of it): the
    gateway of its IPv4 subnet as the record lists it; else the bridge interface's own address
    (some engines leave the gateway out of the record while ``docker0`` has it); else an error
    naming what was looked for. IPv6 subnets of a dual-stack bridge are passed over.
    """
    name = network.get("Name", "?")
    configs = (network.get("IPAM") or {}).get("Config") or []
    ipv4 = [c for c in configs if _is_ipv4_network(c.get("Subnet", ""))]
    for config in ipv4:
        if config.get("Gateway"):
            return str(ipaddress.ip_address(config["Gateway"].split("/")[0]))
    interface = (network.get("Options") or {}).get(
        "com.docker.network.bridge.name", DEFAULT_BRIDGE_INTERFACE
    )
    address = interface_address(interface)
    if address:
        return address
    subnets = ", ".join(c.get("Subnet", "?") for c in configs) or "none"
    raise ProbeError(
        f"cannot find this machine's address on Docker's {name!r} network: its record lists no "
        f"IPv4 gateway (subnets: {subnets}) and the interface {interface!r} has no IPv4 address"
    )


def interface_ipv4(addresses: list[dict]) -> str | None:
    """The first IPv4 address of an interface, from ``ip -j -4 addr show dev NAME``."""
    for link in addresses:
        for info in link.get("addr_info") or []:
            if info.get("family") == "inet" and info.get("local"):
                return info["local"]
    return None


def container_address(attrs: dict, network: str = "bridge") -> str:
    """
    A container's IPv4 address on a network, from ``docker inspect``: the network's own entry
    (engines from API 1.44 leave the legacy top-level ``IPAddress`` empty), else that legacy one.
    """
    settings = attrs.get("NetworkSettings") or {}
    entry = (settings.get("Networks") or {}).get(network) or {}
    address = entry.get("IPAddress") or settings.get("IPAddress")
    if not address:
        raise ProbeError(
            f"container {attrs.get('Name', '?').lstrip('/')} has no address on the "
            f"{network!r} network"
        )
    return address


def engine_start_problem(*, root: bool, systemd: bool) -> str | None:
    """Why the harness cannot start Docker's engine itself, when none answers (None: it can)."""
    if root:
        return None
    how = "sudo systemctl start docker" if systemd else "sudo dockerd"
    return (
        f"Docker's engine is not running and starting it needs root: start it ({how}), "
        "or run ./dev as root"
    )


def capability_refusal(error: str) -> str | None:
    """
    The one-line reason when the engine refused to start a lab server's container because of
    the capabilities and security options it needs (``--cap-add ALL``, seccomp and AppArmor
    unconfined): rootless and user-namespaced engines, or a policy plugin, refuse them.
    """
    lowered = error.lower()
    if any(
        word in lowered
        for word in ("unable to apply caps", "operation not permitted", "authorization denied")
    ):
        return (
            "this Docker engine refused a lab server's container, which needs --cap-add ALL, "
            "seccomp=unconfined and apparmor=unconfined (a rootless or user-namespaced engine, "
            f"or an authorization plugin, refuses them): {error.strip().splitlines()[-1]}"
        )
    return None


# --- The real answers ---


def read_interface_ipv4(interface: str) -> str | None:
    """The interface's IPv4 address as the kernel has it (None: no such interface)."""
    if shutil.which("ip") is None:
        return None
    result = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "dev", interface],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return interface_ipv4(json.loads(result.stdout))


def systemd_running() -> bool:
    """Whether this machine runs systemd (which then starts Docker's engine, not the harness)."""
    if shutil.which("systemctl") is None:
        return False
    state = subprocess.run(
        ["systemctl", "is-system-running"], capture_output=True, text=True
    ).stdout.strip()
    return state in ("running", "degraded", "starting")


def _is_ipv4_network(subnet: str) -> bool:
    try:
        return ipaddress.ip_network(subnet, strict=False).version == 4
    except ValueError:
        return False
