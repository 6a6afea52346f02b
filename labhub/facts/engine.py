"""
Facts about the Docker engine's own configuration. Paired with ``labhub.operations.engine``.
"""

from __future__ import annotations

import json

from pyinfra.api import FactBase, QuoteString, StringCommand

DAEMON_JSON = "/etc/docker/daemon.json"


class EngineSettings(FactBase[dict | None]):
    """
    The engine's ``daemon.json`` as data: ``{}`` when there is none, None when it is not a JSON
    object (the engine would not start with it either).

    .. code:: python

        {"live-restore": True, "log-driver": "journald"}
    """

    default = dict

    def command(self, path: str = DAEMON_JSON) -> StringCommand:
        return StringCommand("cat", QuoteString(path), "2>/dev/null", "||", "true")

    def process(self, output) -> dict | None:
        text = "\n".join(output).strip()
        if not text:
            return {}
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


# The daemon.json keys labhub sets that ``docker info`` shows the running engine's value of.
INFO_FIELDS = {"live-restore": "LiveRestoreEnabled", "default-runtime": "DefaultRuntime"}


class EngineInfo(FactBase[dict]):
    """
    The running engine's ``docker info`` as data; ``{}`` when no engine answers. Read once for
    all that the deploy asks of the running engine: the daemon.json values it has loaded
    (``running_settings``) and its place in a swarm (``labhub.facts.swarm.state_of``).

    .. code:: python

        {"LiveRestoreEnabled": True, "DefaultRuntime": "runc", "Swarm": {...}, ...}
    """

    default = dict
    requires_command = "docker"

    def command(self) -> str:
        return "docker info --format '{{json .}}' 2>/dev/null || true"

    def process(self, output) -> dict:
        try:
            info = json.loads("\n".join(output))
        except ValueError:
            return {}
        return info if isinstance(info, dict) else {}


def running_settings(info: dict) -> dict:
    """
    The values the running engine (``EngineInfo``) has loaded for the daemon.json keys
    ``docker info`` shows (``INFO_FIELDS``); ``{}`` when no engine answers. A daemon.json written
    by a run cut short before the engine reloaded it differs from these.

    .. code:: python

        {"live-restore": True}
    """
    running = {key: info[field] for key, field in INFO_FIELDS.items() if field in info}
    if "GenericResources" in info:
        # As daemon.json writes them: KIND=VALUE (named) or KIND=COUNT (discrete).
        running["node-generic-resources"] = sorted(
            f"{spec['Kind']}={spec['Value']}"
            for resource in info["GenericResources"] or []
            for spec in resource.values()
        )
    return running
