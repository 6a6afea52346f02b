"""
Who gets in to the hub: with first_login "invite", a one-time invitation for each hub user with no
password yet (its link in a file on the admin's machine, .labhub/invites/<server>/<user>.url,
readable by the admin alone; the server keeps only its hash), and the passwords the admin resets.
After tasks/hub.py.

    pyinfra inventory.py tasks/logins.py
    pyinfra inventory.py tasks/logins.py --data reissue_invites='["bob"]'
    pyinfra inventory.py tasks/logins.py --data reset_passwords='["bob"]'
"""

from datetime import UTC, datetime

from pyinfra import host, logger

from labhub import cluster, logins, stack
from labhub.facts.logins import invites_file, logins_of
from labhub.operations import logins as login_ops
from labhub.operations import tree
from labhub.settings import ROOT, get_settings

# Where the links of new invitations are written on the admin's machine (git-ignored).
INVITES_DIR = ROOT / ".labhub" / "invites"

settings = get_settings(host)
project = stack.Stack.from_settings(settings)
invites = invites_file(project)
invite = settings.first_login == "invite"
# The hub server's alone (run by itself on an inventory with lab nodes, it leaves them be).
hub_here = not cluster.is_node(host)

if hub_here and not invite:
    logger.warning(
        f'{host.name}: first_login is "open": the first login of a declared name sets its '
        'password, whoever makes it (first_login "invite" hands each user a link)'
    )

if hub_here and settings.reset_passwords:
    login_ops.passwords_reset(
        name="Reset the passwords of "
        + ", ".join(settings.reset_passwords)
        + (" (each gets a new invitation)" if invite else ""),
        stack=project,
        users=list(settings.reset_passwords),
    )

if hub_here and invite:
    found = logins_of(host, project)
    if found["passwords"] is None:
        host.log(
            "the hub does not run: who has set a password is unknown, the invitations stay as "
            "they are",
            logger.warning,
        )
    else:
        entries, tokens = logins.invitations(
            users=[user.name for user in settings.hub_users],
            passwords=set(found["passwords"]) - set(settings.reset_passwords),
            current=found["invites"],
            used=found["state"]["used"],
            renew=[*settings.reissue_invites, *settings.reset_passwords],
            now=datetime.now(UTC),
            days=settings.invite_days,
        )
        for user, entry in sorted(entries.items()):
            if user not in tokens and logins.expired(entry, datetime.now(UTC)):
                host.log(
                    f"the invitation of {user} expired on {entry['expires']}: "
                    f"--data reissue_invites='[\"{user}\"]' makes a new one",
                    logger.warning,
                )
        folder = INVITES_DIR / host.name
        login_ops.invitations(
            name="Invite the hub users with no password yet"
            + (f" ({', '.join(sorted(tokens))}: new)" if tokens else ""),
            path=invites,
            entries=entries,
            links={
                user: (
                    str(folder / f"{user}.url"),
                    logins.invite_link(settings.hub_url, user, token),
                )
                for user, token in tokens.items()
            },
        )
elif hub_here:
    tree.absent(name='Remove the hub\'s invitations (first_login is "open")', paths=[invites])
