"""
The hub stack: a compose project of JupyterHub (FirstUse login, DockerSpawner) and the private
registry its lab images come from, up and answering.

    pyinfra inventory.py tasks/hub.py
"""

import json

from pyinfra import host
from pyinfra.api.exceptions import OperationError

from labhub import stack
from labhub.facts import read
from labhub.facts.tree import FileTree, folder_of
from labhub.operations import accounts, compose, images, packages, tree
from labhub.settings import get_settings

settings = get_settings(host)
project = stack.Stack.from_settings(settings)
hub = stack.hub_build(settings)
hub_settings = json.dumps(stack.hub_settings(settings), indent=2, sort_keys=True) + "\n"
registry_config = stack.REGISTRY_CONFIG.read_text()
compose_yaml = stack.compose_file_text(settings, hub.image, hub_settings, registry_config)
# Refused before any change, like a bad setting.
problems = stack.hub_dir_problems(
    settings, folder_of(read(host, FileTree, path=settings.hub_dir), settings.hub_dir))
if problems:
    raise OperationError(f"{host.name}: " + "; ".join(problems))

packages.installed(
    name="Install curl (registry queries and health checks)",
    packages=["curl"],
    cache_time=24 * 3600,
)

# Everything under hub_dir is read in one command (tree.FileTree) and only what differs is
# written: the files compose and the hub read (the hub's settings.json is mounted read-only; its
# state lives in the hub-data volume), and below, the build contexts.
tree.written(
    name="Write the hub's files: compose.yaml, hub/settings.json, registry/config.yml",
    root=project.dir,
    folders=[project.path(folder) for folder in ("", "hub", "registry", "build")],
    files={
        project.path("hub", "settings.json"): hub_settings,
        project.registry_config_file: registry_config,
        project.compose_file: compose_yaml,
    },
)

# The hub image: built here, from the official JupyterHub image, whenever its context changes.
images.context(name=f"Upload the hub image's build context ({hub.context})",
               **hub.context_arguments())
images.built(name=f"Build the hub image {hub.image}", **hub.build_arguments())

accounts.record(
    name="Record the hub users' host accounts (uids the labs run as)",
    path=project.path("hub", "accounts.json"),
    accounts={user.name: settings.account_name(user.name) for user in settings.hub_users},
    root=project.dir,
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
