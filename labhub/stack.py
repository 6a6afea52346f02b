"""
The hub stack as pure functions of the settings: the compose project's layout on the host, the
images it builds (what each is built from, and the content hash that names it), and the settings
file the hub reads. The same answers in a dry run and a real one.

On the host, under ``hub_dir``::

    compose.yaml             the project: the hub, the registry and the HTTPS proxy
    hub/settings.json        what jupyterhub_config.py (in the hub image) reads
    hub/accounts.json        the hub users' host accounts, read at each spawn
    hub/invites.json         the invitations of users with no password yet (hashes, root only)
    registry/config.yml      the registry's configuration
    proxy/caddy.json         the proxy's configuration (Caddy's own JSON), with tls "files"
                             its cert.pem and key.pem (root only), with tls "acme" acme-ca-root.pem
    proxy/local-ca-root.crt  with tls "internal": the root certificate to give users' browsers
    build/<image>/           each image's build context, with labhub-build/ added
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from labhub import logins, node_registry
from labhub.cluster import SWARM_NETWORK
from labhub.registry import CLIENT_SOURCE_FILE
from labhub.settings import ROOT, Settings
from labhub.shares import MOUNT_WAIT

# Lab containers join this network by name to reach the hub.
NETWORK = "labhub"
# The folders labhub makes in hub_dir.
STACK_FOLDERS = frozenset({"hub", "registry", "build", "proxy"})
# The compose project's file in hub_dir: where it is, there is a hub (hub_dir_state).
COMPOSE_FILE = "compose.yaml"
# Where the proxy's folder of hub_dir is mounted, read-only.
PROXY_CONFIG_DIR = "/etc/caddy/labhub"
# Where the official Caddy image keeps certificates, keys and its local CA ($XDG_DATA_HOME).
PROXY_DATA_PATH = "/data"
HUB_REPOSITORY = "labhub/hub"
# What labhub keeps on a host outside hub_dir: the IDs of the images it built, the stack's files
# from before a hub upgrade, and the mark of one that was rolled back.
STATE_DIR = "/var/lib/labhub"
# The token a monitoring system reads the hub's /hub/metrics with (metrics_token): made on the
# server, root only, and where the hub container reads it (mounted read-only).
METRICS_TOKEN_FILE = "/etc/labhub/metrics-token"
METRICS_TOKEN_PATH = "/run/secrets/labhub-metrics-token"
# Where the hub container sees the host's shares: each folder holding a share's mount point,
# read-only, with the host's mounts in it propagated (rslave), so that the hub sees whether a
# share is mounted when a lab starts. Their folders, not the mount points themselves: binding an
# automount whose mount fails is refused, and would keep the hub from starting.
SHARES_VIEW = "/run/labhub/host"
# Where the registry image keeps its data (the stack mounts a named volume there).
REGISTRY_DATA_PATH = "/var/lib/registry"
# The compose volume of the hub's state (database, cookie secret, passwords, logins.json).
HUB_VOLUME = "hub-data"
# The compose volume of the registry's data (backups take it only with backup_registry).
REGISTRY_VOLUME = "registry-data"
# Where each registry major version reads its configuration from.
REGISTRY_CONFIG_PATHS = {
    2: "/etc/docker/registry/config.yml",
    3: "/etc/distribution/config.yml",
}
# Where the registry answers inside the compose network (the hub lists images there, the proxy
# serves it to lab nodes from there).
REGISTRY_INTERNAL_PORT = 5000
REGISTRY_INTERNAL_URL = f"http://registry:{REGISTRY_INTERNAL_PORT}"
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
# With lab nodes: the token the deploy asks the hub's API with (to stop the labs of a node that
# leaves the swarm), generated on the hub server, root only, and where the hub container reads it.
# The hub gives it only the scopes of HUB_API_SCOPES (files/hub/jupyterhub_config.py).
HUB_API_TOKEN_FILE = "/etc/labhub/hub-api-token"
HUB_API_TOKEN_PATH = "/run/secrets/labhub-deploy-token"
HUB_API_SERVICE = "labhub-deploy"
HUB_API_SCOPES = ["delete:servers"]
# --- The engine filter (files/hub/labhub_engine_filter.py): the one service with the socket ---
# The hub's own network with it, which labs are not on (internal: it reaches nothing outside).
ENGINE_NETWORK = "labhub-engine"
ENGINE_PORT = 2375
# The hub's login to the filter (a netrc file, made on the server once, root only), and where
# both containers mount it: requests, under docker-py, sends it with every call (NETRC).
ENGINE_LOGIN_FILE = "/etc/labhub/engine/netrc"
ENGINE_LOGIN_PATH = "/etc/labhub-engine/netrc"
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
class HubImage:
    """
    The hub image's own layout: where its state volume is mounted, the files it keeps there, the
    port it answers on and the configuration it runs. The deploy reads and checks these from the
    outside; the image reads them from settings.json (``hub_settings``), so both say the same.
    """

    data_path: str = "/srv/jupyterhub/data"
    database: str = "jupyterhub.sqlite"
    # FirstUseAuthenticator's passwords.
    passwords: str = "passwords.dbm"
    # configurable-http-proxy's, in the hub container.
    port: int = 8000
    # files/hub/Dockerfile's CMD: it is copied there when the image is built.
    config: str = "/usr/local/lib/labhub/jupyterhub_config.py"

    @property
    def database_path(self) -> str:
        return f"{self.data_path}/{self.database}"

    @property
    def passwords_path(self) -> str:
        return f"{self.data_path}/{self.passwords}"

    @property
    def health_url(self) -> str:
        """The hub's health URL inside its own container."""
        return f"http://127.0.0.1:{self.port}/hub/health"

    @property
    def api_url(self) -> str:
        """The hub's REST API inside its own container."""
        return f"http://127.0.0.1:{self.port}/hub/api"

    def settings(self, service: str) -> dict:
        """What ``hub_settings`` hands the image, as files/hub/jupyterhub_config.py reads it."""
        return {
            "data_path": self.data_path,
            "database": self.database,
            "passwords": self.passwords,
            "port": self.port,
            "hub_service": service,
        }


@dataclass(frozen=True)
class Stack:
    """The hub's compose project on a host: where its files are, its services, how the hub image
    inside it is laid out. What operations on the stack take, as one argument."""

    dir: str
    registry_url: str
    registry_major: int
    project: str = "labhub"
    hub_service: str = "hub"
    registry_service: str = "registry"
    proxy_service: str = "proxy"
    engine_service: str = "engine"
    hub: HubImage = HubImage()

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
        return self.path(COMPOSE_FILE)

    @property
    def registry_config_file(self) -> str:
        return self.path("registry", "config.yml")

    @property
    def registry_config_path(self) -> str:
        """Where the registry container reads its config.yml."""
        return REGISTRY_CONFIG_PATHS[self.registry_major]

    @property
    def hub_volume(self) -> str:
        """The engine's name of the hub's state volume (compose's ``<project>_<volume>``)."""
        return f"{self.project}_{HUB_VOLUME}"

    @property
    def hub_previous_dir(self) -> str:
        """Where the stack's files as they were before a hub upgrade are kept, for a failed
        upgrade to go back to (``hub_database.files_kept``)."""
        return f"{STATE_DIR}/hub-previous"

    @property
    def hub_rolled_back_file(self) -> str:
        """Left by a hub upgrade that was rolled back (``labhub.facts.hub_database``), until the
        hub runs the image the deploy builds."""
        return f"{STATE_DIR}/hub-rolled-back"


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
        return {
            "image": self.image,
            "context": self.remote,
            "content_hash": self.content_hash,
            "build_args": self.args,
        }


def context_files(context: Path) -> list[Path]:
    return sorted(
        p
        for p in context.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.relative_to(context).parts[0] != BUILD_SUPPORT
    )


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
    support = {
        **_support(settings),
        "labhub_registry.py": CLIENT_SOURCE_FILE.read_bytes(),
        "labhub_logins.py": Path(logins.__file__).read_bytes(),
    }
    args = _args(settings, settings.hub_base_image)
    digest = context_hash(HUB_CONTEXT, support, args)
    stack = Stack.from_settings(settings)
    return Build(
        f"{HUB_REPOSITORY}:{digest[:12]}",
        HUB_CONTEXT,
        stack.path("build", "hub"),
        args,
        support,
        digest,
    )


def lab_builds(settings: Settings) -> list[Build]:
    """Each of lab_images, built as ``<registry>/<name>:<version>``."""
    stack = Stack.from_settings(settings)
    support = _support(settings)
    builds = []
    for lab in settings.lab_images:
        context = LAB_CONTEXT if lab.context is None else Path(lab.context)
        args = _args(settings, lab.base_image or settings.lab_base_image)
        builds.append(
            Build(
                image=f"{settings.registry_address}/{lab.ref}",
                context=context,
                remote=stack.path("build", lab.build_folder),
                args=args,
                support=support,
                content_hash=context_hash(context, support, args),
            )
        )
    return builds


def hub_dir_state(folder: dict | None) -> str:
    """
    The one answer to "is there a hub here", for every task and the backup program: what
    ``hub_dir`` is, from ``Folders`` or ``folder_of`` (its kind and entries).

    - ``"hub"``: it holds ``compose.yaml`` (labhub's compose project): a hub lives here;
    - ``"free"``: missing, empty, or only labhub's own folders (a first run cut short);
    - ``"foreign"``: other things and no compose project: not labhub's;
    - ``"file"``: it is not a folder.
    """
    if folder is None or folder["kind"] == "missing":
        return "free"
    if folder["kind"] == "other":
        return "file"
    if COMPOSE_FILE in folder["entries"]:
        return "hub"
    return "foreign" if set(folder["entries"]) - STACK_FOLDERS else "free"


def hub_dir_problems(settings: Settings, folder: dict | None, restore: bool = False) -> list[str]:
    """What keeps labhub from owning hub_dir, before any change (``hub_dir_state``): a file there,
    or a folder with other things in it and no labhub compose project; for a restore
    (``restore``), a hub already there too."""
    state = hub_dir_state(folder)
    if state == "file":
        return [f"hub_dir: {settings.hub_dir} exists and is not a folder"]
    if state == "foreign":
        assert folder is not None
        return [
            f"hub_dir: {settings.hub_dir} holds {', '.join(folder['entries'][:5])} and no "
            "labhub compose project: labhub does not take it over; choose a new folder"
        ]
    if state == "hub" and restore:
        return [
            f"hub_dir: {settings.hub_dir} holds a labhub compose project: this server has a hub "
            "already, and a restore is for a fresh server; labhub does not overwrite a hub's state"
        ]
    return []


def culler_command(settings: Settings) -> list[str] | None:
    """The idle culler service's command, or None when idle_timeout and max_age are both 0."""
    if not settings.idle_timeout and not settings.max_age:
        return None
    shortest = min(t for t in (settings.idle_timeout, settings.max_age) if t)
    return [
        "python3",
        "-m",
        "jupyterhub_idle_culler",
        # The culler stops every server at --timeout=0, so "never" is a timeout never reached.
        f"--timeout={settings.idle_timeout or NEVER}",
        f"--max-age={settings.max_age}",
        f"--cull-every={max(1, min(600, shortest // 2))}",
    ]


def lab_limits(settings: Settings, server_gpus: list[dict]) -> dict:
    """What the hub gives each group's labs (files/hub/labhub_spawn.py, LabLimits): limits and
    guarantees in bytes and CPUs, GPU requests, GPU labs' /dev/shm, and the server's GPUs
    (``labhub.facts.gpus.Gpus``) it hands out by device id."""
    return {
        "groups": settings.group_limits,
        "gpus": {
            group: list(request) if isinstance(request, tuple) else request
            for group, request in settings.lab_gpus.items()
        },
        "shm_size": settings.lab_shm_size,
        "server_gpus": server_gpus,
    }


def hub_settings(settings: Settings, server_gpus: list[dict] | None = None) -> dict:
    """What the hub reads from ``hub/settings.json`` (files/hub/jupyterhub_config.py): who logs
    in, what each user's lab mounts besides the home, its limits and GPUs, and the image's own
    layout; with lab nodes, the registry the nodes pull from and how labs run on the swarm
    (``swarm_settings``)."""
    stack = Stack.from_settings(settings)
    hub = {
        "limits": lab_limits(settings, server_gpus or []),
        "users": {user.name: {"mounts": settings.lab_mounts(user)} for user in settings.hub_users},
        "admins": list(settings.hub_admins),
        "min_password_length": settings.min_password_length,
        "logins": {
            "first_login": settings.first_login,
            "failed_logins": settings.failed_logins,
            "failed_login_wait": settings.failed_login_wait,
            # Beside this file (the deploy's, root only), and in the data volume (the hub's).
            "invites": logins.INVITES_FILE,
            "state": logins.STATE_FILE,
        },
        "network": NETWORK,
        "registry": settings.registry_address,
        "registry_internal": REGISTRY_INTERNAL_URL,
        "default_image": settings.default_image.ref,
        "lab_home": settings.lab_home,
        "culler": culler_command(settings),
        # Behind the HTTPS proxy: the URL users open, which makes the hub's cookies secure.
        "public_url": None if settings.tls == "off" else settings.hub_url,
        "metrics_token": METRICS_TOKEN_PATH if settings.metrics_token else None,
        # Each lab mounts only the shares mounted when it starts (labhub_lab.LabSpawner); with
        # lab nodes, labs run elsewhere than the hub and get every share.
        "shares": [
            {"name": share.name, "mountpoint": share.mountpoint, "seen_at": share_view(share)}
            for share in (() if settings.with_lab_nodes else settings.shares)
        ],
        "share_wait": MOUNT_WAIT,
        "stack": stack.hub.settings(stack.hub_service),
        # What the engine filter requires of each lab, and the spawners give it.
        "engine": {"pids_limit": settings.lab_pids_limit},
    }
    if settings.with_lab_nodes:
        # The registry as the nodes pull from it (swarm services' images are
        # "<address>/<name>:<version>"), and the Docker client configuration in the hub
        # container that logs in to it (docker-py sends its login with each service it
        # creates). Absent on one server, whose settings.json stays as it was.
        hub["node_registry"] = {
            "address": node_registry.address(settings),
            "docker_config": f"{node_registry.HUB_DOCKER_CONFIG}/config.json",
        }
        hub["swarm"] = swarm_settings(settings)
    return hub


def share_folders(settings: Settings) -> list[str]:
    """The folders that hold the shares' mount points, none inside another (the hub sees them at
    ``share_view``)."""
    parents = sorted({str(PurePosixPath(share.mountpoint).parent) for share in settings.shares})
    return [
        folder
        for folder in parents
        if not any(
            PurePosixPath(folder).is_relative_to(other) for other in parents if other != folder
        )
    ]


def share_view(share_or_path) -> str:
    """Where the hub container sees a host path (a share's mount point, or its folder)."""
    path = getattr(share_or_path, "mountpoint", share_or_path)
    return str(PurePosixPath(SHARES_VIEW) / path.lstrip("/"))


# --- With lab nodes: labs as swarm services (files/hub/labhub_service.py) ---
def swarm_settings(settings: Settings) -> dict:
    """How the hub runs labs on the swarm: the network they share with it, where each hub
    user's labs may run (``{user: {"group", "constraints"}}``, users placed by lab_placement),
    and the deploy's own service of the hub's API (its token's file in the hub container)."""
    placement = {}
    for user in settings.hub_users:
        placed = settings.lab_placement_of(user)
        if placed is not None:
            placement[user.name] = {"group": placed[0], "constraints": list(placed[1])}
    return {
        "network": SWARM_NETWORK,
        "placement": placement,
        "deploy": {
            "service": HUB_API_SERVICE,
            "token_file": HUB_API_TOKEN_PATH,
            "scopes": HUB_API_SCOPES,
        },
    }


def compose_file_text(
    settings: Settings,
    hub_image: str,
    hub_settings_text: str,
    registry_config_text: str,
    proxy_digest: str = "",
) -> str:
    """
    The hub's compose project as YAML, dumped from data (nothing is pasted into YAML). Each
    service is labelled with the hash of the configuration file it mounts, so that compose itself
    recreates a service whose file changed, and only that one. With lab nodes, the
    hub is on the swarm's overlay network too, which labs on every node run on.
    """
    stack = Stack.from_settings(settings)
    services = {
        stack.hub_service: {
            # Built on this server from files/hub; the tag is a hash of its build context.
            "image": hub_image,
            "pull_policy": "never",
            "restart": "unless-stopped",
            # The hub starts each user's lab through the engine filter, never the socket.
            "environment": {
                "DOCKER_HOST": f"tcp://{stack.engine_service}:{ENGINE_PORT}",
                "NETRC": ENGINE_LOGIN_PATH,
            },
            "volumes": [
                f"{ENGINE_LOGIN_FILE}:{ENGINE_LOGIN_PATH}:ro",
                "./hub:/etc/labhub:ro",
                # Database, cookie secret and passwords: state, never in the image.
                f"{HUB_VOLUME}:{stack.hub.data_path}",
            ],
            "labels": {"org.labhub.config-sha256": sha256(hub_settings_text)},
            # The filter answering first: a hub that starts without it would take its running
            # labs for stopped.
            "depends_on": {
                stack.registry_service: {"condition": "service_started"},
                stack.engine_service: {"condition": "service_healthy"},
            },
        },
        # The same image, another program: what labs the hub may ask of the engine.
        stack.engine_service: {
            "image": hub_image,
            "pull_policy": "never",
            "restart": "unless-stopped",
            "command": ["python3", "-m", "labhub_engine_filter"],
            "environment": {"NETRC": ENGINE_LOGIN_PATH, "LABHUB_ENGINE_PORT": str(ENGINE_PORT)},
            "volumes": [
                "/var/run/docker.sock:/var/run/docker.sock",
                f"{ENGINE_LOGIN_FILE}:{ENGINE_LOGIN_PATH}:ro",
                "./hub:/etc/labhub:ro",
            ],
            "networks": [ENGINE_NETWORK],
            "healthcheck": {
                "test": [
                    "CMD",
                    "python3",
                    "-c",
                    f"import socket; socket.create_connection(('127.0.0.1', {ENGINE_PORT}), 2)",
                ],
                "interval": "5s",
                "timeout": "5s",
            },
        },
        stack.registry_service: {
            "image": settings.registry_image,
            "restart": "unless-stopped",
            "ports": [
                {
                    "host_ip": settings.registry_bind,
                    "published": str(settings.registry_port),
                    "target": REGISTRY_INTERNAL_PORT,
                }
            ],
            "volumes": [
                f"./registry/config.yml:{stack.registry_config_path}:ro",
                f"registry-data:{REGISTRY_DATA_PATH}",
            ],
            "labels": {"org.labhub.config-sha256": sha256(registry_config_text)},
        },
    }
    volumes: dict[str, dict] = {HUB_VOLUME: {}, "registry-data": {}}
    if not settings.with_lab_nodes:
        services[stack.hub_service]["volumes"] += [
            {
                "type": "bind",
                "source": folder,
                "target": share_view(folder),
                "read_only": True,
                "bind": {"propagation": "rslave"},
            }
            for folder in share_folders(settings)
        ]
    if settings.metrics_token:
        services[stack.hub_service]["volumes"].append(
            f"{METRICS_TOKEN_FILE}:{METRICS_TOKEN_PATH}:ro"
        )
    if settings.tls == "off":
        services[stack.hub_service]["ports"] = [
            {
                "host_ip": settings.hub_bind,
                "published": str(settings.hub_port),
                "target": stack.hub.port,
            }
        ]
    else:
        services[stack.proxy_service] = {
            "image": settings.proxy_image,
            "restart": "unless-stopped",
            "command": ["caddy", "run", "--config", f"{PROXY_CONFIG_DIR}/caddy.json"],
            # Published as they are inside, so that redirects and ACME challenges name them.
            "ports": [
                {"host_ip": settings.hub_bind, "published": str(port), "target": port}
                for port in (settings.https_port, settings.http_port)
            ],
            "volumes": [
                f"./proxy:{PROXY_CONFIG_DIR}:ro",
                # Certificates, ACME account and local CA: kept across re-deploys.
                f"proxy-data:{PROXY_DATA_PATH}",
                "proxy-config:/config",
            ],
            "labels": {"org.labhub.config-sha256": proxy_digest},
            "depends_on": [stack.hub_service],
        }
        volumes.update({"proxy-data": {}, "proxy-config": {}})
        if settings.with_lab_nodes:
            proxy = services[stack.proxy_service]
            proxy["ports"].append(
                {
                    "host_ip": settings.hub_bind,
                    "published": str(settings.node_registry_port),
                    "target": settings.node_registry_port,
                }
            )
            # The nodes' login's hash (made on the server, root only), read by Caddy as
            # {env.…}: sourced by the proxy's shell, since compose's env_file would put it in
            # the container's configuration, whose hash compose's own config command does not
            # compute alike (every run would recreate the proxy).
            proxy["volumes"].append(
                f"{node_registry.PROXY_ENV_FILE}:{node_registry.PROXY_ENV_PATH}:ro"
            )
            proxy["command"] = [
                "sh",
                "-c",
                'set -a && . "$0" && set +a && exec "$@"',
                node_registry.PROXY_ENV_PATH,
                *proxy["command"],
            ]
            # The same login, for the services the hub creates on the nodes (registry auth).
            services[stack.hub_service]["volumes"].append(
                f"{node_registry.DOCKER_CONFIG}:{node_registry.HUB_DOCKER_CONFIG}:ro"
            )
    networks: dict[str, dict] = {
        "default": {"name": NETWORK},
        ENGINE_NETWORK: {"name": ENGINE_NETWORK, "internal": True},
    }
    services[stack.hub_service]["networks"] = ["default", ENGINE_NETWORK]
    # --- With lab nodes: the hub on the swarm's network (made by the swarm's task), beside its own
    if settings.with_lab_nodes:
        services[stack.hub_service]["networks"].append(SWARM_NETWORK)
        # The deploy's token for the hub's API (tasks/hub.py makes it before the hub starts).
        services[stack.hub_service]["volumes"].append(
            f"{HUB_API_TOKEN_FILE}:{HUB_API_TOKEN_PATH}:ro"
        )
        networks[SWARM_NETWORK] = {"name": SWARM_NETWORK, "external": True}
    data = {
        "name": stack.project,
        "services": services,
        # Lab containers join this network by name to reach the hub.
        "networks": networks,
        "volumes": volumes,
    }
    return (
        "# The lab hub's compose project, written by labhub (tasks/hub.py) from the "
        "settings:\n# edit the settings, not this file.\n"
        + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    )


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
