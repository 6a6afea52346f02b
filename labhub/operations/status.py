"""
Checks that change nothing: each an operation of its own, so that pyinfra's ``--json`` results
name every finding and list the hosts it failed on.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, operation

from labhub.pyinfra_api import mark_failed


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


@operation()
def verdict(problems: list[str]):
    """
    The end of ``tasks/status.py``: with problems, the host is marked failed, so that pyinfra
    exits non-zero, while its ``--json`` results are still printed (they list the host under
    ``failed_hosts``). A failing operation would not do: pyinfra stops with "No hosts remaining"
    when the last host fails, and prints no results. Changes nothing; meant to be the last
    operation of a run.

    + problems: the problems found, in the admin's words

    **Example:**

    .. code:: python

        status.verdict(name="labhub status: 1 problem(s)",
                       problems=["share data: nothing is mounted at /mnt/data"])
    """
    yield from ()
    if not problems:
        host.noop("healthy")
        return
    host.log_styled(
        f"{len(problems)} problem(s): " + "; ".join(problems), fg="red", log_func=logger.error
    )
    mark_failed(host)
