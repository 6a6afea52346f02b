"""
The hub's view of the host: which host account each hub user spawns labs as.
"""

from __future__ import annotations

import json
from io import StringIO

from pyinfra import host
from pyinfra.api import OperationError, operation
from pyinfra.operations import files

from labhub.facts.users import LocalAccounts, LocalGroups


@operation()
def accounts_file(path: str, accounts: dict[str, str]):
    """
    Write the uid, home and groups of each hub user's host account as JSON, read by the hub at
    each spawn. The accounts are read when the operation runs, after the tasks that create them.

    + path: the JSON file on the host
    + accounts: ``{hub user: host account}``

    **Example:**

    .. code:: python

        hub.accounts_file(
            name="Record the hub users' host accounts",
            path="/opt/labhub/hub/accounts.json",
            accounts={"alice": "jupyter-alice"},
        )
    """
    local = host.get_fact(LocalAccounts)
    groups = host.get_fact(LocalGroups)
    found = {
        account: {
            "uid": local[account]["uid"],
            "home": local[account]["home"],
            # Primary group first, then the groups that list the account.
            "gids": [local[account]["gid"]] + sorted(
                g["gid"] for g in groups.values()
                if account in g["members"] and g["gid"] != local[account]["gid"]
            ),
        }
        for account in accounts.values()
        if account in local
    }
    missing = sorted(account for account in accounts.values() if account not in found)
    if missing and host.state.is_executing:
        raise OperationError(
            f"no host account {', '.join(missing)}: hub users' accounts are made by tasks/users.py"
        )
    table = {user: found[account] for user, account in sorted(accounts.items())
             if account in found}
    yield from files.put._inner(
        src=StringIO(json.dumps(table, indent=2, sort_keys=True) + "\n"),
        dest=path,
        mode="0644",
    )
