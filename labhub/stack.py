"""
The hub stack as pure functions of the settings: the compose project's layout on the host, the
images it builds (what each is built from, and the content hash that names it), and the settings
file the hub reads. The same answers in a dry run and a real one.

On the host, under ``hub_dir``::

    compose.yaml             the project: the hub and the registry
    hub/settings.json        what jupyterhub_config.py (in the hub image) reads
    hub/accounts.json        the hub users' host accounts, read at each spawn
    registry/config.yml      the registry's configuration
    build/<image>/           each image's build context, with labhub-build/ added
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from labhub.facts.compose import compose_command
from labhub.registry import CLIENT_SOURCE_FILE
from labhub.settings import ROOT, Settings

PROJECT = "labhub"
# Lab containers join this network by name to reach the hub.
NETWORK = "labhub"
HUB_SERVICE = "hub"
REGISTRY_SERVICE = "registry"
HUB_REPOSITORY = "labhub/hub"
# Where the registry image keeps its data (the stack mounts a named volume there).
REGISTRY_DATA_PATH = "/var/lib/registry"
# The compose volume of the registry's data (backups take it only with backup_registry).
REGISTRY_VOLUME = "registry-data"
# Where each registry major version reads its configuration from.
REGISTRY_CONFIG_PATHS = {
    2: "/etc/docker/registry/config.yml",
    3: "/etc/distribution/config.yml",
}
# Where the registry answers inside the compose network (the hub lists images there).
REGISTRY_INTERNAL_URL = "http://registry:5000"
REGISTRY_CONFIG = ROOT / "files" / "registry" / "config.yml"
HUB_CONTEXT = ROOT / "files" / "hub"
LAB_CONTEXT = ROOT / "files" / "lab"
# Added to every build context by the deploy: the pip install step both Dockerfiles run, the
# build_ca_bundle setting (empty when unset) and, for the hub, the registry client its spawner
# lists images with. Admins' own lab contexts get it too.
BUILD_SUPPORT = "labhub-build"
PIP_INSTALL = ROOT / "files" / "pip-install.sh"
# The label that carries a build's content hash (what makes a re-run skip the build).
CONTEXT_HASH_LABEL = "org.labhub.context-hash"
# The label that marks an image labhub built, with what it was built as (the hub's repository, a
# lab image's reference): pruning groups builds by it and never touches an image without it.
BUILT_AS_LABEL = "org.labhub.built-as"
# An idle timeout the culler never reaches, when only max_age is set (ten years).
NEVER = 10 * 365 * 24 * 3600


def registry_major(image: str) -> int:
    """
    The distribution major version of a registry image by its tag: ``registry:3.0.0`` -> 3;
    anything else (``registry:2``, ``registry:2.8.3``, a digest, a stand-in) -> 2.
    """
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    match = re.match(r"v?(\d+)", tag)
    return 3 if match and int(match.group(1)) == 3 else 2


@dataclass(frozen=True)
class Stack:
    """The hub's compose project on a host: where its files are, how compose is run on it."""

    dir: str
    registry_url: str
    registry_major: int
    project: str = PROJECT

    @classmethod
    def from_settings(cls, settings: Settings) -> Stack:
        return cls(
            dir=settings.hub_dir,
            registry_url=f"http://{settings.registry_address}",
            registry_major=registry_major(settings.registry_image),
        )

    def path(self, *parts: str) -> str:
        return str(PurePosixPath(self.dir, *parts))

    @property
    def compose_file(self) -> str:
        return self.path("compose.yaml")

    @property
    def registry_config_file(self) -> str:
        return self.path("registry", "config.yml")

    @property
    def registry_config_path(self) -> str:
        """Where the registry container reads its config.yml."""
        return REGISTRY_CONFIG_PATHS[self.registry_major]

    def compose(self, *args: str) -> str:
        """A ``docker compose`` command line for this project, every word quoted."""
        return compose_command(self.compose_file, self.project, *args)


@dataclass(frozen=True)
class Build:
    """One image built on the host: from a context on the admin's machine plus labhub's build
    support files, uploaded to ``remote`` and built as ``image``."""

    image: str
    context: Path
    remote: str
    args: dict[str, str]
    support: dict[str, bytes] = field(repr=False)
    # A hash of everything the build reads: the context's files, the support files and the
    # build arguments (context_hash), read once.
    content_hash: str

    def context_arguments(self) -> dict:
        """The arguments of ``labhub.operations.images.context`` that upload this context."""
        return {"src": str(self.context), "dest": self.remote, "support": self.support}

    def build_arguments(self) -> dict:
        """The arguments of ``labhub.operations.images.built`` that build this image."""
        return {"image": self.image, "context": self.remote, "content_hash": self.content_hash,
                "build_args": self.args}


def context_files(context: Path) -> list[Path]:
    return sorted(p for p in context.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts
                  and p.relative_to(context).parts[0] != BUILD_SUPPORT)


def context_hash(context: Path, support: dict[str, bytes], args: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for path in context_files(context):
        digest.update(path.relative_to(context).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for name in sorted(support):
        digest.update(f"{BUILD_SUPPORT}/{name}\0".encode())
        digest.update(hashlib.sha256(support[name]).digest())
    for key in sorted(args):
        digest.update(f"{key}={args[key]}\0".encode())
    return digest.hexdigest()


def _support(settings: Settings) -> dict[str, bytes]:
    ca = b"" if settings.build_ca_bundle is None else Path(settings.build_ca_bundle).read_bytes()
    return {"pip-install.sh": PIP_INSTALL.read_bytes(), "ca.crt": ca}


def _args(settings: Settings, base_image: str) -> dict[str, str]:
    return {"BASE_IMAGE": base_image, "INDEX_URL": settings.pip_index_url or ""}


def hub_build(settings: Settings) -> Build:
    """The hub image: tagged with its content hash, so that a changed context is a new image
    that compose recreates the hub from."""
    support = {**_support(settings), "labhub_registry.py": CLIENT_SOURCE_FILE.read_bytes()}
    args = _args(settings, settings.hub_base_image)
    digest = context_hash(HUB_CONTEXT, support, args)
    return Build(f"{HUB_REPOSITORY}:{digest[:12]}", HUB_CONTEXT,
                 Stack.from_settings(settings).path("build", "hub"), args, support, digest)


def lab_builds(settings: Settings) -> list[Build]:
    """Each of lab_images, built as ``<registry>/<name>:<version>``."""
    stack = Stack.from_settings(settings)
    support = _support(settings)
    builds = []
    for lab in settings.lab_images:
        context = LAB_CONTEXT if lab.context is None else Path(lab.context)
        args = _args(settings, lab.base_image or settings.lab_base_image)
        builds.append(Build(
            image=f"{settings.registry_address}/{lab.ref}",
            context=context,
            remote=stack.path("build", f"lab-{lab.name.replace('/', '-')}-{lab.version}"),
            args=args,
            support=support,
            content_hash=context_hash(context, support, args),
        ))
    return builds


def hub_dir_problems(settings: Settings, folder: dict | None) -> list[str]:
    """What keeps labhub from owning hub_dir, before any change: a file there, or a folder with
    other things in it and no labhub compose project."""
    if folder is None or folder["kind"] == "missing":
        return []
    if folder["kind"] == "other":
        return [f"hub_dir: {settings.hub_dir} exists and is not a folder"]
    if folder["entries"] and "compose.yaml" not in folder["entries"]:
        return [f"hub_dir: {settings.hub_dir} holds {', '.join(folder['entries'][:5])} and no "
                "labhub compose project: labhub does not take it over; choose a new folder"]
    return []


def culler_command(settings: Settings) -> list[str] | None:
    """The idle culler service's command, or None when idle_timeout and max_age are both 0."""
    if not settings.idle_timeout and not settings.max_age:
        return None
    shortest = min(t for t in (settings.idle_timeout, settings.max_age) if t)
    return [
        "python3", "-m", "jupyterhub_idle_culler",
        # The culler stops every server at --timeout=0, so "never" is a timeout never reached.
        f"--timeout={settings.idle_timeout or NEVER}",
        f"--max-age={settings.max_age}",
        f"--cull-every={max(1, min(600, shortest // 2))}",
    ]


def hub_settings(settings: Settings) -> dict:
    """What the hub reads from ``hub/settings.json`` (files/hub/jupyterhub_config.py): who logs
    in, and what each user's lab mounts besides the home."""
    return {
        "users": {user.name: {"mounts": settings.lab_mounts(user)} for user in settings.hub_users},
        "admins": list(settings.hub_admins),
        "min_password_length": settings.min_password_length,
        "network": NETWORK,
        "registry": settings.registry_address,
        "registry_internal": REGISTRY_INTERNAL_URL,
        "default_image": settings.default_image.ref,
        "lab_home": settings.lab_home,
        "culler": culler_command(settings),
    }


def compose_file_text(settings: Settings, hub_image: str, hub_settings_text: str,
                      registry_config_text: str) -> str:
    """
    The hub's compose project as YAML, dumped from data (nothing is pasted into YAML). Each
    service is labelled with the hash of the configuration file it mounts, so that compose itself
    recreates a service whose file changed, and only that one.
    """
    project = Stack.from_settings(settings)
    services = {
        HUB_SERVICE: {
            # Built on this server from files/hub; the tag is a hash of its build context.
            "image": hub_image,
            "pull_policy": "never",
            "restart": "unless-stopped",
            "ports": [{"host_ip": settings.hub_bind, "published": str(settings.hub_port),
                       "target": 8000}],
            "volumes": [
                # The hub starts each user's lab as a container of this server's engine.
                "/var/run/docker.sock:/var/run/docker.sock",
                "./hub:/etc/labhub:ro",
                # Database, cookie secret and passwords: state, never in the image.
                "hub-data:/srv/jupyterhub/data",
            ],
            "labels": {"org.labhub.config-sha256": sha256(hub_settings_text)},
            "depends_on": [REGISTRY_SERVICE],
        },
        REGISTRY_SERVICE: {
            "image": settings.registry_image,
            "restart": "unless-stopped",
            "ports": [{"host_ip": settings.registry_bind, "published": str(settings.registry_port),
                       "target": 5000}],
            "volumes": [f"./registry/config.yml:{project.registry_config_path}:ro",
                        f"registry-data:{REGISTRY_DATA_PATH}"],
            "labels": {"org.labhub.config-sha256": sha256(registry_config_text)},
        },
    }
    data = {
        "name": project.project,
        "services": services,
        # Lab containers join this network by name to reach the hub.
        "networks": {"default": {"name": NETWORK}},
        "volumes": {"hub-data": {}, "registry-data": {}},
    }
    return ("# The lab hub's compose project, written by labhub (tasks/hub.py) from the "
            "settings:\n# edit the settings, not this file.\n"
            + yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
