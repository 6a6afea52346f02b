"""
FirstUseAuthenticator with labhub's doors (wired up by jupyterhub_config.py):

- with ``first_login`` "invite", a declared user with no password sets it only through the
  invitation link the deploy made (``/hub/invite?user=...&token=...``: a page where the user
  chooses it, once); a first login without one is refused, telling the user to ask the admin;
- after ``allowed_failed_logins`` wrong passwords in a row for a name, that name's logins are
  refused until a wait is over (growing with each further failure), the right password too; the
  hub's log names the user and the address.

The rules are labhub_logins' (labhub/logins.py, shipped with the image); the state (invitations
used, failed logins) is a JSON file in the hub's data volume, which tasks/status.py reads.
"""

from __future__ import annotations

import dbm
import json
import math
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import bcrypt
from firstuseauthenticator import FirstUseAuthenticator
from jinja2 import ChoiceLoader, FileSystemLoader
from jupyterhub.handlers import BaseHandler
from labhub_logins import failed, invitation_problem, locked_until, token_hash
from traitlets import Integer, Unicode

TEMPLATES = Path(__file__).with_name("templates")


class InviteHandler(BaseHandler):
    """The invitation's page: the user chooses a password, then is logged in."""

    async def _page(self, user: str, token: str, problem: str | None, error: str | None = None):
        env = self.settings["jinja2_env"]
        # The hub's own templates first (page.html), then the page's; added once.
        if not getattr(env, "labhub_invite", False):
            env.loader = ChoiceLoader([env.loader, FileSystemLoader([str(TEMPLATES)])])
            env.labhub_invite = True
        self.set_status(403 if problem else 400 if error else 200)
        self.finish(
            await self.render_template(
                "invite.html",
                invited=user,
                token=token,
                problem=problem,
                error=error,
                min_length=self.authenticator.min_password_length,
            )
        )

    async def get(self):
        user = self.get_argument("user", "")
        token = self.get_argument("token", "")
        await self._page(user, token, self.authenticator.invitation_problem(user, token))

    async def post(self):
        user = self.get_body_argument("user", "")
        token = self.get_body_argument("token", "")
        password = self.get_body_argument("password", "", strip=False)
        problem = self.authenticator.invitation_problem(user, token)
        if problem is not None:
            await self._page(user, token, problem)
            return
        error = self.authenticator.claim(user, token, password, self.request.remote_ip)
        if error is not None:
            await self._page(user, token, None, error)
            return
        logged_in = await self.login_user({"username": user, "password": password})
        self.redirect(self.get_next_url(logged_in) if logged_in else self.settings["login_url"])


class LabAuthenticator(FirstUseAuthenticator):
    first_login = Unicode(
        "invite", config=True, help='"invite": a first login needs an invitation; "open": not'
    )
    invites_path = Unicode(config=True, help="The deploy's invitations (labhub_logins)")
    state_path = Unicode(config=True, help="Invitations used and failed logins (labhub_logins)")
    allowed_failed_logins = Integer(5, config=True, help="Wrong passwords before a wait (0: none)")
    seconds_before_next_try = Integer(60, config=True, help="The first wait, in seconds")

    # --- State: the deploy's invitations, the hub's own JSON, FirstUse's passwords ---
    def _state(self) -> dict:
        try:
            state = json.loads(Path(self.state_path).read_text())
        except (OSError, ValueError):
            state = {}
        return {"used": state.get("used", {}), "failures": state.get("failures", {})}

    def _save(self, state: dict) -> None:
        # Whole or not at all: a new file renamed over the old one.
        folder = os.path.dirname(self.state_path)
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".logins-")
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=2, sort_keys=True)
        os.replace(temp, self.state_path)

    def _invites(self) -> dict:
        try:
            return json.loads(Path(self.invites_path).read_text())
        except (OSError, ValueError):
            return {}

    def _has_password(self, user: str) -> bool:
        with dbm.open(self.dbm_path, "c", 0o600) as db:
            return user.encode() in db

    # --- Invitations ---
    def invitation_problem(self, user: str, token: str) -> str | None:
        user = self.normalize_username(user)
        if self.first_login != "invite" or user not in self.allowed_users:
            return "this is not a valid invitation: ask the lab's admin for one"
        return invitation_problem(
            self._invites().get(user),
            token,
            datetime.now(UTC),
            self._state()["used"].get(user),
            self._has_password(user),
        )

    def claim(self, user: str, token: str, password: str, address: str) -> str | None:
        """Set the invited user's password, the invitation used; or why not."""
        user = self.normalize_username(user)
        if not self._validate_password(password):
            return f"Choose a password of at least {self.min_password_length} characters."
        with dbm.open(self.dbm_path, "c", 0o600) as db:
            db[user] = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
        state = self._state()
        state["used"][user] = token_hash(token)
        state["failures"].pop(user, None)
        self._save(state)
        self.log.info("labhub: %s set a password with an invitation, from %s", user, address)
        return None

    # --- Logins ---
    async def authenticate(self, handler, data):
        user = self.normalize_username(data["username"])
        address = handler.request.remote_ip
        state = self._state()
        until = locked_until(
            state["failures"].get(user), self.allowed_failed_logins, self.seconds_before_next_try
        )
        if until is not None and time.time() < until:
            wait = math.ceil(until - time.time())
            handler.custom_login_error = (
                f"Too many failed logins for {user}: try again in {wait} seconds."
            )
            self.log.warning(
                "labhub: login for %s from %s refused: too many failed logins, %d s to wait",
                user,
                address,
                wait,
            )
            return None
        known = user in self.allowed_users and self._has_password(user)
        if self.first_login == "invite" and user in self.allowed_users and not known:
            handler.custom_login_error = (
                f"{user} has no password yet: ask the lab's admin for your invitation link, "
                "and choose your password there."
            )
            self.log.warning(
                "labhub: first login for %s from %s without an invitation", user, address
            )
            return None
        name = await super().authenticate(handler, data)
        if known and name is None:
            # Counted for names with a password only: others cannot be guessed into a wait.
            state["failures"][user] = failed(state["failures"].get(user), time.time(), address)
            self._save(state)
            self.log.warning(
                "labhub: failed login for %s from %s (%d in a row)",
                user,
                address,
                state["failures"][user]["count"],
            )
        elif name is not None and user in state["failures"]:
            state["failures"].pop(user)
            self._save(state)
        return name

    def get_handlers(self, app):
        return [*super().get_handlers(app), (r"/invite", InviteHandler)]
