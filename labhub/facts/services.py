"""
Facts about systemd services, several read in one command. Paired with
``labhub.operations.services``.
"""

from __future__ import annotations

import shlex
from typing import TypedDict

from pyinfra.api import FactBase

from labhub.facts import read

# The services labhub keeps running (tasks/docker.py), read together by ``state_of``.
MANAGED = ("containerd", "docker")


class ServiceDict(TypedDict):
    running: bool
    enabled: bool


class ServiceStates(FactBase[dict[str, ServiceDict]]):
    """
    Whether each service runs and is enabled (a unit systemd does not know: neither).

    .. code:: python

        {"docker": {"running": True, "enabled": True}}
    """

    default = dict
    requires_command = "systemctl"

    def command(self, services: list[str]) -> str:
        units = " ".join(shlex.quote(f"{service}.service") for service in services)
        return f"systemctl show --property Id,SubState,UnitFileState {units}"

    def process(self, output) -> dict[str, ServiceDict]:
        states: dict[str, ServiceDict] = {}
        current: dict[str, str] = {}
        for line in [*output, ""]:
            if not line.strip():
                if current.get("Id", "").endswith(".service"):
                    states[current["Id"][: -len(".service")]] = {
                        "running": current.get("SubState") == "running",
                        "enabled": current.get("UnitFileState") == "enabled",
                    }
                current = {}
            elif "=" in line:
                key, value = line.split("=", 1)
                current[key] = value
        return states


def state_of(host, service: str) -> ServiceDict | None:
    """Whether ``service`` runs and is enabled (None: systemd does not know it), from one read of
    every service in ``MANAGED`` (and ``service``) for the run, until an operation changes the
    host."""
    return read(host, ServiceStates, services=sorted({*MANAGED, service})).get(service)


class CalendarProblem(FactBase[str]):
    """
    What the host's systemd finds wrong in a calendar event (a timer's ``OnCalendar=``), in its
    own words; empty when it reads the event. Read before any change, so that a schedule systemd
    will not parse stops the deploy before the rest of it runs.

    .. code:: python

        "Failed to parse calendar specification 'dayly': Invalid argument"
    """

    default = str
    requires_command = "systemd-analyze"

    def command(self, event: str) -> str:
        # Its error goes to stdout (read), its normalized form to /dev/null.
        return f"systemd-analyze calendar -- {shlex.quote(event)} 2>&1 >/dev/null || true"

    def process(self, output) -> str:
        return " ".join(line.strip() for line in output if line.strip())
