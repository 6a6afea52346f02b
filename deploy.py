"""
The whole lab server, top to bottom: Docker, notebook users, network shares, the users' homes
(tasks/homes.py: shared with the lab nodes), the hub stack with its private registry, then the
lab images pushed to that registry; a lab node (inventory group ``lab_nodes``) gets the first
four. Each task also runs alone:
``pyinfra inventory.py tasks/<task>.py``. Pruning the registry is on demand, not part of this:
``pyinfra inventory.py tasks/registry_prune.py``. With backup_repository set, backups are set up
and scheduled last (tasks/backup_schedule.py); ``tasks/backup.py`` backs up on demand.

    pyinfra inventory.py deploy.py
"""

from pyinfra import host, local

from labhub import cluster
from labhub.settings import get_settings

# Validate every setting before the first operation, so bad input changes nothing.
settings = get_settings(host)

# A lab node runs labs: it gets what a lab needs of the server it runs on, not the hub.
node_tasks = ("docker", "users", "shares", "homes")
for task in node_tasks if cluster.is_node(host) else (*node_tasks, "hub", "images"):
    local.include(f"tasks/{task}.py")
if settings.backup_repository is not None and not cluster.is_node(host):
    local.include("tasks/backup_schedule.py")
