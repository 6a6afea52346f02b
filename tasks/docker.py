"""
The Docker engine with compose v2, enabled and running, and the admin accounts in group docker.

    pyinfra inventory.py tasks/docker.py
"""

from io import StringIO

from pyinfra import host
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.deb import DebArch
from pyinfra.facts.server import OsRelease, Users
from pyinfra.operations import apt, files, server, systemd

from labhub import docker_source
from labhub.facts.accounts import LoginUser
from labhub.settings import get_settings

settings = get_settings(host)
os_release = host.get_fact(OsRelease)

if settings.docker_source == "docker":
    apt.packages(
        name="Install what fetching Docker's key needs",
        packages=["ca-certificates", "curl"],
    )
    files.directory(name="Create the apt keyrings folder", path="/etc/apt/keyrings", mode="0755")
    files.download(
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
    apt.update(name="Update apt lists for Docker's repository", _if=source.did_change)
    packages = docker_source.DOCKER_CE_PACKAGES
else:
    packages = docker_source.distro_packages(os_release)

apt.packages(
    name=f"Install Docker packages: {' '.join(packages)}",
    packages=packages,
    update=True,
    cache_time=24 * 3600,
)

for service in ("containerd", "docker"):
    systemd.service(name=f"Enable and start {service}", service=service, running=True,
                    enabled=True)

server.group(name="Create group docker", group="docker", system=True)

docker_users = settings.docker_users
if docker_users is None:
    login = host.get_fact(LoginUser)
    docker_users = () if login == "root" else (login,)
# docker_users are existing admin accounts: a typo must not create a new account.
unknown = sorted(set(docker_users) - set(host.get_fact(Users)))
if unknown:
    raise OperationError(f"docker_users: no such account on {host.name}: {', '.join(unknown)}")
for user in docker_users:
    server.user(
        name=f"Add {user} to group docker",
        user=user,
        groups=["docker"],
        append=True,
        create_home=False,
        present=True,
    )
