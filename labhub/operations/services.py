"""
systemd services enabled and running. Paired with ``labhub.facts.services``.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.operations import systemd

from labhub.facts import read
from labhub.facts.services import ServiceStates


@operation()
def running(service: str, among: list[str] | None = None):
    """
    A service enabled and running (pyinfra's ``systemd.service`` when it is not).

    + service: the service's name, without ``.service``
    + among: the services whose state is read in the same command (give every call the same
      list to read them all once)

    **Example:**

    .. code:: python

        services.running(name="Enable and start docker", service="docker",
                         among=["containerd", "docker"])
    """
    state = read(host, ServiceStates, services=sorted({service, *(among or ())})).get(service)
    if state is not None and state["running"] and state["enabled"]:
        host.noop(f"{service} is enabled and running")
        return
    yield from systemd.service._inner(service=service, running=True, enabled=True)
