"""
The Docker engine's own configuration, key by key. Paired with ``labhub.facts.engine``.
"""

from __future__ import annotations

import json
from io import StringIO

from pyinfra import host
from pyinfra.api import OperationError, operation
from pyinfra.operations import files, systemd

from labhub.facts import read
from labhub.facts.engine import DAEMON_JSON, EngineInfo, EngineSettings, running_settings


@operation()
def configured(values: dict, path: str = DAEMON_JSON, restart: bool = False):
    """
    The engine's ``daemon.json`` holds these keys with these values; every other key the admin
    set stays as it is. When a key changes the engine reloads its configuration (SIGHUP, no
    restart: running containers are not touched), which is enough for the keys that Docker lists
    as reloadable, ``live-restore`` among them. A file that has the keys while the running engine
    reports other values (a run cut short between the two) gets the reload alone.

    + values: the keys and their values
    + path: the engine's configuration file
    + restart: restart the engine instead, for keys it reads only when it starts
      (``node-generic-resources``)

    **Example:**

    .. code:: python

        engine.configured(
            name="Keep containers running while the engine restarts",
            values={"live-restore": True},
        )
    """
    current = host.get_fact(EngineSettings, path=path)
    if current is None:
        raise OperationError(
            f"{path} is not a JSON object: labhub does not rewrite it; fix it "
            "(the engine does not start with it either) and deploy again"
        )
    written = all(current.get(key) == value for key, value in values.items())
    # A file written by a run cut short before the reload: the engine still runs without it.
    running = running_settings(read(host, EngineInfo))
    loaded = all(running.get(key, value) == value for key, value in values.items())
    if written and loaded:
        host.noop(f"{path} has {', '.join(values)}")
        return
    if not written:
        yield from files.put._inner(
            src=StringIO(json.dumps({**current, **values}, indent=2, sort_keys=True) + "\n"),
            dest=path,
            user="root",
            group="root",
            mode="0644",
        )
    yield from systemd.service._inner(
        service="docker", running=True, reloaded=not restart, restarted=restart
    )
