"""
The whole lab server, top to bottom: Docker, notebook users, network shares, the hub stack with
its private registry, then the lab images pushed to that registry. Each task also runs alone:
``pyinfra inventory.py tasks/<task>.py``. Pruning the registry is on demand, not part of this:
``pyinfra inventory.py tasks/registry_prune.py``. With backup_repository set, backups are set up
and scheduled last (tasks/backup_schedule.py); ``tasks/backup.py`` backs up on demand.

A lab node (inventory group ``lab_nodes``) gets Docker and the notebook users, then, once the hub
server pushed the lab images, those images pulled from the hub server's registry
(tasks/node_images.py).

    pyinfra inventory.py deploy.py
"""

from pyinfra import host, local

from labhub.cluster import is_node
from labhub.operations import cluster
from labhub.settings import get_settings

# Validate every setting before the first operation, so bad input changes nothing.
settings = get_settings(host)
node = is_node(host)

tasks = ("docker", "users") if node else ("docker", "users", "shares", "hub", "images")
for task in tasks:
    local.include(f"tasks/{task}.py")
if settings.with_lab_nodes:
    # One operation on every server: what follows on a node runs after the hub server pushed.
    cluster.step(
        name="Every server is set up and the hub server has pushed the lab images",
        done="lab images pushed",
    )
if node:
    local.include("tasks/node_images.py")
elif settings.backup_repository is not None:
    local.include("tasks/backup_schedule.py")
