"""
A test and demo harness for labhub, not part of the deploy: real Debian 13 lab servers on this
machine (systemd containers with sshd and their own Docker engine) to deploy to over SSH, the
pyinfra CLI run as an admin runs it, and stand-ins for the official images the stack starts from
(nothing can be pulled here).

- ``labhost.server``: this machine's Docker engine, the lab server image, ``LabServer`` and
  starting, finding and removing lab servers
- ``labhost.images``: the stand-in images, and loading them into a lab server
- ``labhost.runner``: ``run_pyinfra`` and its ``PyinfraRun`` results
- ``python -m labhost engine|up|down``: the local demo (``./dev up``, ``./dev down``)
"""

from labhost.images import (
    STAND_INS,
    ensure_server_engine,
    load_previous_hub,
    load_stack_images,
    prepare_images,
)
from labhost.runner import (
    LOUDEST,
    PyinfraRun,
    run_pyinfra,
    secret_parts,
    start_pyinfra,
    write_secret,
)
from labhost.server import (
    HAS_AUTOFS,
    PROJECT_ROOT,
    LabHostError,
    LabServer,
    ensure_engine,
    find_lab_server,
    remove_all_lab_servers,
    remove_in_background,
    remove_volume,
    running_lab_server,
    start_lab_server,
    start_lab_servers,
    wait_for_removals,
    write_inventory,
)

__all__ = [
    "HAS_AUTOFS",
    "PROJECT_ROOT",
    "STAND_INS",
    "LabHostError",
    "LabServer",
    "PyinfraRun",
    "ensure_engine",
    "find_lab_server",
    "load_previous_hub",
    "ensure_server_engine",
    "load_stack_images",
    "prepare_images",
    "remove_all_lab_servers",
    "remove_in_background",
    "remove_volume",
    "run_pyinfra",
    "start_pyinfra",
    "running_lab_server",
    "start_lab_server",
    "start_lab_servers",
    "wait_for_removals",
    "write_inventory",
    "write_secret",
    "LOUDEST",
    "secret_parts",
]
