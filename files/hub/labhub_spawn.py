"""
What the lab hub's spawner does beyond DockerSpawner's own options, installed in the hub image and
wired up by jupyterhub_config.py (rendered by labhub from templates/jupyterhub_config.py.j2):

- the spawnable images are the private registry's, read at each spawn (an image an admin pushes is
  offered at once, with no hub restart), newest version first;
- each lab runs as its user's host account (uid, gid 100, the account's other groups), with the
  home and the shares and lab volumes the user's groups give.
"""

from __future__ import annotations

import html
import json
import re
import urllib.request
from pathlib import Path

USERS_GID = 100


def _version_key(tag: str) -> list[tuple[int, int, str]]:
    """Numeric parts compare as numbers: "1.10" is newer than "1.9"."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"[._-]", tag)]


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

    def _get(self, path: str) -> tuple[dict, str]:
        with urllib.request.urlopen(self.internal_url + path, timeout=5) as response:
            return json.load(response), response.headers.get("Link", "")

    def _repositories(self) -> list[str]:
        repositories: list[str] = []
        path: str | None = "/v2/_catalog?n=1000"
        while path:
            body, link = self._get(path)
            repositories += body.get("repositories") or []
            match = re.match(r'<([^>]+)>;\s*rel="next"', link)
            path = match.group(1) if match else None
        return sorted(repositories, key=lambda name: (name != self.default_repository, name))

    def __call__(self, spawner=None) -> dict[str, str]:
        refs = []
        try:
            for repository in self._repositories():
                tags = self._get(f"/v2/{repository}/tags/list")[0].get("tags") or []
                for tag in sorted(tags, key=_version_key, reverse=True):
                    refs.append(f"{self.registry}/{repository}:{tag}")
        except (OSError, ValueError) as e:
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


def mounts_for(mounts: list[dict], groups: list[str]) -> dict[str, dict[str, str]]:
    """Shares and lab volumes a user with these host groups gets: {host_path: {bind, mode}}."""
    return {
        item["host_path"]: {"bind": item["container_path"], "mode": item["mode"]}
        for item in mounts
        if item["groups"] is None or set(item["groups"]) & set(groups)
    }


def pre_spawn_hook(accounts_file: Path, users: dict[str, dict], mounts: list[dict],
                   lab_home: str):
    """
    A ``pre_spawn_hook`` that runs the lab as the user's host account. The accounts file (uid,
    home, groups of each hub user) is written by the deploy and read at each spawn, so account
    changes need no hub restart.
    """

    def hook(spawner) -> None:
        name = spawner.user.name
        accounts = json.loads(Path(accounts_file).read_text())
        if name not in accounts:
            raise RuntimeError(f"{name} has no host account: run the deploy (tasks/users.py)")
        account = accounts[name]
        # Files written in the lab keep the user's host uid, on the home and on the shares.
        spawner.extra_create_kwargs = {"user": f"{account['uid']}:{USERS_GID}"}
        spawner.extra_host_config = {
            "group_add": [str(g) for g in account["gids"] if g != USERS_GID]
        }
        volumes = {account["home"]: {"bind": lab_home, "mode": "rw"}}
        volumes.update(mounts_for(mounts, users[name]["groups"]))
        spawner.volumes = volumes

    return hook
