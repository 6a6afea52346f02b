"""
What the lab hub's spawner does beyond DockerSpawner's own options, installed in the hub image and
wired up by jupyterhub_config.py:

- the spawnable images are the private registry's, read at each spawn (an image an admin pushes is
  offered at once, with no hub restart), newest version first;
- each lab runs as its user's host account (uid, primary group, other groups), with the
  home and the shares and lab volumes the deploy gave the user (settings.json);
- the spawn form names images as people do (``lab 1.0``) with the OCI title and description
  labels each image carries;
- the lab's /etc/passwd and /etc/group name that account (``account_files``; the spawner in
  labhub_lab.py writes them into each new container).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from labhub_registry import Registry, RegistryError, describe_manifest, version_key

# The standard OCI labels an admin describes a lab image with, in its Dockerfile.
TITLE_LABEL = "org.opencontainers.image.title"
DESCRIPTION_LABEL = "org.opencontainers.image.description"


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
            repositories = sorted(
                registry.catalog(), key=lambda name: (name != self.default_repository, name)
            )
            for repository in repositories:
                for tag in sorted(registry.tags(repository), key=version_key, reverse=True):
                    refs.append(f"{self.registry}/{repository}:{tag}")
        except RegistryError as e:
            if spawner is not None:
                spawner.log.warning(
                    "cannot list the registry's images, offering the default: %s", e
                )
        if self.default not in refs:
            refs.insert(0, self.default)
        return {ref: ref for ref in refs}

    def described(self, spawner=None) -> list[dict]:
        """
        The images of ``__call__`` in its order, each with its name as people say it (``lab
        1.0``) and the title and description labels its image carries (empty when unreadable).
        """
        refs = list(self(spawner))
        registry = Registry(self.internal_url, timeout=5)

        def labels(ref: str) -> dict:
            repository, tag = ref[len(self.registry) + 1 :].rsplit(":", 1)
            try:
                return image_labels(registry, repository, tag)
            except (RegistryError, ValueError, KeyError, TypeError) as e:
                if spawner is not None:
                    spawner.log.warning("cannot read the labels of %s: %s", ref, e)
                return {}

        return [
            {
                "ref": ref,
                "name": image_name(ref),
                "title": found.get(TITLE_LABEL, ""),
                "description": found.get(DESCRIPTION_LABEL, ""),
            }
            for ref, found in zip(refs, registry.map(labels, refs))
        ]


def image_name(ref: str) -> str:
    """``127.0.0.1:5000/lab:1.0`` as people name it: ``lab 1.0``."""
    repository, tag = ref.split("/", 1)[-1].rsplit(":", 1)
    return f"{repository} {tag}"


def image_labels(registry: Registry, repository: str, tag: str) -> dict:
    """The labels of an image's config; of its first platform image when the tag is an index."""
    _, media_type, body, size = registry.manifest(repository, tag)
    record = describe_manifest(media_type, body, size)
    if record["kind"] == "index":
        children = [c for c in record["children"] if c["digest"] and not c["attestation"]]
        if not children:
            return {}
        _, media_type, body, size = registry.manifest(repository, children[0]["digest"])
        record = describe_manifest(media_type, body, size)
    if not record["config"]:
        return {}
    config = registry.blob_json(repository, record["config"]["digest"]) or {}
    return (config.get("config") or {}).get("Labels") or {}


def image_form(images: RegistryImages):
    """
    An ``options_form`` listing the registry's images each time it is shown (DockerSpawner's own
    form is computed once per user and would miss images pushed later): one choice per image,
    by its name, with its title and description, the default image chosen.
    """

    def form(spawner) -> str:
        choices = []
        for number, image in enumerate(images.described(spawner)):
            ref, field = image["ref"], f"image-{number}"
            # The default, not the last image tried: after a failed spawn the form offers it again.
            checked = " checked" if ref == images.default else ""
            title = (
                f' – <span class="labhub-image-title">{html.escape(image["title"])}</span>'
                if image["title"]
                else ""
            )
            description = (
                f'<div class="labhub-image-description form-text">'
                f"{html.escape(image['description'])}</div>"
                if image["description"]
                else ""
            )
            choices.append(
                f'<div class="form-check labhub-image">'
                f'<input class="form-check-input" type="radio" name="image" id="{field}" '
                f'value="{html.escape(ref)}" required{checked}>'
                f'<label class="form-check-label" for="{field}">'
                f'<strong class="labhub-image-name">{html.escape(image["name"])}</strong>{title}'
                f"</label>{description}</div>"
            )
        return "<fieldset><legend>Image</legend>" + "".join(choices) + "</fieldset>"

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
        spawner.volumes = {
            account["home"]: {"bind": lab_home, "mode": "rw"},
            **users[name]["mounts"],
        }
        # What the lab's /etc/passwd and /etc/group say of the user (labhub_lab.LabSpawner).
        spawner.lab_account = {
            "name": account["name"],
            "uid": account["uid"],
            "groups": list(zip(account["groups"], account["gids"])),
            "gecos": name,
            "home": lab_home,
        }

    return hook


def account_files(passwd: str, group: str, account: dict) -> tuple[str, str]:
    """
    An image's /etc/passwd and /etc/group with the lab user's account in them: their entry for
    the account's uid or name replaced, the account added to its groups (by gid; a group the image
    lacks is added under its host name). The image's other accounts stay, so files it ships keep
    their owners' names. The login shell is bash when the image's accounts use it.

    ``account``: ``{"name", "uid", "groups": [(name, gid), ...] primary first, "gecos", "home"}``
    """
    name, uid = account["name"], str(account["uid"])
    groups = [(group_name, str(gid)) for group_name, gid in account["groups"]]
    shell = "/bin/bash" if "/bin/bash" in passwd else "/bin/sh"
    passwd_lines = [
        line
        for line in passwd.splitlines()
        if line.strip()
        and line.split(":")[0] != name
        and (line.split(":") + ["", "", ""])[2] != uid
    ]
    passwd_lines.append(
        ":".join((name, "x", uid, groups[0][1], account["gecos"], account["home"], shell))
    )

    group_lines = []
    seen = set()
    names = set()
    wanted = dict((gid, group_name) for group_name, gid in groups)
    for line in group.splitlines():
        if not line.strip():
            continue
        fields = (line.split(":") + ["", "", "", ""])[:4]
        names.add(fields[0])
        members = [m for m in fields[3].split(",") if m and m != name]
        if fields[2] in wanted and fields[2] not in seen:
            seen.add(fields[2])
            members.append(name)
        group_lines.append(":".join(fields[:3] + [",".join(members)]))
    for group_name, gid in groups:
        if gid not in seen:
            seen.add(gid)
            # A host group whose name the image gives another gid keeps its gid under a new name.
            label = group_name if group_name not in names else f"{group_name}-{gid}"
            group_lines.append(":".join((label, "x", gid, name)))
    return "\n".join(passwd_lines) + "\n", "\n".join(group_lines) + "\n"
