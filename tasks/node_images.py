"""
A lab node's lab images: the node's engine trusts the hub server's registry (its certificate,
by certs.d), logs in to it with the login the hub server made (root only, copied from there),
and has each lab image its labs may run pulled already, so that no spawn waits for a pull. Run
on lab nodes after the hub server pushed the images (deploy.py).

    pyinfra inventory.py tasks/node_images.py
"""

from pyinfra import host
from pyinfra.operations import files

from labhub import node_registry, stack
from labhub.cluster import hub_server
from labhub.operations import node_registry as node_registry_ops
from labhub.settings import get_settings

hub = hub_server(host)
# The lab is the hub server's: its name, certificate, registry and images.
settings = get_settings(hub)
project = stack.Stack.from_settings(settings)
address = node_registry.address(settings)

authority = node_registry.certificate_authority(settings)
if authority == "internal":
    node_registry_ops.copied_from(
        name=f"Trust the hub's local CA for {address} (from {hub.name})",
        source=hub,
        src=project.path("proxy", "local-ca-root.crt"),
        dest=node_registry.ca_file(settings),
        mode="0644",
        folder_mode="0755",
    )
elif authority == "files":
    files.put(
        name=f"Trust the hub's certificate chain (tls_cert) for {address}",
        src=settings.tls_cert,
        dest=node_registry.ca_file(settings),
        mode="0644",
        create_remote_dir=True,
    )

node_registry_ops.copied_from(
    name=f"Copy the login to {address} from {hub.name} (root only, never printed)",
    source=hub,
    src=node_registry.DOCKER_CONFIG_FILE,
    dest=node_registry.DOCKER_CONFIG_FILE,
)

builds = {build.image: build for build in stack.lab_builds(settings)}
for lab in node_registry.node_images(settings, host.name):
    build = builds[f"{settings.registry_address}/{lab.ref}"]
    node_registry_ops.pulled(
        name=f"Pre-pull {node_registry.image(settings, lab)}",
        image=node_registry.image(settings, lab),
        source=hub,
        registry=settings.registry_address,
        repository=lab.name,
        tag=lab.version,
        docker_config=node_registry.DOCKER_CONFIG,
        content_hash=build.content_hash,
    )
