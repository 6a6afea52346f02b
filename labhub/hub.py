"""
What the hub stack is made of, as pure functions of the settings: the compose project's names,
build contexts and their content hashes, and the data the configuration templates are rendered
with. The same answers in a dry run and a real one.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath

from labhub.settings import ROOT, Settings

PROJECT = "labhub"
NETWORK = "labhub"
HUB_SERVICE = "hub"
REGISTRY_SERVICE = "registry"
# The registry's rendered configuration, under hub_dir.
REGISTRY_CONFIG_FILE = "registry/config.yml"
# Where the registry image keeps its data (the stack mounts a named volume there).
REGISTRY_DATA_PATH = "/var/lib/registry"
# Where each registry major version reads its configuration from.
REGISTRY_CONFIG_PATHS = {
    2: "/etc/docker/registry/config.yml",
    3: "/etc/distribution/config.yml",
}
HUB_REPOSITORY = "labhub/hub"
# Where the registry answers inside the compose network (the hub lists images there).
REGISTRY_INTERNAL_URL = "http://registry:5000"
HUB_CONTEXT = ROOT / "files" / "hub"
LAB_CONTEXT = ROOT / "files" / "lab"
TEMPLATES = ROOT / "templates"
# Every build context gets the build_ca_bundle setting under this name (empty when unset).
CA_FILE = "labhub-build-ca.crt"
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


def registry_config_path(settings: Settings) -> str:
    """Where the registry container reads the rendered config.yml."""
    return REGISTRY_CONFIG_PATHS[registry_major(settings.registry_image)]


def compose_file(settings: Settings) -> str:
    return f"{settings.hub_dir}/compose.yaml"


def remote_path(settings: Settings, *parts: str) -> str:
    return str(PurePosixPath(settings.hub_dir, *parts))


def ca_bundle(settings: Settings) -> bytes:
    """The CA bundle image builds trust, read on the admin's machine (empty when unset)."""
    if settings.build_ca_bundle is None:
        return b""
    return Path(settings.build_ca_bundle).expanduser().read_bytes()


def build_args(settings: Settings, base_image: str) -> dict[str, str]:
    return {"BASE_IMAGE": base_image, "INDEX_URL": settings.pip_index_url or ""}


def context_files(context: Path) -> list[Path]:
    return sorted(p for p in context.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def context_hash(context: Path, ca: bytes, args: dict[str, str]) -> str:
    """A hash of everything a build reads: the context's files, the CA bundle, the build args."""
    digest = hashlib.sha256()
    for path in context_files(context):
        digest.update(path.relative_to(context).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(b"ca\0" + hashlib.sha256(ca).digest())
    for key in sorted(args):
        digest.update(f"{key}={args[key]}\0".encode())
    return digest.hexdigest()


def lab_context(context: str | None) -> Path:
    """A lab image's build context on the admin's machine: files/lab, or the admin's folder
    (made absolute by the settings)."""
    return LAB_CONTEXT if context is None else Path(context)


def hub_image(settings: Settings) -> tuple[str, str]:
    """The hub image's tag and its context hash: the tag names the hash, so a changed context
    is a new image that compose recreates the hub from."""
    digest = context_hash(HUB_CONTEXT, ca_bundle(settings),
                          build_args(settings, settings.hub_base_image))
    return f"{HUB_REPOSITORY}:{digest[:12]}", digest


def container_path(settings: Settings, path: str) -> str:
    """A lab volume's path in lab containers: relative paths are in the notebook user's home
    (as shares' are, ``Settings.share_container_path``)."""
    return str(PurePosixPath(settings.lab_home, path))


def lab_mounts(settings: Settings) -> list[dict]:
    """Shares (at their host mount points) and lab volumes, as lab containers mount them."""
    mounts = []
    for share in settings.shares:
        mounts.append({
            "host_path": share.mountpoint,
            "container_path": settings.share_container_path(share),
            "mode": share.mode,
            "groups": None if share.groups is None else list(share.groups),
        })
    for volume in settings.lab_volumes:
        mounts.append({
            "host_path": volume.host_path,
            "container_path": container_path(settings, volume.container_path),
            "mode": volume.mode,
            "groups": None if volume.groups is None else list(volume.groups),
        })
    return mounts


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


def hub_config_data(settings: Settings) -> dict:
    """The settings jupyterhub_config.py is rendered with."""
    return {
        "users": {u.name: {"groups": list(u.groups)} for u in settings.hub_users},
        "admins": list(settings.hub_admins),
        "min_password_length": settings.min_password_length,
        "network": NETWORK,
        "registry": settings.registry_address,
        "registry_internal": REGISTRY_INTERNAL_URL,
        "default_image": settings.default_image.ref,
        "lab_home": settings.lab_home,
        "mounts": lab_mounts(settings),
        "culler": culler_command(settings),
    }


def local_url(bind: str, port: int) -> str:
    """How the server itself reaches a port published on ``bind``."""
    host = "127.0.0.1" if bind in ("0.0.0.0", "127.0.0.1", "::", "") else bind
    return f"http://{host}:{port}"


def render(template: str, **data) -> str:
    """A template of templates/ rendered as pyinfra's files.template renders it."""
    from pyinfra.api.util import get_template

    return get_template(str(TEMPLATES / template)).render(**data)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()

