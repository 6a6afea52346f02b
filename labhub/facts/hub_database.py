"""
Facts about the hub's moves to a new image: whether the last one was rolled back. Paired with
``labhub.operations.hub_database``.
"""

from __future__ import annotations

import shlex
from typing import TypedDict

from pyinfra.api import FactBase

# The keys files/hub-upgrade.sh writes in the mark of a rolled-back upgrade, one "key=value" a line.
ROLLBACK_KEYS = ("at", "previous", "failed", "reason", "outcome")


class RollbackDict(TypedDict):
    at: str
    previous: str
    failed: str
    reason: str
    outcome: str


class HubRollback(FactBase[RollbackDict | None]):
    """
    The mark a failed hub upgrade left (``Stack.hub_rolled_back_file``), or None when the last
    upgrade did not fail, or was followed by a deploy that the hub runs as built: when it was
    (``at``, UTC), the image the hub went back to (``previous``), the one that failed
    (``failed``), why (``reason``), and ``outcome``: ``rolled back`` (the previous hub answers)
    or ``rollback failed``.

    .. code:: python

        {"at": "2026-12-02T15:40:11Z", "previous": "labhub/hub:2b9d0c3e1f4a",
         "failed": "labhub/hub:4bd2c1a9e0f1", "reason": "the new hub stopped (state: exited 0)",
         "outcome": "rolled back"}
    """

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return f"[ ! -f {quoted} ] || cat {quoted}"

    def process(self, output) -> RollbackDict | None:
        values = dict(line.split("=", 1) for line in output if "=" in line)
        if not values:
            return None
        return {key: values.get(key, "") for key in ROLLBACK_KEYS}  # type: ignore[return-value]
