"""
tasks/docker.py on fresh Debian 13 lab servers, over SSH, through pyinfra's CLI.

Docker's own apt repository cannot be reached from here. The default source ("docker") is
deployed from a stand-in of it (``labhost.apt_repository``: Debian's engine, CLI, containerd,
compose v2 and buildx repacked under Docker's package names, in a repository signed like
Docker's, served on this machine), with ``docker_apt_url`` pointed at it and nothing else
changed. The dry-run plans check the exact lines Docker's real URL gives on Debian and Ubuntu.

One lab server per source: ``lab_server`` gets Docker's packages, ``distro_server`` Debian's; a
fresh third one is refused the repository signed with another key.
"""

from __future__ import annotations

import json

import pytest

import labhost
from labhost.apt_repository import AptRepository, start_docker_apt_repository

pytestmark = pytest.mark.e2e

KEYRING = "/etc/apt/keyrings/docker.asc"
SOURCES_FILE = "/etc/apt/sources.list.d/docker.list"
DOCKER_CE = [
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "docker-buildx-plugin",
    "docker-compose-plugin",
]
UBUNTU_NOBLE = """\
PRETTY_NAME="Ubuntu 24.04.3 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.3 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
"""


@pytest.fixture(scope="module")
def docker_apt():
    """The stand-in of Docker's apt repository, for this module's tests."""
    repository = start_docker_apt_repository()
    try:
        yield repository
    finally:
        repository.remove()


@pytest.fixture(scope="module")
def inventory(lab_server):
    return lab_server.inventory_file()


@pytest.fixture
def as_ubuntu_noble(lab_server):
    """The lab server's /etc/os-release says Ubuntu 24.04, which is all the task reads of it."""
    lab_server.exec("cp --preserve=all /usr/lib/os-release /root/os-release.debian")
    lab_server.exec(f"rm /etc/os-release && printf %s '{UBUNTU_NOBLE}' > /etc/os-release")
    yield
    lab_server.exec("rm /etc/os-release && ln -s ../usr/lib/os-release /etc/os-release")


def planned(run: labhost.PyinfraRun) -> list[str]:
    assert run.returncode == 0, run.stderr[-3000:]
    return run.planned_changes


def release_of(host) -> tuple[str, str]:
    """The server's release codename and Debian architecture, as the server itself says."""
    codename = host.run('. /etc/os-release && echo "$VERSION_CODENAME"').stdout.strip()
    arch = host.run("dpkg --print-architecture").stdout.strip()
    assert codename and arch
    return codename, arch


def assert_engine_works(server: labhost.LabServer, host, login_host) -> None:
    for service in ("docker", "containerd"):
        assert host.service(service).is_running, service
        assert host.service(service).is_enabled, service
    assert "docker" in host.user(server.login_user).groups
    # Containers keep running while the engine restarts.
    assert host.run("docker info --format '{{.LiveRestoreEnabled}}'").stdout.strip() == "true"
    version = host.run("docker compose version --short")
    assert version.rc == 0 and version.stdout.strip().startswith("2."), version.stdout
    # A fresh login (no sudo) picks up the new group: the admin runs docker without sudo.
    ps = login_host.run("docker ps --format '{{.ID}}'")
    assert ps.rc == 0, ps.stderr
    assert login_host.run("id -nG").stdout.split().count("docker") == 1


def test_docker_source_plan_on_debian_13(inventory):
    run = labhost.run_pyinfra(inventory, "tasks/docker.py", dry=True, extra=("--diff",))
    plan = planned(run)
    # --diff shows the file the run would write.
    assert "Will create /etc/apt/sources.list.d/docker.list" in run.stderr
    assert (
        "+ deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
        "https://download.docker.com/linux/debian trixie stable"
    ) in run.stderr
    assert "Download Docker's apt key to /etc/apt/keyrings/docker.asc" in plan
    assert (
        "Add Docker's apt source: deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
        "https://download.docker.com/linux/debian trixie stable"
    ) in plan
    assert "Update apt lists for Docker's repository (its signature verified)" in plan
    assert f"Install Docker packages: {' '.join(DOCKER_CE)}" in plan
    assert not any("apt-key" in name for name in plan)


def test_docker_source_plan_on_ubuntu_noble(inventory, as_ubuntu_noble):
    plan = planned(labhost.run_pyinfra(inventory, "tasks/docker.py", dry=True))
    assert (
        "Add Docker's apt source: deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
        "https://download.docker.com/linux/ubuntu noble stable"
    ) in plan
    assert f"Install Docker packages: {' '.join(DOCKER_CE)}" in plan


def test_distro_source_plan_on_ubuntu_noble(inventory, as_ubuntu_noble):
    plan = planned(
        labhost.run_pyinfra(
            inventory, "tasks/docker.py", dry=True, data={"docker_source": "distro"}
        )
    )
    assert "Install Docker packages: docker.io docker-compose-v2" in plan
    assert not any("Docker's apt" in name for name in plan)


def test_unknown_docker_user_is_refused_before_any_change(inventory, lab_host):
    run = labhost.run_pyinfra(inventory, "tasks/docker.py", data={"docker_users": ["labadmn"]})
    assert run.returncode != 0
    assert "docker_users: no such account on" in run.stderr and "labadmn" in run.stderr
    assert "Starting operation" not in run.stderr
    assert not lab_host.user("labadmn").exists
    assert not lab_host.file(SOURCES_FILE).exists


# Docker's source, from the stand-in of its repository: on lab_server.


@pytest.fixture(scope="module")
def docker_installed(inventory, docker_apt: AptRepository) -> labhost.PyinfraRun:
    """The first deploy of the default source to the fresh lab_server."""
    return labhost.run_pyinfra(
        inventory, "tasks/docker.py", data={"docker_apt_url": docker_apt.url}
    ).check()


def test_docker_source_installs_from_a_signed_repository(
    docker_installed, docker_apt, lab_server, inventory, lab_host, login_host
):
    assert docker_installed.changed > 0
    codename, arch = release_of(lab_host)

    keyring = lab_host.file(KEYRING)
    assert keyring.mode == 0o644 and keyring.user == "root"
    assert keyring.content == docker_apt.published_key()
    assert lab_host.file(SOURCES_FILE).content_string == (
        f"deb [arch={arch} signed-by={KEYRING}] {docker_apt.url}/debian {codename} stable\n"
    )
    # apt lists a repository's packages only once its signature verified, and with
    # Error-Mode=any a signature it no longer accepts fails the update instead of a warning.
    update = lab_host.run("apt-get update -o APT::Update::Error-Mode=any")
    assert update.rc == 0, update.stdout + update.stderr
    policy = lab_host.run("apt-cache policy docker-ce").stdout
    assert f"500 {docker_apt.url}/debian {codename}/stable {arch} Packages" in policy, policy

    for package in DOCKER_CE:
        assert lab_host.package(package).is_installed, package
    # The engine is Docker's package, not the distribution's.
    assert not lab_host.package("docker.io").is_installed
    assert_engine_works(lab_server, lab_host, login_host)

    again = labhost.run_pyinfra(
        inventory, "tasks/docker.py", data={"docker_apt_url": docker_apt.url}
    ).check()
    assert again.changed == 0, again.changed_operations


def test_switching_to_distro_is_refused_before_any_change(docker_installed, inventory, lab_host):
    run = labhost.run_pyinfra(inventory, "tasks/docker.py", data={"docker_source": "distro"})
    assert run.returncode != 0
    assert (
        "docker_source is 'distro', but the Docker engine here was installed from Docker's "
        "apt repository (docker-ce, docker-ce-cli, containerd.io, docker-buildx-plugin, "
        "docker-compose-plugin)"
    ) in run.stderr, run.stderr[-3000:]
    assert "set docker_source to 'docker' to keep it" in run.stderr
    assert f"apt-get remove {' '.join(DOCKER_CE)}" in run.stderr
    assert "Starting operation" not in run.stderr and "Traceback" not in run.stderr
    for package in DOCKER_CE:
        assert lab_host.package(package).is_installed, package
    assert not lab_host.package("docker.io").is_installed
    assert lab_host.service("docker").is_running


def test_a_repository_whose_key_changed_is_refused_not_read_from_old_lists(
    docker_installed, docker_apt, lab_server, inventory, lab_host
):
    """
    apt keeps the old lists of a repository it fetched before and that no longer verifies, and
    exits 0: the deploy must not install from them.
    """
    codename, _ = release_of(lab_host)
    data = {"docker_apt_url": docker_apt.url}
    lab_server.exec("apt-get remove -y docker-compose-plugin")

    with docker_apt.signed_with_another_key():
        run = labhost.run_pyinfra(inventory, "tasks/docker.py", data=data)
    assert run.returncode != 0
    assert (
        f"Docker's apt repository {docker_apt.url}/debian {codename}: its signature did not "
        f"verify with the key in {KEYRING}"
    ) in run.stderr, run.stderr[-3000:]
    assert not lab_host.package("docker-compose-plugin").is_installed

    # Signed with the published key again, the next run puts the package back.
    labhost.run_pyinfra(inventory, "tasks/docker.py", data=data).check()
    assert lab_host.package("docker-compose-plugin").is_installed


def test_a_new_docker_apt_url_brings_its_key_and_a_tampered_one_is_still_refused(
    docker_installed, docker_apt, lab_server, inventory, lab_host
):
    """The keyring follows the repository: a docker_apt_url that publishes another key (and
    signs with it) gets that key and installs; one that publishes the same key as before but
    signs with another (a tampered mirror) is still refused; back at the first URL, its key
    again."""
    codename, _ = release_of(lab_host)
    rotated = {"docker_apt_url": docker_apt.rotated_url}
    assert docker_apt.published_key(url=docker_apt.rotated_url) != docker_apt.published_key()
    lab_server.exec("apt-get remove -y docker-compose-plugin")

    run = labhost.run_pyinfra(inventory, "tasks/docker.py", data=rotated).check()
    assert f"Download Docker's apt key to {KEYRING}" in run.changed_operations
    assert lab_host.file(KEYRING).content == docker_apt.published_key(url=docker_apt.rotated_url)
    assert lab_host.package("docker-compose-plugin").is_installed
    policy = lab_host.run("apt-cache policy docker-ce").stdout
    assert f"{docker_apt.rotated_url}/debian {codename}/stable" in policy, policy
    again = labhost.run_pyinfra(inventory, "tasks/docker.py", data=rotated).check()
    assert again.changed == 0, again.changed_operations

    lab_server.exec("apt-get remove -y docker-compose-plugin")
    tampered = labhost.run_pyinfra(
        inventory, "tasks/docker.py", data={"docker_apt_url": docker_apt.another_key_url}
    )
    assert tampered.returncode != 0
    assert (
        f"Docker's apt repository {docker_apt.another_key_url}/debian {codename}: its "
        f"signature did not verify with the key in {KEYRING}"
    ) in tampered.stderr, tampered.stderr[-3000:]
    assert not lab_host.package("docker-compose-plugin").is_installed

    data = {"docker_apt_url": docker_apt.url}
    back = labhost.run_pyinfra(inventory, "tasks/docker.py", data=data).check()
    assert lab_host.file(KEYRING).content == docker_apt.published_key()
    assert lab_host.package("docker-compose-plugin").is_installed
    assert back.changed > 0


# The distribution's packages: on distro_server.


@pytest.fixture(scope="module")
def distro_server():
    with labhost.running_lab_server() as server:
        yield server


@pytest.fixture(scope="module")
def distro_inventory(distro_server):
    return distro_server.inventory_file()


@pytest.fixture(scope="module")
def distro_host(distro_server):
    return distro_server.testinfra(sudo=True)


@pytest.fixture(scope="module")
def distro_installed(distro_server, distro_inventory) -> labhost.PyinfraRun:
    # The admin's own engine setting, which labhub keeps beside its own.
    distro_server.exec(
        'mkdir -p /etc/docker && echo \'{"log-level": "warn"}\' > /etc/docker/daemon.json'
    )
    return labhost.run_pyinfra(
        distro_inventory, "tasks/docker.py", data={"docker_source": "distro"}
    ).check()


def test_distro_source_installs_a_working_engine(
    distro_installed, distro_server, distro_inventory, distro_host
):
    assert distro_installed.changed > 0
    assert distro_host.package("docker.io").is_installed
    assert distro_host.package("docker-compose").is_installed
    assert not distro_host.package("docker-ce").is_installed
    assert not distro_host.file(SOURCES_FILE).exists
    assert_engine_works(distro_server, distro_host, distro_server.testinfra(sudo=False))
    assert json.loads(distro_host.file("/etc/docker/daemon.json").content_string) == {
        "live-restore": True,
        "log-level": "warn",
    }

    again = labhost.run_pyinfra(
        distro_inventory, "tasks/docker.py", data={"docker_source": "distro"}
    ).check()
    assert again.changed == 0, again.changed_operations


def test_switching_to_docker_is_refused_before_any_change(
    distro_installed, distro_inventory, distro_host, docker_apt
):
    run = labhost.run_pyinfra(
        distro_inventory, "tasks/docker.py", data={"docker_apt_url": docker_apt.url}
    )
    assert run.returncode != 0
    assert (
        "docker_source is 'docker', but the Docker engine here was installed from the "
        "distribution's packages (docker.io"
    ) in run.stderr, run.stderr[-3000:]
    assert "set docker_source to 'distro' to keep it" in run.stderr
    assert "apt-get remove docker.io" in run.stderr
    assert "Starting operation" not in run.stderr and "Traceback" not in run.stderr
    assert not distro_host.file(KEYRING).exists
    assert not distro_host.file(SOURCES_FILE).exists
    assert distro_host.package("docker.io").is_installed
    assert distro_host.service("docker").is_running


# A repository signed with another key than the one it publishes: on a fresh server.


@pytest.fixture
def fresh_server():
    with labhost.running_lab_server() as server:
        yield server


def test_a_repository_signed_with_another_key_is_refused(fresh_server, docker_apt):
    inventory = fresh_server.inventory_file()
    host = fresh_server.testinfra(sudo=True)
    codename, _ = release_of(host)
    data = {"docker_apt_url": docker_apt.another_key_url}
    refusal = (
        f"Docker's apt repository {docker_apt.another_key_url}/debian {codename}: its "
        f"signature did not verify with the key in {KEYRING}, so apt refused the "
        "repository and nothing was installed from it"
    )

    for attempt in ("first run", "run again"):
        run = labhost.run_pyinfra(inventory, "tasks/docker.py", data=data)
        assert run.returncode != 0, attempt
        assert refusal in run.stderr, (attempt, run.stderr[-3000:])
        assert "Traceback" not in run.stderr
        # The deploy stopped at apt's refusal: no later operation was started.
        last_operation = run.stderr.rsplit("--> Starting operation: ", 1)[1]
        assert last_operation.startswith(
            "Update apt lists for Docker's repository (its signature verified)"
        ), attempt

    # The published key was installed as the admin asked; apt refused what it did not sign.
    assert host.file(KEYRING).content == docker_apt.published_key()
    assert host.run("apt-cache madison docker-ce").stdout.strip() == ""
    for package in [*DOCKER_CE, "docker.io"]:
        assert not host.package(package).is_installed, package
