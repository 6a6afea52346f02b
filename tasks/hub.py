"""
The hub stack: a compose project of JupyterHub (FirstUse login, DockerSpawner), the private
registry its lab images come from and the HTTPS proxy in front of the hub, up and answering.

    pyinfra inventory.py tasks/hub.py
"""

import json
import shlex

from pyinfra import host, logger
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.hardware import Cpus, Memory
from pyinfra.operations import server

from labhub import caddy, cluster, gpus, limits, node_registry, stack
from labhub.facts import read
from labhub.facts.gpus import ContainerToolkit, Gpus
from labhub.facts.network import RouteSource
from labhub.facts.tree import files_at, folder_of
from labhub.operations import (
    accounts,
    compose,
    hub_database,
    images,
    packages,
    proxy,
    registry,
    secret_files,
    tree,
)
from labhub.operations import node_registry as node_registry_ops
from labhub.settings import get_settings, local_host, url_host

settings = get_settings(host)
project = stack.Stack.from_settings(settings)
hub = stack.hub_build(settings)
# The GPUs this server's labs get by device id (read only when a group is given GPUs).
server_gpus = read(host, Gpus) if settings.lab_gpus and not cluster.lab_nodes(host) else None
hub_settings = (
    json.dumps(
        stack.hub_settings(settings, server_gpus["gpus"] if server_gpus else None),
        indent=2,
        sort_keys=True,
    )
    + "\n"
)
registry_config = stack.REGISTRY_CONFIG.read_text()
https = settings.tls != "off"
# With lab nodes, the proxy serves them the registry, and only them: each node's address as the
# hub server sees it (the one its packets to hub_domain come from).
node_addresses = []
problems = []
for node in cluster.lab_nodes(host):
    route = node.get_fact(RouteSource, destination=settings.hub_domain)
    if route["address"] is None:
        problems.append(
            f"lab node {node.name} does not resolve hub_domain {settings.hub_domain!r}: the "
            "nodes pull lab images from the hub server by that name (give it a DNS record, "
            "or an /etc/hosts line on the node)"
        )
    elif route["source"] is None:
        problems.append(f"lab node {node.name} has no route to {route['address']} (hub_domain)")
    else:
        node_addresses.append(route["source"])
proxy_config = caddy.config_text(settings, node_addresses)
proxy_files = caddy.files(settings)
compose_yaml = stack.compose_file_text(
    settings,
    hub.image,
    hub_settings,
    registry_config,
    caddy.digest(proxy_config, proxy_files),
)
# Refused before any change, like a bad setting.
problems += stack.hub_dir_problems(
    settings, folder_of(files_at(host, settings.hub_dir), settings.hub_dir)
)
if server_gpus is not None:
    problems += gpus.server_gpu_problems(
        host.name, settings.lab_gpus, server_gpus, read(host, ContainerToolkit)
    )
elif cluster.lab_nodes(host):
    problems += gpus.swarm_gpu_problems(settings.lab_gpus)
if settings.lab_limits and not cluster.lab_nodes(host):
    memory = read(host, Memory)
    problems += limits.server_limit_problems(
        host.name, settings.group_limits, read(host, Cpus), memory and int(memory * 1024**2)
    )
if problems:
    raise OperationError(f"{host.name}: " + "; ".join(problems))

if not https:
    logger.warning(
        f'{host.name}: tls is "off": the hub answers plain HTTP at '
        f"{settings.hub_url}, and passwords and session cookies cross the network "
        "in clear"
    )

packages.installed(
    name="Install curl and openssl (registry queries, health checks, certificates)",
    packages=["curl", "openssl"],
    cache_time=24 * 3600,
)

# Everything under hub_dir is read in one command (tree.FileTree) and only what differs is
# written: the files compose, the hub and the proxy read (the hub's settings.json is mounted
# read-only; its state lives in the hub-data volume), and below, the build contexts.
proxy_dir = project.path("proxy")
stack_files = {
    project.path("hub", "settings.json"): hub_settings,
    project.registry_config_file: registry_config,
    project.compose_file: compose_yaml,
    **({project.path("proxy", "caddy.json"): proxy_config} if https else {}),
    # The certificate and the ACME directory's CA: public, shown by --diff like the rest.
    **{
        project.path("proxy", name): content
        for name, content in proxy_files.items()
        if name != "key.pem"
    },
}
accounts_file = project.path("hub", "accounts.json")
# A hub about to move to a new image: the files it runs with now, for a failed upgrade.
hub_database.files_kept(
    name="Keep the stack's files for a failed hub upgrade to go back to",
    stack=project,
    image=hub.image,
    content=compose_yaml,
    paths=[*stack_files, accounts_file, project.path("proxy", "key.pem")],
)
tree.written(
    name="Write the stack's files: compose.yaml, hub/settings.json, registry/config.yml"
    + (", proxy/caddy.json" if https else ""),
    folders=[project.path(folder) for folder in ("", "hub", "registry", "build")]
    + ([proxy_dir] if https else []),
    files=stack_files,
)
if settings.tls == "files":
    secret_files.put(
        name=f"Upload the certificate's key (root only); the certificate for "
        f"{settings.hub_domain} has {settings.certificate.days_left()} days left",
        src=settings.tls_key,
        dest=project.path("proxy", "key.pem"),
    )
else:
    # A key labhub uploaded for tls "files" does not outlive that choice.
    tree.absent(
        name='Remove the proxy\'s certificate and key (tls is not "files")',
        paths=[project.path("proxy", "key.pem"), project.path("proxy", "cert.pem")],
    )

# The hub image: built here, from the official JupyterHub image, whenever its context changes.
images.context(
    name=f"Upload the hub image's build context ({hub.context})", **hub.context_arguments()
)
images.built(
    name=f"Build the hub image {hub.image}", built_as=stack.HUB_REPOSITORY, **hub.build_arguments()
)

accounts.record(
    name="Record the hub users' host accounts (uids the labs run as)",
    path=accounts_file,
    accounts={user.name: settings.account_name(user.name) for user in settings.hub_users},
)

# The hub's login to the engine filter, the one service with the engine's socket:
# before anything starts the hub, whose compose service mounts it.
secret_files.generated(
    name="Make the hub's login to the engine filter (root only, never printed)",
    path=stack.ENGINE_LOGIN_FILE,
    prefix=f"machine {project.engine_service} login {project.hub_service} password ",
)
# Before compose starts a stopped registry: a prune killed while collecting left it stopped
# beside its collector, which must go first (and while a prune runs, this refuses to race it).
registry.recovered(
    name="Bring the registry back from an interrupted prune",
    stack=project,
    state_dir=project.path("registry"),
)
# A new hub image (a rebuild, a new JupyterHub) meets the database of the one before it here.
hub_database.upgraded(
    name="Move the hub to its new image: database copied, then upgraded (jupyterhub upgrade-db)",
    stack=project,
    image=hub.image,
    content=compose_yaml,
)
if settings.with_lab_nodes:
    # Before the hub starts with it: the hub reads it once, when it starts.
    secret_files.generated(
        name="Make the deploy's token for the hub's API (root only, never printed)",
        path=stack.HUB_API_TOKEN_FILE,
    )
    before, after = node_registry.docker_config_parts(settings)
    node_registry_ops.login(
        name="Make the lab nodes' registry login (root only, never printed)",
        password=node_registry.PASSWORD_FILE,
        env=node_registry.PROXY_ENV_FILE,
        config=node_registry.DOCKER_CONFIG_FILE,
        variable=node_registry.LOGIN_HASH_VARIABLE,
        user=node_registry.USER,
        image=settings.proxy_image,
        config_before=before,
        config_after=after,
        project=project.project,
        service=project.proxy_service,
    )
# The monitoring system's token (metrics_token), made here and never printed; the hub reads it
# when it starts: a new one (its file deleted) restarts the hub.
if settings.metrics_token:
    metrics_token = secret_files.generated(
        name=f"Make the monitoring system's metrics token: {stack.METRICS_TOKEN_FILE} (root only)",
        path=stack.METRICS_TOKEN_FILE,
    )
else:
    tree.absent(
        name="Remove the metrics token (metrics_token is false)", paths=[stack.METRICS_TOKEN_FILE]
    )
compose.up(
    name="Bring up the hub stack (docker compose up)",
    stack=project,
    content=compose_yaml,
)
if settings.metrics_token:
    server.shell(
        name="Restart the hub with its new metrics token",
        commands=[
            shlex.join(
                ["docker", "compose", "-f", project.compose_file, "-p", project.project]
                + ["restart", project.hub_service]
            )
        ],
        _if=metrics_token.did_change,
    )
checks = {}
if not https:
    checks["hub"] = (
        f"http://{url_host(local_host(settings.hub_bind))}:{settings.hub_port}/hub/health",
        project.hub_service,
    )
checks["registry"] = (f"{project.registry_url}/v2/", project.registry_service)
compose.healthy(
    name="Check the registry answers" if https else "Check the hub and the registry answer",
    checks=checks,
    stack=project,
)
if https:
    local_root = project.path("proxy", "local-ca-root.crt")
    if settings.tls == "internal":
        proxy.local_root(
            name=f"Copy the proxy's local CA root to {local_root}",
            stack=project,
            path=caddy.LOCAL_ROOT,
            dest=local_root,
        )
    # Only the certificate expected: one chaining to the local CA, or the key of tls_cert.
    trust: tuple[str, ...] = ()
    if settings.tls == "internal":
        trust = ("--cacert", local_root)
    elif settings.tls == "files":
        trust = ("--insecure", "--pinnedpubkey", settings.certificate.pin)
    proxy.healthy(
        name=f"Check the hub answers at {settings.hub_url} with the expected certificate",
        url=f"{settings.hub_url}/hub/health",
        server_name=settings.hub_domain,
        port=settings.https_port,
        address=local_host(settings.hub_bind),
        stack=project,
        trust=trust,
        obtained=caddy.obtained_certificate(settings) if settings.tls == "acme" else None,
        obtained_wait=settings.acme_wait,
    )
