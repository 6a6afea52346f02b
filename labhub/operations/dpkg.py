"""
Finishing what an interrupted dpkg run left half done. Paired with ``labhub.facts.dpkg``.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import StringCommand, operation

from labhub.facts.dpkg import DpkgInterrupted


@operation()
def recovered():
    """
    ``dpkg --configure -a`` when an earlier dpkg run was interrupted (a deploy killed while apt
    installed packages), so that apt installs again. Configuration files the admin changed are
    kept; nothing is asked.

    **Example:**

    .. code:: python

        dpkg.recovered(name="Finish an interrupted package installation")
    """
    if not host.get_fact(DpkgInterrupted):
        host.noop("no interrupted dpkg run")
        return
    yield StringCommand(
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "dpkg",
        "--force-confdef",
        "--force-confold",
        "--configure",
        "-a",
    )
