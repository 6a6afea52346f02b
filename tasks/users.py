"""
Notebook users: one host account per hub user, in group users with a private home, and the
members of the host groups that users name. A user removed from hub_users is locked, never
deleted: the account and everything it owns stay, and listing the user again unlocks it.

    pyinfra inventory.py tasks/users.py
"""

from pyinfra import host
from pyinfra.api.exceptions import OperationError

from labhub import accounts, cluster, homes
from labhub.facts.accounts import local_accounts as read_accounts
from labhub.facts.accounts import local_groups
from labhub.operations import accounts as account_ops
from labhub.settings import get_settings

settings = get_settings(host)
wanted = {settings.account_name(user.name) for user in settings.hub_users}
local_accounts = read_accounts(host)
# With lab nodes, the same ids on every server of the lab, planned from all of them.
ids = accounts.lab_ids(host)
# Refused before any change, like a bad setting.
problems = accounts.account_problems(settings, local_accounts, local_groups(host), ids)
if problems:
    raise OperationError(f"{host.name}: " + "; ".join(problems))
# A home mounted from another server (tasks/homes.py) is that server's to make and keep.
home_here = not homes.mounted_here(settings.home_storage, cluster.is_node(host))

for user in settings.hub_users:
    account = settings.account_name(user.name)
    uid = ids.uids[account] if ids else user.uid
    account_ops.account(
        name=f"Hub user {user.name}: account {account}"
        + (f" with uid {uid}" if uid is not None else ""),
        user=account,
        comment=accounts.account_comment(user.name),
        uid=uid,
        group=accounts.PRIMARY_GROUP,
        home=accounts.home_of(account),
        shell=accounts.SHELL,
        home_mode=accounts.HOME_MODE,
        home_here=home_here,
    )

# Accounts labhub made earlier (marked in their comment) for users no longer listed.
former = {
    account: user
    for account, user in accounts.labhub_accounts(local_accounts).items()
    if account not in wanted
}
for account, user in sorted(former.items()):
    account_ops.account(
        name=f"Lock {account}: {user} is no longer in hub_users "
        f"(account and home {local_accounts[account]['home']} kept)",
        user=account,
        comment=local_accounts[account]["comment"],
        locked=True,
        locked_shell=accounts.LOCKED_SHELL,
        locked_expire=accounts.LOCKED_EXPIRE,
    )

# Groups that select shares are declared with the shares (tasks/shares.py); the others here.
share_groups = {group for share in settings.shares for group in share.groups or ()}
for group in settings.host_groups:
    if group not in share_groups:
        members = accounts.group_members(settings, group)
        account_ops.group_members(
            name=f"Group {group}: {', '.join(members) or 'no hub users'}",
            group=group,
            members=members,
            managed=sorted(wanted | set(former)),
            gid=ids.gids[group] if ids else None,
        )
