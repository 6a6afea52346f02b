"""
The hub stack: a compose project of JupyterHub (FirstUse login, DockerSpawner), the private
registry its lab images come from and the HTTPS proxy in front of the hub, up and answering.

    pyinfra inventory.py tasks/hub.py
"""

import json
from io import StringIO

from pyinfra import host, logger
from pyinfra.api.exceptions import OperationError
from pyinfra.operations import apt, files

from labhub import stack
from labhub.facts.folders import Folders
from labhub.operations import accounts, compose, images, proxy, registry, secret_files
from labhub.settings import get_settings, local_host

settings = get_settings(host)
project = stack.Stack.from_settings(settings)
hub = stack.hub_build(settings)
hub_settings = json.dumps(stack.hub_settings(settings), indent=2, sort_keys=True) + "\n"
registry_config = stack.REGISTRY_CONFIG.read_text()
https = settings.tls != "off"
proxy_config = json.dumps(stack.proxy_config(settings), indent=2, sort_keys=True) + "\n" \
    if https else ""
proxy_files = stack.proxy_files(settings)
compose_yaml = stack.compose_file_text(settings, hub.image, hub_settings, registry_config,
                                       stack.proxy_digest(proxy_config, proxy_files))
# Refused before any change, like a bad setting.
problems = stack.hub_dir_problems(
    settings, host.get_fact(Folders, paths=[settings.hub_dir]).get(settings.hub_dir))
if problems:
    raise OperationError(f"{host.name}: " + "; ".join(problems))

if not https:
    logger.warning(f"{host.name}: tls is \"off\": the hub answers plain HTTP at "
                   f"{settings.hub_url}, and passwords and session cookies cross the network "
                   "in clear")

apt.packages(
    name="Install curl and openssl (registry queries, health checks, certificates)",
    packages=["curl", "openssl"],
    cache_time=24 * 3600,
)

for folder in ("", "hub", "registry", "build", *(["proxy"] if https else [])):
    files.directory(
        name=f"Create {project.path(folder)}",
        path=project.path(folder),
        mode="0755",
    )

# The hub image: built here, from the official JupyterHub image, whenever its context changes.
images.context(name=f"Upload the hub image's build context ({hub.context})",
               **hub.context_arguments())
images.built(name=f"Build the hub image {hub.image}", **hub.build_arguments())

# What the hub's configuration reads, mounted read-only; its state lives in the hub-data volume.
files.put(
    name="Write the hub's settings.json",
    src=StringIO(hub_settings),
    dest=project.path("hub", "settings.json"),
    mode="0644",
)
accounts.record(
    name="Record the hub users' host accounts (uids the labs run as)",
    path=project.path("hub", "accounts.json"),
    accounts={user.name: settings.account_name(user.name) for user in settings.hub_users},
)
files.put(
    name="Upload the registry's config.yml (deletes enabled)",
    src=StringIO(registry_config),
    dest=project.registry_config_file,
    mode="0644",
)
if https:
    files.put(
        name="Write the proxy's caddy.json",
        src=StringIO(proxy_config),
        dest=project.path("proxy", "caddy.json"),
        mode="0644",
    )
if "acme-ca-root.pem" in proxy_files:
    files.put(
        name="Upload the CA the proxy trusts for the ACME directory",
        src=settings.acme_ca_root,
        dest=project.path("proxy", "acme-ca-root.pem"),
        mode="0644",
    )
if settings.tls == "files":
    files.put(
        name=f"Upload the hub's certificate for {settings.hub_domain} "
             f"({settings.certificate.days_left()} days left)",
        src=settings.tls_cert,
        dest=project.path("proxy", "cert.pem"),
        mode="0644",
    )
    secret_files.put(
        name="Upload the certificate's key (root only)",
        src=settings.tls_key,
        dest=project.path("proxy", "key.pem"),
    )
else:
    # A key labhub uploaded for tls "files" does not outlive that choice.
    for name in ("key.pem", "cert.pem"):
        files.file(name=f"Remove the proxy's {name} (tls is not \"files\")",
                   path=project.path("proxy", name), present=False)
files.put(
    name="Write compose.yaml",
    src=StringIO(compose_yaml),
    dest=project.compose_file,
    mode="0644",
)

# Before compose starts a stopped registry: a prune killed while collecting left it stopped
# beside its collector, which must go first (and while a prune runs, this refuses to race it).
registry.recovered(
    name="Bring the registry back from an interrupted prune",
    compose_file=project.compose_file,
    project=project.project,
    service=stack.REGISTRY_SERVICE,
    state_dir=project.path("registry"),
)
compose.up(
    name="Bring up the hub stack (docker compose up)",
    compose_file=project.compose_file,
    project=project.project,
    content=compose_yaml,
)
checks = {}
if not https:
    checks["hub"] = (f"http://{local_host(settings.hub_bind)}:{settings.hub_port}/hub/health",
                     stack.HUB_SERVICE)
checks["registry"] = (f"{project.registry_url}/v2/", stack.REGISTRY_SERVICE)
compose.healthy(
    name="Check the registry answers" if https else "Check the hub and the registry answer",
    checks=checks,
    compose_file=project.compose_file,
    project=project.project,
)
if https:
    local_root = project.path("proxy", "local-ca-root.crt")
    if settings.tls == "internal":
        proxy.local_root(
            name=f"Copy the proxy's local CA root to {local_root}",
            compose_file=project.compose_file,
            project=project.project,
            service=stack.PROXY_SERVICE,
            path=stack.PROXY_LOCAL_ROOT,
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
        compose_file=project.compose_file,
        project=project.project,
        service=stack.PROXY_SERVICE,
        trust=trust,
        obtained=stack.obtained_certificate(settings) if settings.tls == "acme" else None,
    )
