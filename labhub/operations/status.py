"""
Checks that change nothing: each an operation of its own, so that pyinfra's ``--json`` results
name every finding and list the hosts it failed on.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, operation


@operation()
def check(problem: str | None = None):
    """
    A finding of ``tasks/status.py``: nothing when ``problem`` is None; otherwise the operation
    fails, printing the problem. It never changes the host. Give it ``_ignore_errors=True`` to go
    on with the other checks.

    + problem: what is wrong, in the admin's words

    **Example:**

    .. code:: python

        status.check(name="share data: not mounted at /mnt/data",
                     problem="share data: nothing is mounted at /mnt/data", _ignore_errors=True)
    """
    if problem is None:
        host.noop("ok")
        return

    def fail(state, host) -> bool:
        host.log_styled(problem, fg="red", log_func=logger.error)
        return False

    yield FunctionCommand(fail, (), {})
