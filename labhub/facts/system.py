"""
Facts about the host's accounts that pyinfra's own facts do not give.
"""

from __future__ import annotations

from pyinfra.api import FactBase


class LoginUser(FactBase[str]):
    """
    The account pyinfra logged in as, also when operations run through sudo.

    .. code:: python

        "labadmin"
    """

    def command(self) -> str:
        return 'echo "${SUDO_USER:-$(id -un)}"'

    def process(self, output) -> str:
        return "\n".join(output).strip()
