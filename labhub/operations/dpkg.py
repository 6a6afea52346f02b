"""
Finishing what an interrupted dpkg run left half done. Paired with ``labhub.facts.dpkg``.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from labhub.facts.dpkg import DpkgInterrupted


@operation()
def recovered():
    """
    ``dpkg --configure -a`` when an earlier dpkg run was interrupted (a deploy killed while apt
    installed packages), so that apt installs again. Configuration files the admin changed are
    kept; nothing is asked. A dpkg that still runs (its SSH session lost, not the process) is
    waited for first, ten minutes at most: dpkg refuses to start beside it.

    **Example:**

    .. code:: python

        dpkg.recovered(name="Finish an interrupted package installation")
    """
    if not host.get_fact(DpkgInterrupted):
        host.noop("no interrupted dpkg run")
        return
    yield StringCommand(
        "timeout",
        "600",
        "sh",
        "-c",
        QuoteString("while grep -qsx dpkg /proc/[0-9]*/comm; do sleep 1; done"),
    )
    yield StringCommand(
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "dpkg",
        "--force-confdef",
        "--force-confold",
        "--configure",
        "-a",
    )
