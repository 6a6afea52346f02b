"""
The Docker engine with compose v2, enabled and running, and the admin accounts in group docker.

    pyinfra inventory.py tasks/docker.py
"""

from io import StringIO

from pyinfra import host, logger
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.deb import DebArch, DebPackages
from pyinfra.facts.server import OsRelease
from pyinfra.operations import files

from labhub import cluster, docker_source, gpus
from labhub.facts import read
from labhub.facts.accounts import LoginUser, local_accounts
from labhub.facts.apt_source import PublishedKey
from labhub.facts.gpus import ContainerToolkit, Gpus
from labhub.operations import accounts, apt_source, dpkg, engine, packages, services
from labhub.settings import get_settings

settings = get_settings(host)
os_release = host.get_fact(OsRelease)
installed = read(host, DebPackages)
# Refused before any change, like a bad setting.
problem = docker_source.switch_problem(settings.docker_source, installed)
if problem:
    raise OperationError(f"{host.name}: {problem}")
# A swarm's GPU node hands its GPUs to labs through NVIDIA's toolkit, which must honour the GPUs
# the swarm assigns each task (refused before any change).
node_gpus = read(host, Gpus)["gpus"] if cluster.is_node(host) else []
problem = gpus.node_toolkit_problem(
    host.name, node_gpus, read(host, ContainerToolkit) if node_gpus else None
)
if problem:
    raise OperationError(problem)

# A deploy killed while apt installed packages leaves dpkg interrupted; apt refuses until then.
dpkg.recovered(name="Finish an interrupted package installation (dpkg --configure -a)")

if settings.docker_source == "docker":
    fetch_tools = ["ca-certificates", "curl"]
    packages.installed(
        name="Install what fetching Docker's key needs",
        packages=fetch_tools,
        # A new server may have no apt lists yet. Updated only when something is missing: this
        # update reads every source, Docker's too, whose failures are told below.
        update=not set(fetch_tools) <= set(installed),
        cache_time=24 * 3600,
    )
    files.directory(name="Create the apt keyrings folder", path="/etc/apt/keyrings", mode="0755")
    # The key the repository publishes now, compared on every run: a new docker_apt_url's key,
    # or one the repository replaced, is downloaded again (then its lists are verified with it).
    key_url = docker_source.key_url(settings.docker_apt_url, os_release)
    published = host.get_fact(PublishedKey, url=key_url)
    if published is None:
        host.log(
            f"Docker's key could not be fetched from {key_url} to compare it with "
            f"{docker_source.KEYRING} (no answer, or no curl yet): a key already there is kept",
            log_func=logger.warning,
        )
    key = files.download(
        name=f"Download Docker's apt key to {docker_source.KEYRING}",
        src=key_url,
        dest=docker_source.KEYRING,
        mode="0644",
        sha256sum=published,
    )
    source_line = docker_source.apt_source_line(
        settings.docker_apt_url, os_release, host.get_fact(DebArch)
    )
    source = files.put(
        name=f"Add Docker's apt source: {source_line}",
        src=StringIO(source_line + "\n"),
        dest=docker_source.SOURCES_FILE,
        mode="0644",
    )
    engine_packages = docker_source.DOCKER_CE_PACKAGES
    # Until Docker's packages are in, a run that stopped at a refused signature asks again.
    incomplete = not set(engine_packages) <= set(installed)
    apt_source.update(
        name="Update apt lists for Docker's repository (its signature verified)",
        sources_file=docker_source.SOURCES_FILE,
        repository=f"Docker's apt repository "
        f"{docker_source.repository(settings.docker_apt_url, os_release)}",
        keyring=docker_source.KEYRING,
        _if=lambda: incomplete or key.did_change() or source.did_change(),
    )
else:
    engine_packages = docker_source.distro_packages(os_release)

packages.installed(
    name=f"Install Docker packages: {' '.join(engine_packages)}",
    packages=engine_packages,
    update=True,
    cache_time=24 * 3600,
)

for service in ("containerd", "docker"):
    services.running(name=f"Enable and start {service}", service=service)
if cluster.in_swarm(host):
    # The engine refuses swarm mode with live-restore: a swarm restarts a node's tasks itself.
    engine.configured(
        name="No live-restore: the engine is in the lab's swarm, which refuses it",
        values={"live-restore": False},
    )
else:
    # Labs, kernels, the hub and the registry keep running while the engine restarts (an upgrade
    # of its packages, a restart by hand).
    engine.configured(
        name="Keep containers running while the engine restarts (live-restore)",
        values={"live-restore": True},
    )

accounts.group_present(name="Create group docker", group="docker", system=True)

docker_users = settings.docker_users
if docker_users is None:
    login = host.get_fact(LoginUser)
    docker_users = () if login == "root" else (login,)
# docker_users are existing admin accounts: a typo must not create a new account.
unknown = sorted(set(docker_users) - set(local_accounts(host)))
if unknown:
    raise OperationError(f"docker_users: no such account on {host.name}: {', '.join(unknown)}")
for user in docker_users:
    accounts.in_group(name=f"Add {user} to group docker", user=user, group="docker")

# --- A swarm's GPU node: its GPUs advertised to the swarm, every task through NVIDIA's runtime ---
if node_gpus:
    files.line(
        name=f"Have NVIDIA's runtime expose the GPUs the swarm assigns ({gpus.SWARM_RESOURCE_ENV})",
        path=gpus.TOOLKIT_CONFIG,
        # The packages ship the key commented out, at the top, before any table.
        line=r"^#?[[:space:]]*swarm-resource[[:space:]]*=.*$",
        replace=f'swarm-resource = "{gpus.SWARM_RESOURCE_ENV}"',
        extended_regex=True,
    )
    engine.configured(
        name=f"Advertise the node's {len(gpus.devices(node_gpus))} GPU(s) to the swarm "
        "(node-generic-resources, NVIDIA's runtime by default)",
        values=gpus.node_daemon_settings(node_gpus),
        # The engine reads its generic resources only when it starts.
        restart=True,
    )
