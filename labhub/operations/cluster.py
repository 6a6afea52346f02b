"""
The servers of one lab deployed together: steps every server takes at the same point of the
deploy, which order operations across servers.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation


@operation()
def step(done: str):
    """
    A point of the deploy that every server of the lab reaches together: pyinfra runs an
    operation on each server after that server's operations before it, and this one is the same
    operation on all of them (called from one line for every host), so whatever follows it on
    any server runs after everything before it on every server (a node pulls what the hub server
    pushed). Changes nothing.

    + done: what is done on every server at this point (logged)

    **Example:**

    .. code:: python

        cluster.step(name="The hub server's lab images are pushed", done="images pushed")
    """
    host.noop(f"every server of the lab is past this point: {done}")
    yield from ()
