"""
Facts about the registry the lab nodes pull from: the login's files on the hub server (which are
missing or stale, never their content). Paired with ``labhub.operations.node_registry``.
"""

from __future__ import annotations

from pyinfra.api import FactBase

from labhub.commands import script_command
from labhub.node_registry import LOGIN_SCRIPT


class RegistryLogin(FactBase[list]):
    """
    Which of the nodes' registry login files on the hub server are missing or stale
    (``files/registry-login.sh check``): ``password``, ``proxy-env``, ``docker-config``; empty
    when all are right. Only these words are read: the password never leaves its file.

    .. code:: python

        ["proxy-env", "docker-config"]
    """

    default = list

    def command(
        self,
        password: str,
        env: str,
        config: str,
        variable: str,
        user: str,
        image: str,
        before: str,
        after: str,
        project: str,
        service: str,
    ) -> str:
        return script_command(
            LOGIN_SCRIPT,
            "check",
            password,
            env,
            config,
            variable,
            user,
            image,
            before,
            after,
            project,
            service,
            interpreter="sh",
        )

    def process(self, output) -> list:
        return [line.strip() for line in output if line.strip()]
