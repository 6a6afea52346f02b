"""
FirstUseAuthenticator with labhub's doors (wired up by jupyterhub_config.py):

- with ``first_login`` "invite", a declared user with no password sets it only through the
  invitation link the deploy made (``/hub/invite?user=...&token=...``: a page where the user
  chooses it, once); a first login without one is refused, telling the user to ask the admin;
- after ``allowed_failed_logins`` wrong passwords in a row for a name, that name's logins are
  refused until a wait is over (growing with each further failure), the right password too; the
  hub's log names the user and the address;
- bcrypt off the hub's event loop: it is slow on purpose (a quarter of a second a hash here), and
  FirstUseAuthenticator hashes in the event loop, so a class logging in at once would stall every
  other request, spawns included, for as long as all of their hashes take. Each hash runs in a
  thread (bcrypt releases the GIL); only the password file's reads and writes, which are quick,
  are serialized.

The rules are labhub_logins' (labhub/logins.py, shipped with the image); the state (invitations
used, failed logins) is a JSON file in the hub's data volume, which tasks/status.py reads.
"""

from __future__ import annotations

import asyncio
import dbm
import json
import math
import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import bcrypt
from firstuseauthenticator import FirstUseAuthenticator
from firstuseauthenticator.firstuseauthenticator import CustomLoginHandler
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
        error = await self.authenticator.claim(user, token, password, self.request.remote_ip)
        if error is not None:
            await self._page(user, token, None, error)
            return
        logged_in = await self.login_user({"username": user, "password": password})
        self.redirect(self.get_next_url(logged_in) if logged_in else self.settings["login_url"])


class LoginHandler(CustomLoginHandler):
    """FirstUse's login page, taking what JupyterHub 5.3 and later pass when they render an error
    on it (an expired form, a refusal): FirstUse's own takes two arguments and fails with a 500."""

    def _render(self, login_error=None, username=None, **kwargs):
        if self.custom_login_error:
            login_error = self.custom_login_error
        return super(CustomLoginHandler, self)._render(login_error, username, **kwargs)


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

    # dbm's files are not safe to open from threads at once.
    _passwords = threading.Lock()

    def _stored(self, user: str, first: bytes | None = None) -> bytes | None:
        """The user's stored hash; ``first`` stored when there is none yet."""
        key = user.encode("utf8")
        with self._passwords, dbm.open(self.dbm_path, "c", 0o600) as db:
            stored = db.get(key)
            if stored is None and first is not None:
                db[key] = stored = first
            return stored

    def _has_password(self, user: str) -> bool:
        return self._stored(user) is not None

    async def _check_password(self, user: str, password: str) -> bool:
        """FirstUse's check (a first login sets the password), its bcrypt in a thread."""
        loop = asyncio.get_running_loop()
        secret = password.encode("utf8")
        stored = await loop.run_in_executor(None, self._stored, user)
        if stored is None:
            if not self._validate_password(password):
                return False
            hashed = await loop.run_in_executor(None, bcrypt.hashpw, secret, bcrypt.gensalt())
            # The first of two first logins at once sets the password; the other must match it.
            stored = await loop.run_in_executor(None, self._stored, user, hashed)
            if stored == hashed:
                return True
        return await loop.run_in_executor(None, bcrypt.checkpw, secret, stored)

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

    async def claim(self, user: str, token: str, password: str, address: str) -> str | None:
        """Set the invited user's password, the invitation used; or why not."""
        user = self.normalize_username(user)
        if not self._validate_password(password):
            return f"Choose a password of at least {self.min_password_length} characters."
        hashed = await asyncio.get_running_loop().run_in_executor(
            None, bcrypt.hashpw, password.encode(), bcrypt.gensalt()
        )
        if self._stored(user, hashed) != hashed:
            return "This account's password is set already: log in with it."
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
        if not self.create_users and not self._user_exists(user):
            return None
        if not (known or self._validate_password(data["password"])):
            handler.custom_login_error = (
                "Password too short! Please choose a password at least "
                f"{self.min_password_length} characters long."
            )
            return None
        name = user if await self._check_password(user, data["password"]) else None
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
        handlers = [
            (p, LoginHandler if p == r"/login" else h) for p, h in super().get_handlers(app)
        ]
        return [*handlers, (r"/invite", InviteHandler)]
