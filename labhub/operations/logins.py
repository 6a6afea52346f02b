"""
Who gets in: the invitations of hub users with no password yet, and passwords reset by the admin.
Reads ``labhub.facts.logins.HubLogins``.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from pyinfra import host
from pyinfra.api import FunctionCommand, operation

from labhub.commands import container_command, shell
from labhub.facts.logins import logins_of
from labhub.operations import secret_files
from labhub.stack import Stack


@operation(is_idempotent=False)
def passwords_reset(stack: Stack, users: list[str]):
    """
    Remove the passwords of ``users`` from FirstUseAuthenticator's file in the hub's container,
    so that each sets a new one (the hub's first-login rules then apply). Users with no password
    are left as they are; the users' homes and files are never touched.

    + stack: the compose project, whose hub runs
    + users: hub users

    **Example:**

    .. code:: python

        logins.passwords_reset(
            name="Reset bob's password",
            stack=Stack.from_settings(settings),
            users=["bob"],
        )
    """
    passwords = logins_of(host, stack)["passwords"] or []
    reset = [user for user in users if user in passwords]
    if not reset:
        host.noop(f"no password to reset ({', '.join(users)} have none)")
        return
    script = (
        "import dbm, sys\n"
        f"with dbm.open({stack.hub.passwords_path!r}, 'w') as db:\n"
        "    for name in sys.argv[1:]:\n"
        "        del db[name.encode()]\n"
    )
    yield shell(
        f"hub=$({container_command(stack.project, stack.hub_service)})",
        f'docker exec "$hub" python3 -c {shlex.quote(script)} '
        + " ".join(shlex.quote(user) for user in reset),
    )


@operation()
def invitations(path: str, entries: dict[str, dict], links: dict[str, tuple[str, str]]):
    """
    The hub's invitations (``labhub.logins``) as ``entries`` say, in ``path`` (root only, never
    shown), and the links of the new ones written on the admin's machine: each to its file,
    readable by the admin alone (mode 0600, in a folder of mode 0700), once the server holds
    its hash. Neither the tokens nor the links are ever printed or on a command line.

    + path: the invitations file on the host, beside the hub's settings
    + entries: ``{user: {"sha256", "expires"}}``
    + links: the new invitations, ``{user: (local file, link)}``

    **Example:**

    .. code:: python

        logins.invitations(
            name="Invite bob",
            path="/opt/labhub/hub/invites.json",
            entries={"bob": {"sha256": "9f86...", "expires": "2026-12-09T18:00:00Z"}},
            links={"bob": (".labhub/invites/hub1/bob.url", "https://hub.lab.example/hub/...")},
        )
    """
    content = (json.dumps(entries, indent=2, sort_keys=True) + "\n").encode()
    commands = list(secret_files.put._inner(src=content, dest=path))
    if not commands:
        host.noop(f"{len(entries)} invitation(s) as they are")
        return
    yield from commands
    if not links:
        return

    def write_links() -> None:
        for user, (file, link) in sorted(links.items()):
            local = Path(file)
            local.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            # A file left from before keeps its mode on open: private whatever it was.
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(link + "\n")
            host.log(f"invitation for {user}: its link is in {file} (hand it over)")

    yield FunctionCommand(write_links, (), {})
