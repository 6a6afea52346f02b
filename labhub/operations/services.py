"""
systemd services enabled and running. Paired with ``labhub.facts.services``.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.operations import systemd

from labhub.facts.services import state_of


@operation()
def running(service: str):
    """
    A service enabled and running (pyinfra's ``systemd.service`` when it is not). Its state is
    read with the other services labhub keeps running (``labhub.facts.services.MANAGED``).

    + service: the service's name, without ``.service``

    **Example:**

    .. code:: python

        services.running(name="Enable and start docker", service="docker")
    """
    state = state_of(host, service)
    if state is not None and state["running"] and state["enabled"]:
        host.noop(f"{service} is enabled and running")
        return
    yield from systemd.service._inner(service=service, running=True, enabled=True)
