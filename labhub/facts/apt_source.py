"""
Facts about a third-party apt source's key. Paired with ``labhub.operations.apt_source``.
"""

from __future__ import annotations

import re

from pyinfra.api import FactBase

from labhub.commands import Expanded, command_line

# How long the host waits for a repository's key before it counts as not published.
KEY_TIMEOUT = 30


class PublishedKey(FactBase[str | None]):
    """
    The SHA-256 of the key a repository publishes now at ``url``, fetched by the host (as
    ``files.download`` will fetch it); None when it cannot be fetched (no answer, an error, no
    curl yet). Compared with the keyring's own hash on every run, so that a key the repository
    replaced, or the key of a new ``url``, is downloaded again.

    .. code:: python

        "1500c1f56fa9e26b9b8f42452a553675796ade0807cdce11975eb98170b3a570"
    """

    requires_command = "curl"

    @staticmethod
    def default() -> None:
        return None

    def command(self, url: str) -> str:
        key = Expanded('"$key"')
        fetch = command_line("curl", "-sSLf", "--max-time", str(KEY_TIMEOUT), "-o", key, url)
        return (
            f"key=$(mktemp) && {{ {fetch} && {command_line('sha256sum', key)}; }} 2>/dev/null; "
            f"rm -f {key.text}; true"
        )

    def process(self, output) -> str | None:
        for line in output:
            digest = line.split(" ", 1)[0]
            if re.fullmatch(r"[0-9a-f]{64}", digest):
                return digest
        return None
