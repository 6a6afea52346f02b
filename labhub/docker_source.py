"""
Where the Docker engine comes from: Docker's apt repository (as Docker documents it: an ASCII
armored key in /etc/apt/keyrings and a ``signed-by`` source line) or the distribution's packages.
Pure functions of the host's facts, so the same answer is given in a dry run and a real one.
"""

from __future__ import annotations

from collections.abc import Collection

from pyinfra.api.exceptions import PyinfraError

KEYRING = "/etc/apt/keyrings/docker.asc"
SOURCES_FILE = "/etc/apt/sources.list.d/docker.list"
DOCKER_CE_PACKAGES = [
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "docker-buildx-plugin",
    "docker-compose-plugin",
]
# The distribution's packages that Docker's install guide has removed before docker-ce goes in
# (they conflict with Docker's), with Debian's split-out CLI and buildx and Ubuntu's compose v2.
DISTRO_ENGINE_PACKAGES = [
    "docker.io",
    "docker-cli",
    "docker-doc",
    "docker-compose",
    "docker-compose-v2",
    "docker-buildx",
    "podman-docker",
    "containerd",
    "runc",
]
SUPPORTED = ("debian", "ubuntu")
SOURCE_NAMES = {"docker": "Docker's apt repository", "distro": "the distribution's packages"}


class UnsupportedHost(PyinfraError):
    """A host labhub cannot install Docker on: pyinfra stops with this one line."""


def distribution(os_release: dict[str, str]) -> str:
    distro = os_release.get("id", "")
    if distro not in SUPPORTED:
        raise UnsupportedHost(
            f"labhub supports Debian and Ubuntu hosts, not {distro or 'unknown'!r}"
        )
    return distro


def codename(os_release: dict[str, str]) -> str:
    # Ubuntu derivatives set UBUNTU_CODENAME to the release whose packages they use.
    name = os_release.get("ubuntu_codename") or os_release.get("version_codename")
    if not name:
        raise UnsupportedHost("/etc/os-release names no release codename (VERSION_CODENAME)")
    return name


def key_url(base_url: str, os_release: dict[str, str]) -> str:
    return f"{base_url}/{distribution(os_release)}/gpg"


def repository(base_url: str, os_release: dict[str, str]) -> str:
    """Docker's repository for this host as apt names it in its messages: ``<url> <codename>``."""
    return f"{base_url}/{distribution(os_release)} {codename(os_release)}"


def apt_source_line(base_url: str, os_release: dict[str, str], arch: str) -> str:
    """The one-line apt source Docker's install guide writes for this host."""
    return f"deb [arch={arch} signed-by={KEYRING}] {repository(base_url, os_release)} stable"


def installed_source(installed: Collection[str]) -> str | None:
    """
    The ``docker_source`` the host's engine came from, by the installed package names: "docker"
    when any of Docker's packages is installed (whatever else is), else "distro" when the
    distribution's engine is; None when neither is.
    """
    if any(package in installed for package in DOCKER_CE_PACKAGES):
        return "docker"
    if "docker.io" in installed:
        return "distro"
    return None


def switch_problem(docker_source: str, installed: Collection[str]) -> str | None:
    """
    Why the engine cannot be installed from ``docker_source`` on a host with these packages
    (None: nothing stands in the way): it already came from the other source. The two sources'
    packages conflict, and replacing one engine with the other stops every container under it,
    on a server whose hub and labs are running: that is left to the admin, who is told both ways
    out.
    """
    current = installed_source(installed)
    if current is None or current == docker_source:
        return None
    own = DOCKER_CE_PACKAGES if current == "docker" else DISTRO_ENGINE_PACKAGES
    packages = [package for package in own if package in installed]
    return (
        f"docker_source is {docker_source!r}, but the Docker engine here was installed from "
        f"{SOURCE_NAMES[current]} ({', '.join(packages)}). labhub does not swap a running engine "
        f"(every container would stop): set docker_source to {current!r} to keep it, or remove "
        f"those packages first (apt-get remove {' '.join(packages)}; images, containers and "
        "volumes in /var/lib/docker stay) and deploy again"
    )


def distro_packages(os_release: dict[str, str]) -> list[str]:
    """The distribution's engine and its compose v2 package (named differently per distribution)."""
    distro = distribution(os_release)
    major = int((os_release.get("version_id") or "0").split(".")[0])
    if distro == "debian" and (major >= 13 or major == 0):
        return ["docker.io", "docker-compose"]
    if distro == "ubuntu" and major >= 22:
        return ["docker.io", "docker-compose-v2"]
    raise UnsupportedHost(
        f"docker_source 'distro': {distro} {major} has no compose v2 package "
        "(Debian 13+ and Ubuntu 22.04+ have); use docker_source 'docker'"
    )
