"""
Facts about the registry the lab nodes pull from: the login's files on the hub server (which are
missing or stale, never their content) and the address a node reaches the hub server from.
Paired with ``labhub.operations.node_registry``.
"""

from __future__ import annotations

import ipaddress

from pyinfra.api import FactBase

from labhub.commands import command_line, script_command
from labhub.node_registry import LOGIN_SCRIPT


class RegistryLogin(FactBase[list]):
    """
    Which of the nodes' registry login files on the hub server are missing or stale
    (``files/registry-login.sh check``): ``password``, ``proxy-env``, ``docker-config``; empty
    when all are right. Only these words are read: the password never leaves its file.

    .. code:: python

        ["proxy-env", "docker-config"]
    """

    default = list

    def command(
        self,
        password: str,
        env: str,
        config: str,
        variable: str,
        user: str,
        image: str,
        before: str,
        after: str,
        project: str,
        service: str,
    ) -> str:
        return script_command(
            LOGIN_SCRIPT,
            "check",
            password,
            env,
            config,
            variable,
            user,
            image,
            before,
            after,
            project,
            service,
            interpreter="sh",
        )

    def process(self, output) -> list:
        return [line.strip() for line in output if line.strip()]


class RouteSource(FactBase[dict]):
    """
    How the host reaches ``destination`` (a name or an address): the address the name resolves
    to on the host (its DNS or ``/etc/hosts``), and the host's own address its packets to it come
    from (``ip route get``), which is what the destination sees. ``address`` is None when the
    name does not resolve, ``source`` None when there is no route.

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
