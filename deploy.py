"""
The whole lab server, top to bottom: Docker, notebook users, network shares, the users' homes
(tasks/homes.py: shared with the lab nodes), the hub stack with its private registry, who gets in
(tasks/logins.py: invitations), then the lab images pushed to that registry. A lab node (inventory
group ``lab_nodes``) gets the first four, then, once the hub server pushed the lab images, those
images pulled from the hub server's registry (tasks/node_images.py). Each task also runs alone:
``pyinfra inventory.py tasks/<task>.py``. Pruning the registry is on demand, not part of this:
``pyinfra inventory.py tasks/registry_prune.py``. With backup_repository set, backups are set up
and scheduled last on the hub server (tasks/backup_schedule.py); ``tasks/backup.py`` backs up on
demand.

With lab nodes, every server joins the lab's swarm after the homes: the hub server manages it
(tasks/swarm.py) once the inventory has lab nodes, or while it still manages one (whose nodes
are then reconciled), and the nodes join as workers.

    pyinfra inventory.py deploy.py
"""

from pyinfra import host, local

from labhub import cluster
from labhub.operations import cluster as lab
from labhub.settings import get_settings

# Validate every setting before the first operation, so bad input changes nothing.
settings = get_settings(host)
node = cluster.is_node(host)

# What a lab needs of every server it runs on. The same task at the same place on every server:
# pyinfra tells operations apart by where they are called from, and orders them across servers so.
for task in ("docker", "users", "shares", "homes"):
    local.include(f"tasks/{task}.py")
# A line of its own: the swarm's operations are then the same ones on every server (their order
# across servers depends on it; see tasks/swarm.py). Before the hub: its compose project joins
# the swarm's network.
if cluster.in_swarm(host):
    local.include("tasks/swarm.py")
if not node:
    for task in ("hub", "logins", "images"):
        local.include(f"tasks/{task}.py")
if settings.with_lab_nodes:
    # One operation on every server: what follows on a node runs after the hub server pushed.
    lab.step(
        name="Every server is set up and the hub server has pushed the lab images",
        done="lab images pushed",
    )
if node:
    local.include("tasks/node_images.py")
elif settings.backup_repository is not None:
    local.include("tasks/backup_schedule.py")
