"""
Facts about dpkg's own state. Paired with ``labhub.operations.dpkg``.
"""

from __future__ import annotations

from pyinfra.api import FactBase

# dpkg journals each status change here until it folds them into its status file: entries left
# behind mean a dpkg run was killed, and apt refuses to install until they are dealt with.
UPDATES_DIR = "/var/lib/dpkg/updates"


class DpkgInterrupted(FactBase[bool]):
    """
    Whether a dpkg run was interrupted (killed, or its SSH session lost) before it finished: the
    state apt refuses with "dpkg was interrupted, you must manually run 'dpkg --configure -a'".

    .. code:: python

        False
    """

    default = bool
    requires_command = "dpkg"

    def command(self) -> str:
        return f"find {UPDATES_DIR} -mindepth 1 -maxdepth 1 -print -quit 2>/dev/null || true"

    def process(self, output) -> bool:
        return any(line.strip() for line in output)
