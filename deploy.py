"""
The whole lab server, top to bottom: Docker, notebook users, network shares, the hub stack with
its private registry, then the lab images pushed to that registry. Each task also runs alone:
``pyinfra inventory.py tasks/<task>.py``. Pruning the registry is on demand, not part of this:
``pyinfra inventory.py tasks/registry_prune.py``. With backup_repository set, backups are set up
and scheduled last (tasks/backup_schedule.py); ``tasks/backup.py`` backs up on demand.

A lab node (the inventory group ``lab_nodes``) gets Docker, the notebook users and the shares,
then joins the lab's swarm; the hub server manages that swarm (tasks/swarm.py) once the
inventory has lab nodes, or while it still manages one (whose nodes are then reconciled).

    pyinfra inventory.py deploy.py
"""

from pyinfra import host, local

from labhub import cluster
from labhub.settings import get_settings

# Validate every setting before the first operation, so bad input changes nothing.
settings = get_settings(host)
node = cluster.is_node(host)

for task in ("docker", "users", "shares"):
    local.include(f"tasks/{task}.py")
# A line of its own: the swarm's operations are then the same ones on every server (their order
# across servers depends on it; see tasks/swarm.py). Before the hub: its compose project joins
# the swarm's network.
if cluster.in_swarm(host):
    local.include("tasks/swarm.py")
if not node:
    for task in ("hub", "images"):
        local.include(f"tasks/{task}.py")
    if settings.backup_repository is not None:
        local.include("tasks/backup_schedule.py")
