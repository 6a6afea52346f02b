"""
Facts about who gets in: the invitations the deploy left on the host, the hub users who have set a
password (FirstUseAuthenticator's file) and the hub's own record of used invitations and failed
logins (``labhub.logins``), read in one command. Paired with ``labhub.operations.logins``.
"""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

from labhub.commands import command_line, container_command, shell
from labhub.facts import read, sections_of
from labhub.logins import INVITES_FILE, STATE_FILE
from labhub.stack import Stack

_SECTIONS = ("#invites", "#passwords", "#state")


def passwords_script(passwords_path: str) -> str:
    """Python, run in the hub's container: prints the names in FirstUseAuthenticator's file
    (``passwords_path`` there), one a line."""
    # No password file yet: nobody has logged in.
    return (
        f"import dbm; path = {passwords_path!r}; "
        "keys = dbm.open(path, 'r').keys() if dbm.whichdb(path) is not None else []; "
        "print('\\n'.join(sorted(k.decode() for k in keys)))"
    )


class HubLogins(FactBase[dict]):
    """
    .. code:: python

        {
            "invites": {"bob": {"sha256": "9f86...", "expires": "2026-12-09T18:00:00Z"}},
            "passwords": ["alice"],  # None: unknown (a hub that does not run, with its state)
            "state": {"used": {"alice": "2c26..."},
                      "failures": {"carol": {"count": 5, "last": 1796300000.5,
                                             "address": "192.0.2.7"}}},
        }

    ``invites`` is the deploy's ``invites_path`` on the host ({} when missing); ``passwords``
    the names in FirstUseAuthenticator's file (``passwords_path`` in the hub's running
    container; [] when there is no hub and no ``volume``, its state, yet); ``state`` the hub's
    ``state_path`` in that container ({} parts when it is not there).
    """

    @staticmethod
    def default() -> dict:
        # Nothing read (the command failed): who has a password is unknown.
        return {"invites": {}, "passwords": None, "state": {"used": {}, "failures": {}}}

    def command(
        self,
        invites_path: str,
        project: str,
        hub_service: str,
        passwords_path: str,
        state_path: str,
        volume: str,
    ) -> str:
        quote = shlex.quote
        return shell(
            "echo '#invites'",
            # A file may not end its last line (a hand edit): the next section's mark would.
            f"[ ! -f {quote(invites_path)} ] || {{ cat {quote(invites_path)}; echo; }}",
            f"hub=$({container_command(project, hub_service)}); running=",
            '[ -z "$hub" ] || running=$(docker inspect --format '
            "'{{if .State.Running}}{{.Id}}{{end}}' \"$hub\" 2>/dev/null)",
            "echo '#passwords'",
            'if [ -n "$running" ]; then '
            f'docker exec "$running" python3 -c {quote(passwords_script(passwords_path))} '
            "2>/dev/null || echo '#unreadable'",
            f"elif docker volume inspect {quote(volume)} >/dev/null 2>&1; then "
            "echo '#unreadable'; fi",
            "echo '#state'",
            'if [ -n "$running" ]; then '
            f'docker exec "$running" {command_line("cat", state_path)} 2>/dev/null; echo; fi',
            "true",
        )

    def process(self, output) -> dict:
        sections = sections_of(output, _SECTIONS)
        passwords: list[str] | None = [p for p in sections["#passwords"] if p]
        if "#unreadable" in sections["#passwords"]:
            passwords = None
        return {
            "invites": _json(sections["#invites"]),
            "passwords": passwords,
            "state": {"used": {}, "failures": {}, **_json(sections["#state"])},
        }


def _json(lines: list[str]) -> dict:
    try:
        value = json.loads("\n".join(lines) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def invites_file(stack: Stack) -> str:
    """Where the deploy keeps the hub's invitations: beside its settings (mounted read-only)."""
    return stack.path("hub", INVITES_FILE)


def logins_of(host, stack: Stack) -> dict:
    """``HubLogins`` of the stack's hub, read once until an operation changes the host."""
    return read(
        host,
        HubLogins,
        invites_path=invites_file(stack),
        project=stack.project,
        hub_service=stack.hub_service,
        passwords_path=stack.hub.passwords_path,
        state_path=f"{stack.hub.data_path}/{STATE_FILE}",
        volume=stack.hub_volume,
    )
