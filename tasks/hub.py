"""
The hub stack: a compose project of JupyterHub (FirstUse login, DockerSpawner) and the private
registry its lab images come from, up and answering.

    pyinfra inventory.py tasks/hub.py
"""

import json
from io import StringIO

from pyinfra import host
from pyinfra.api.exceptions import OperationError
from pyinfra.operations import apt, files

from labhub import stack
from labhub.facts.folders import Folders
from labhub.operations import accounts, compose, images
from labhub.settings import get_settings

settings = get_settings(host)
project = stack.Stack.from_settings(settings)
hub = stack.hub_build(settings)
hub_settings = json.dumps(stack.hub_settings(settings), indent=2, sort_keys=True) + "\n"
registry_config = stack.REGISTRY_CONFIG.read_text()
compose_yaml = stack.compose_file_text(settings, hub.image, hub_settings, registry_config)
# Refused before any change, like a bad setting.
problems = stack.hub_dir_problems(
    settings, host.get_fact(Folders, paths=[settings.hub_dir]).get(settings.hub_dir))
if problems:
    raise OperationError(f"{host.name}: " + "; ".join(problems))

apt.packages(
    name="Install curl (registry queries and health checks)",
    packages=["curl"],
    cache_time=24 * 3600,
)

for folder in ("", "hub", "registry", "build"):
    files.directory(
        name=f"Create {project.path(folder)}",
        path=project.path(folder),
        mode="0755",
    )

# The hub image: built here, from the official JupyterHub image, whenever its context changes.
images.context(name=f"Upload the hub image's build context ({hub.context})",
               **hub.context_arguments())
hub_build = images.built(name=f"Build the hub image {hub.image}",
                         built_as=stack.HUB_REPOSITORY, **hub.build_arguments())

# What the hub's configuration reads, mounted read-only; its state lives in the hub-data volume.
files.put(
    name="Write the hub's settings.json",
    src=StringIO(hub_settings),
    dest=project.path("hub", "settings.json"),
    mode="0644",
)
accounts.record(
    name="Record the hub users' host accounts (uids the labs run as)",
    path=project.path("hub", "accounts.json"),
    accounts={user.name: settings.account_name(user.name) for user in settings.hub_users},
)
files.put(
    name="Upload the registry's config.yml (deletes enabled)",
    src=StringIO(registry_config),
    dest=project.registry_config_file,
    mode="0644",
)
files.put(
    name="Write compose.yaml",
    src=StringIO(compose_yaml),
    dest=project.compose_file,
    mode="0644",
)

compose.up(
    name="Bring up the hub stack (docker compose up)",
    compose_file=project.compose_file,
    project=project.project,
    content=compose_yaml,
)
compose.healthy(
    name="Check the hub and the registry answer",
    checks={
        "hub": (f"{settings.hub_url}/hub/health", stack.HUB_SERVICE),
        "registry": (f"{project.registry_url}/v2/", stack.REGISTRY_SERVICE),
    },
    compose_file=project.compose_file,
    project=project.project,
)
# Once the hub runs the new image: the one before it stays as the rollback target.
images.pruned(
    name="Remove hub images older than the previous one",
    built_as=stack.HUB_REPOSITORY,
    current=hub.image,
    _if=hub_build.did_change,
)
