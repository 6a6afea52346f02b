"""
The whole lab server, top to bottom: Docker, notebook users, network shares, the hub stack with
its private registry, then the lab images pushed to that registry. Each task also runs alone:
``pyinfra inventory.py tasks/<task>.py``. Pruning the registry is on demand, not part of this:
``pyinfra inventory.py tasks/registry_prune.py``. With backup_repository set, backups are set up
and scheduled last (tasks/backup_schedule.py); ``tasks/backup.py`` backs up on demand.

    pyinfra inventory.py deploy.py
"""

from pyinfra import host, local

from labhub.settings import get_settings

# Validate every setting before the first operation, so bad input changes nothing.
settings = get_settings(host)

for task in ("docker", "users", "shares", "hub", "images"):
    local.include(f"tasks/{task}.py")
if settings.backup_repository is not None:
    local.include("tasks/backup_schedule.py")
