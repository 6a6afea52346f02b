"""
The hub stack: a compose project of JupyterHub (FirstUse login, DockerSpawner) and the private
registry its lab images come from, up and answering.

    pyinfra inventory.py tasks/hub.py
"""

from io import BytesIO, StringIO

from pyinfra import host
from pyinfra.operations import apt, files

from labhub import hub
from labhub.operations import compose, images
from labhub.operations import hub as hub_ops
from labhub.settings import get_settings

settings = get_settings(host)
hub_image, hub_image_hash = hub.hub_image(settings)
# Rendered here, not by files.template: compose.yaml carries their hashes, so that compose itself
# recreates a service whose configuration file changed (and only that one).
hub_config = hub.render("jupyterhub_config.py.j2", settings=hub.hub_config_data(settings))
registry_config = hub.render("registry-config.yml.j2", data_path=hub.REGISTRY_DATA_PATH)

apt.packages(
    name="Install curl (registry queries and health checks)",
    packages=["curl"],
    cache_time=24 * 3600,
)

for folder in ("", "hub", "registry", "build", "build/hub"):
    files.directory(
        name=f"Create {hub.remote_path(settings, folder)}",
        path=hub.remote_path(settings, folder),
        mode="0755",
    )

# The hub image: built here, from the official JupyterHub image, whenever its context changes.
files.sync(
    name="Upload the hub image's build context",
    src=str(hub.HUB_CONTEXT),
    dest=hub.remote_path(settings, "build/hub"),
    delete=True,
    exclude=f"*/{hub.CA_FILE}",
)
files.put(
    name="Upload the CA bundle image builds trust",
    src=BytesIO(hub.ca_bundle(settings)),
    dest=hub.remote_path(settings, "build/hub", hub.CA_FILE),
    mode="0644",
)
images.built(
    name=f"Build the hub image {hub_image}",
    image=hub_image,
    context=hub.remote_path(settings, "build/hub"),
    content_hash=hub_image_hash,
    build_args=hub.build_args(settings, settings.hub_base_image),
)

# Configuration, mounted read-only; the hub's state lives in the hub-data volume.
files.put(
    name="Render jupyterhub_config.py",
    src=StringIO(hub_config),
    dest=hub.remote_path(settings, "hub/jupyterhub_config.py"),
    mode="0644",
)
hub_ops.accounts_file(
    name="Record the hub users' host accounts (uids the labs run as)",
    path=hub.remote_path(settings, "hub/accounts.json"),
    accounts={user.name: settings.account_name(user.name) for user in settings.hub_users},
)
files.put(
    name="Render the registry's config.yml (deletes enabled)",
    src=StringIO(registry_config),
    dest=hub.remote_path(settings, hub.REGISTRY_CONFIG_FILE),
    mode="0644",
)
files.put(
    name="Render compose.yaml",
    src=StringIO(hub.render(
        "compose.yaml.j2",
        project=hub.PROJECT,
        network=hub.NETWORK,
        hub_image=hub_image,
        hub_bind=settings.hub_bind,
        hub_port=settings.hub_port,
        hub_config_sha256=hub.sha256(hub_config),
        registry_image=settings.registry_image,
        registry_bind=settings.registry_bind,
        registry_port=settings.registry_port,
        registry_config_sha256=hub.sha256(registry_config),
        registry_config_path=hub.registry_config_path(settings),
        registry_data_path=hub.REGISTRY_DATA_PATH,
    )),
    dest=hub.compose_file(settings),
    mode="0644",
)

# Compose recreates exactly the services whose configuration, image or config file changed.
compose.up(
    name="Bring up the hub stack (docker compose up)",
    compose_file=hub.compose_file(settings),
    project=hub.PROJECT,
)
compose.healthy(
    name="Check the hub and the registry answer",
    checks={
        "hub": (hub.local_url(settings.hub_bind, settings.hub_port) + "/hub/health",
                hub.HUB_SERVICE),
        "registry": (f"http://{settings.registry_address}/v2/", hub.REGISTRY_SERVICE),
    },
    compose_file=hub.compose_file(settings),
)
