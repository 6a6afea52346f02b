"""
The Docker engine with compose v2, enabled and running, and the admin accounts in group docker.

    pyinfra inventory.py tasks/docker.py
"""

from io import StringIO

from pyinfra import host
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.deb import DebArch, DebPackages
from pyinfra.facts.server import OsRelease
from pyinfra.operations import files

from labhub import cluster, docker_source
from labhub.facts import read
from labhub.facts.accounts import LoginUser, local_accounts
from labhub.operations import accounts, apt_source, dpkg, engine, packages, services
from labhub.settings import get_settings

settings = get_settings(host)
os_release = host.get_fact(OsRelease)
installed = read(host, DebPackages)
# Refused before any change, like a bad setting.
problem = docker_source.switch_problem(settings.docker_source, installed)
if problem:
    raise OperationError(f"{host.name}: {problem}")

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
    key = files.download(
        name=f"Download Docker's apt key to {docker_source.KEYRING}",
        src=docker_source.key_url(settings.docker_apt_url, os_release),
        dest=docker_source.KEYRING,
        mode="0644",
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
