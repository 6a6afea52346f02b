"""
Where the Docker engine comes from: Docker's apt repository (as Docker documents it: an ASCII
armored key in /etc/apt/keyrings and a ``signed-by`` source line) or the distribution's packages.
Pure functions of the host's facts, so the same answer is given in a dry run and a real one.
"""

from __future__ import annotations

KEYRING = "/etc/apt/keyrings/docker.asc"
SOURCES_FILE = "/etc/apt/sources.list.d/docker.list"
DOCKER_CE_PACKAGES = [
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "docker-buildx-plugin",
    "docker-compose-plugin",
]
SUPPORTED = ("debian", "ubuntu")


class UnsupportedHost(ValueError):
    pass


def distribution(os_release: dict[str, str]) -> str:
    distro = os_release.get("id", "")
    if distro not in SUPPORTED:
        raise UnsupportedHost(f"labhub supports Debian and Ubuntu hosts, not {distro or 'unknown'!r}")
    return distro


def codename(os_release: dict[str, str]) -> str:
    # Ubuntu derivatives set UBUNTU_CODENAME to the release whose packages they use.
    name = os_release.get("ubuntu_codename") or os_release.get("version_codename")
    if not name:
        raise UnsupportedHost("/etc/os-release names no release codename (VERSION_CODENAME)")
    return name


def key_url(base_url: str, os_release: dict[str, str]) -> str:
    return f"{base_url}/{distribution(os_release)}/gpg"


def apt_source_line(base_url: str, os_release: dict[str, str], arch: str) -> str:
    """The one-line apt source Docker's install guide writes for this host."""
    return (
        f"deb [arch={arch} signed-by={KEYRING}] "
        f"{base_url}/{distribution(os_release)} {codename(os_release)} stable"
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
