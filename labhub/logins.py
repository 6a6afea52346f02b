"""
Who gets in, as pure functions of what the deploy and the hub keep: invitations (a user with no
password yet sets one through a one-time link) and the wait after failed logins. Standard library
only: the hub image ships this file too (``labhub_logins``, read by files/hub/labhub_auth.py),
so that the deploy, the hub and the status read the same rules.

The deploy writes ``INVITES_FILE`` beside the hub's settings (root only)::

    {"bob": {"sha256": "<SHA-256 of the token, hex>", "expires": "2026-12-09T18:00:00Z"}}

and the hub keeps ``STATE_FILE`` in its data volume::

    {"used": {"bob": "<SHA-256 of the token bob set his password with>"},
     "failures": {"bob": {"count": 6, "last": 1796300000.5, "address": "192.0.2.7"}}}

The token itself is only ever on the admin's machine, in the link handed to the user.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

INVITES_FILE = "invites.json"
STATE_FILE = "logins.json"
# Where the hub answers an invitation's link, under its base URL.
INVITE_PATH = "/hub/invite"
# The longest wait after failed logins, however many (unless the first wait is longer).
MAX_WAIT = 3600


def new_token() -> str:
    """A random invitation token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def invite_link(hub_url: str, user: str, token: str) -> str:
    return f"{hub_url}{INVITE_PATH}?{urlencode({'user': user, 'token': token})}"


def expired(entry: Mapping, now: datetime) -> bool:
    """Whether an invitation (``INVITES_FILE``'s entry) is past its time (or has none)."""
    try:
        return now >= parse_time(str(entry.get("expires", "")))
    except ValueError:
        return True


def invitation_problem(
    entry: Mapping | None,
    token: str,
    now: datetime,
    used: str | None = None,
    has_password: bool = False,
) -> str | None:
    """
    Why ``token`` does not let its user set a password (None: it does): ``entry`` is the user's
    in ``INVITES_FILE`` (None: none), ``used`` the hash of the token the user last set a
    password with, ``has_password`` whether the user has one.
    """
    if has_password:
        return "this account has a password already: log in, or ask the lab's admin for a reset"
    if not entry or not token:
        return "this is not a valid invitation: ask the lab's admin for one"
    digest = token_hash(token)
    if not hmac.compare_digest(digest, str(entry.get("sha256", ""))):
        return "this is not a valid invitation: ask the lab's admin for one"
    if used is not None and hmac.compare_digest(digest, used):
        return "this invitation was used already: ask the lab's admin for a new one"
    try:
        expires = parse_time(str(entry.get("expires", "")))
    except ValueError:
        return "this is not a valid invitation: ask the lab's admin for one"
    if now >= expires:
        return (
            f"this invitation expired on {format_time(expires)}: ask the lab's admin for a new one"
        )
    return None


def invitations(
    users: Iterable[str],
    passwords: Iterable[str],
    current: Mapping[str, Mapping],
    used: Mapping[str, str],
    renew: Iterable[str],
    now: datetime,
    days: int,
    make_token: Callable[[], str] = new_token,
) -> tuple[dict[str, dict], dict[str, str]]:
    """
    The invitations the hub should hold (``INVITES_FILE``'s content) and the new tokens made for
    them (``{user: token}``): one for each of ``users`` with no password. A user who holds an
    invitation keeps it (expired ones too: only the admin makes a new one), unless it was used or
    the user is in ``renew``; users with a password, and names no longer declared, have none.
    """
    have = set(passwords)
    renew = set(renew)
    entries: dict[str, dict] = {}
    tokens: dict[str, str] = {}
    for user in users:
        if user in have:
            continue
        entry = current.get(user)
        if (
            entry
            and user not in renew
            and "sha256" in entry
            and "expires" in entry
            and used.get(user) != entry["sha256"]
        ):
            entries[user] = {"sha256": entry["sha256"], "expires": entry["expires"]}
            continue
        tokens[user] = make_token()
        entries[user] = {
            "sha256": token_hash(tokens[user]),
            "expires": format_time(now + timedelta(days=days)),
        }
    return entries, tokens


def lockout_wait(count: int, allowed: int, wait: int) -> int:
    """Seconds a name waits after ``count`` failed logins in a row: none below ``allowed`` (0:
    never), then ``wait``, doubled with each failure after, up to ``MAX_WAIT``."""
    if not allowed or count < allowed:
        return 0
    return min(wait * 2 ** min(count - allowed, 32), max(wait, MAX_WAIT))


def locked_until(failures: Mapping | None, allowed: int, wait: int) -> float | None:
    """When a name's wait after its failed logins (``STATE_FILE``'s entry) is over, as a Unix
    time; None when it has none."""
    if not failures:
        return None
    seconds = lockout_wait(int(failures.get("count", 0)), allowed, wait)
    return float(failures.get("last", 0)) + seconds if seconds else None


def failed(failures: Mapping | None, now: float, address: str | None) -> dict:
    """A name's entry after one more failed login."""
    return {
        "count": int((failures or {}).get("count", 0)) + 1,
        "last": now,
        "address": address,
    }
