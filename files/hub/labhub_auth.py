"""
The lab hub's login: FirstUseAuthenticator (a declared user's first login sets the password),
with its bcrypt work off the hub's event loop. bcrypt is slow on purpose (a quarter of a second
a hash here): FirstUseAuthenticator hashes in the event loop, so a class logging in at once
would stall every other request, spawns included, for as long as all of their hashes take.
Here each hash runs in a thread (bcrypt releases the GIL), and only the password file's reads
and writes, which are quick, are serialized.
"""

from __future__ import annotations

import asyncio
import dbm
import threading

import bcrypt
from firstuseauthenticator import FirstUseAuthenticator


class LabAuthenticator(FirstUseAuthenticator):
    # dbm's files are not safe to open from threads at once.
    _passwords = threading.Lock()

    async def authenticate(self, handler, data):
        username = self.normalize_username(data["username"])
        password = data["password"].encode("utf8")
        # The hub's database, which only its event loop may use.
        if not self.create_users and not self._user_exists(username):
            return None
        loop = asyncio.get_running_loop()
        stored = await loop.run_in_executor(None, self._stored, username, None)
        if stored is None:
            if not self._validate_password(data["password"]):
                handler.custom_login_error = (
                    "Password too short! Please choose a password at least "
                    f"{self.min_password_length} characters long."
                )
                self.log.error(handler.custom_login_error)
                return None
            hashed = await loop.run_in_executor(None, bcrypt.hashpw, password, bcrypt.gensalt())
            # The first of two first logins at once sets the password; the other must match it.
            stored = await loop.run_in_executor(None, self._stored, username, hashed)
            if stored == hashed:
                return username
        matches = await loop.run_in_executor(None, bcrypt.checkpw, password, stored)
        return username if matches else None

    def _stored(self, username: str, first: bytes | None) -> bytes | None:
        """The user's stored hash; ``first`` stored when there is none yet."""
        key = username.encode("utf8")
        with self._passwords, dbm.open(self.dbm_path, "c", 0o600) as db:
            stored = db.get(key)
            if stored is None and first is not None:
                db[key] = stored = first
            return stored
