"""
What the lab hub's spawner does beyond DockerSpawner's own options, installed in the hub image and
wired up by jupyterhub_config.py:

- the spawnable images are the private registry's, read at each spawn (an image an admin pushes is
  offered at once, with no hub restart), newest version first;
- each lab runs as its user's host account (uid, primary group, other groups), with the
  home and the shares and lab volumes the deploy gave the user (settings.json).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from labhub_registry import Registry, RegistryError, version_key


class RegistryImages:
    """
    A callable for ``DockerSpawner.allowed_images``: every image in the private registry, newest
    version first within a repository, the default image's repository first. The registry is
    read on every call; when it cannot be read, only the default image is offered.
    """

    def __init__(self, registry: str, internal_url: str, default_image: str) -> None:
        self.registry = registry  # as the host's engine names images: 127.0.0.1:5000
        self.internal_url = internal_url  # as the hub reaches it on the compose network
        self.default = f"{registry}/{default_image}"
        self.default_repository = default_image.rsplit(":", 1)[0]

    def __call__(self, spawner=None) -> dict[str, str]:
        refs = []
        try:
            registry = Registry(self.internal_url, timeout=5)
            repositories = sorted(registry.catalog(),
                                  key=lambda name: (name != self.default_repository, name))
            for repository in repositories:
                for tag in sorted(registry.tags(repository), key=version_key, reverse=True):
                    refs.append(f"{self.registry}/{repository}:{tag}")
        except RegistryError as e:
            if spawner is not None:
                spawner.log.warning("cannot list the registry's images, offering the default: %s",
                                    e)
        if self.default not in refs:
            refs.insert(0, self.default)
        return {ref: ref for ref in refs}


def image_form(images: RegistryImages):
    """
    An ``options_form`` listing the registry's images each time it is shown (DockerSpawner's own
    form is computed once per user and would miss images pushed later).
    """

    def form(spawner) -> str:
        options = "".join(
            f'<option value="{html.escape(ref)}"{" selected" if ref == spawner.image else ""}>'
            f"{html.escape(ref)}</option>"
            for ref in images(spawner)
        )
        return (
            '<label for="image">Image</label>'
            f'<select class="form-control" name="image" id="image" required autofocus>'
            f"{options}</select>"
        )

    return form


def pre_spawn_hook(accounts_file: Path, users: dict[str, dict], lab_home: str):
    """
    A ``pre_spawn_hook`` that runs the lab as the user's host account, with the mounts the
    deploy gave the user. The accounts file (uid, home, groups of each hub user) is written by
    the deploy and read at each spawn, so account changes need no hub restart.
    """

    def hook(spawner) -> None:
        name = spawner.user.name
        accounts = json.loads(Path(accounts_file).read_text())
        if name not in accounts:
            raise RuntimeError(f"{name} has no host account: run the deploy (tasks/users.py)")
        account = accounts[name]
        # Files written in the lab keep the user's host uid, on the home and on the shares.
        primary, *others = account["gids"]
        spawner.extra_create_kwargs = {"user": f"{account['uid']}:{primary}"}
        spawner.extra_host_config = {"group_add": [str(g) for g in others]}
        spawner.volumes = {account["home"]: {"bind": lab_home, "mode": "rw"},
                           **users[name]["mounts"]}

    return hook
