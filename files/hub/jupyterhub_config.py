# JupyterHub configuration of the lab hub, shipped in the hub image. It reads the settings the
# deploy writes to /etc/labhub/settings.json (labhub.stack.hub_settings): edit the inventory,
# not this file or that one.
import html
import json
import os
from pathlib import Path

from labhub_spawn import LabLimits, RegistryImages, image_form, pre_spawn_hook

# Where compose mounts the deploy's hub/ folder (LABHUB_CONFIG_DIR: elsewhere, as in tests).
SETTINGS_DIR = Path(os.environ.get("LABHUB_CONFIG_DIR", "/etc/labhub"))
SETTINGS = json.loads((SETTINGS_DIR / "settings.json").read_text())
# Host accounts of the hub users ({"alice": {"uid": 1001, "home": ..., "gids": [...]}}), written
# by the deploy once the accounts exist, and read at each spawn.
ACCOUNTS_FILE = SETTINGS_DIR / "accounts.json"
# This image's own layout, as the deploy knows it (labhub.stack.HubImage): its state volume, the
# files there, the proxy's port, and the compose service labs reach the hub by.
STACK = SETTINGS["stack"]
DATA = STACK["data_path"]

c = get_config()  # noqa: F821

# --- The hub: state in the data volume, labs kept running across hub restarts ---
c.JupyterHub.bind_url = f"http://:{STACK['port']}"
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
# Labs on the compose network reach the hub by its service name.
c.JupyterHub.hub_connect_url = f"http://{STACK['hub_service']}:8081"
c.JupyterHub.db_url = f"sqlite:///{DATA}/{STACK['database']}"
c.JupyterHub.cookie_secret_file = f"{DATA}/jupyterhub_cookie_secret"
c.JupyterHub.cleanup_servers = False
c.JupyterHub.default_url = "/hub/home"

# --- Login: only the declared users; a first login by invitation, a wait after failed ones ---
# FirstUse's passwords, hashed off the event loop, with labhub's invitations and failed-login
# waits (labhub_auth.py).
LOGINS = SETTINGS["logins"]
c.JupyterHub.authenticator_class = "labhub_auth.LabAuthenticator"
c.LabAuthenticator.first_login = LOGINS["first_login"]
c.LabAuthenticator.invites_path = str(SETTINGS_DIR / LOGINS["invites"])
c.LabAuthenticator.state_path = f"{DATA}/{LOGINS['state']}"
c.LabAuthenticator.allowed_failed_logins = LOGINS["failed_logins"]
c.LabAuthenticator.seconds_before_next_try = LOGINS["failed_login_wait"]
c.FirstUseAuthenticator.create_users = False
c.FirstUseAuthenticator.min_password_length = SETTINGS["min_password_length"]
c.FirstUseAuthenticator.dbm_path = f"{DATA}/{STACK['passwords']}"
c.Authenticator.allowed_users = set(SETTINGS["users"])
c.Authenticator.admin_users = set(SETTINGS["admins"])

# --- Labs: one container a user, from the private registry's images ---
# DockerSpawner, which also names the user inside the lab and fails a broken image's spawn
# with a message naming it (labhub_lab.py).
c.JupyterHub.spawner_class = "labhub_lab.LabSpawner"
c.DockerSpawner.network_name = SETTINGS["network"]
c.DockerSpawner.use_internal_ip = True
# A stopped lab's container goes; its files live in the user's home on the host.
c.DockerSpawner.remove = True
c.DockerSpawner.image = SETTINGS["registry"] + "/" + SETTINGS["default_image"]
c.DockerSpawner.pull_policy = "ifnotpresent"
c.DockerSpawner.notebook_dir = SETTINGS["lab_home"]
c.DockerSpawner.environment = {
    "HOME": SETTINGS["lab_home"],
    # pip installs into the user's home (~/.local, on the user site path), where a package stays
    # the user's across lab restarts, not into the image's Python, which goes with the container.
    "PIP_USER": "1",
}
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 300

# Spawnable images: the private registry's, read once for the spawns of a few seconds.
images = RegistryImages(
    SETTINGS["registry"], SETTINGS["registry_internal"], SETTINGS["default_image"]
)
# Each lab gets the limits and GPUs of its user's host groups (read at each spawn).
limits = LabLimits(ACCOUNTS_FILE, SETTINGS["limits"])
c.DockerSpawner.allowed_images = images
c.DockerSpawner.options_form = image_form(images, limits.summary)
# Each lab runs as its user's host account, with the home, shares and lab volumes it gets.
c.Spawner.pre_spawn_hook = pre_spawn_hook(
    ACCOUNTS_FILE, SETTINGS["users"], SETTINGS["lab_home"], limits
)
# No capability, no new privileges and at most this many processes in a lab (labhub_lab.py);
# the hub reaches the engine only through the filter that requires them (DOCKER_HOST).
c.LabSpawner.lab_pids_limit = SETTINGS["engine"]["pids_limit"]
# A share that cannot be mounted when a lab starts is left out of it, and its user told.
c.LabSpawner.lab_shares = SETTINGS["shares"]
c.LabSpawner.share_wait = SETTINGS["share_wait"]
# A lab that stopped (killed for memory) is noticed within this many seconds.
c.Spawner.poll_interval = 10


def lab_notice(user) -> str | None:
    """Why the user's lab stopped (or what it met), for the hub's home and spawn pages."""
    notice = getattr(user.spawner, "lab_notice", None) if user is not None else None
    return html.escape(notice) if notice else None


c.JupyterHub.template_vars = {"announcement_home": lab_notice, "announcement_spawn": lab_notice}

# --- With lab nodes: each lab a swarm service, placed by its user's group (labhub_service.py) ---
SWARM = SETTINGS.get("swarm")
if SWARM:
    c.JupyterHub.spawner_class = "labhub_service.LabServiceSpawner"
    # The swarm's overlay network, which the hub joins too: labs on any node reach it, it them.
    c.SwarmSpawner.network_name = SWARM["network"]
    c.LabServiceSpawner.lab_placement = SWARM["placement"]
    c.LabServiceSpawner.lab_registry = SETTINGS["registry"]
    c.LabServiceSpawner.node_registry = SETTINGS["node_registry"]["address"]

# --- Idle culler: stop idle labs after idle_timeout, any lab after max_age (0: never) ---
services, roles = [], []
if SETTINGS["culler"]:
    services.append({"name": "idle-culler", "command": SETTINGS["culler"]})
    roles.append(
        {
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        }
    )
# With lab nodes: the deploy stops the labs of a node that leaves the swarm through the hub, with
# a token it made on the server (root only) and these scopes alone.
if SWARM:
    deploy = SWARM["deploy"]
    token = Path(deploy["token_file"]).read_text().strip()
    services.append({"name": deploy["service"], "api_token": token})
    roles.append(
        {"name": deploy["service"], "scopes": deploy["scopes"], "services": [deploy["service"]]}
    )
c.JupyterHub.services = services
c.JupyterHub.load_roles = roles

# --- A monitoring system reads /hub/metrics with a token that can read nothing else ---
if SETTINGS.get("metrics_token"):
    c.JupyterHub.authenticate_prometheus = True
    c.JupyterHub.services.append(
        {"name": "metrics", "api_token": Path(SETTINGS["metrics_token"]).read_text().strip()}
    )
    c.JupyterHub.load_roles.append(
        {"name": "metrics", "scopes": ["read:metrics"], "services": ["metrics"]}
    )

# --- Behind the HTTPS proxy: the URL users open (secure cookies, redirects) ---
if SETTINGS["public_url"]:
    c.JupyterHub.public_url = SETTINGS["public_url"]
    c.JupyterHub.cookie_options = {"secure": True}
    # The proxy in front sets X-Forwarded-Proto https; adding configurable-http-proxy's own
    # (http, the hop inside the hub's container) would make the hub and labs think it plain.
    c.ConfigurableHTTPProxy.command = ["configurable-http-proxy", "--no-x-forward"]
