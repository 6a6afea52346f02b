"""
tasks/docker.py on a fresh Debian 13 lab server, over SSH, through pyinfra's CLI.

Docker's own apt repository cannot be reached from this machine: the "docker" source is checked
through pyinfra's dry-run plan against the lab server (the exact keyring path, apt source line and
package set), and a real run of it is shown to stop at the key download, not hidden.
"""

from __future__ import annotations

import pytest

from labhub import labhost

pytestmark = pytest.mark.e2e

DOCKER_CE = "docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin"
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


def test_docker_source_plan_on_debian_13(inventory):
    run = labhost.run_pyinfra(inventory, "tasks/docker.py", dry=True, extra=("--diff",))
    plan = planned(run)
    # --diff shows the file the run would write.
    assert "Will create /etc/apt/sources.list.d/docker.list" in run.stderr
    assert ("+ deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
            "https://download.docker.com/linux/debian trixie stable") in run.stderr
    assert "Download Docker's apt key to /etc/apt/keyrings/docker.asc" in plan
    assert (
        "Add Docker's apt source: deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
        "https://download.docker.com/linux/debian trixie stable"
    ) in plan
    assert f"Install Docker packages: {DOCKER_CE}" in plan
    assert not any("apt-key" in name for name in plan)


def test_docker_source_plan_on_ubuntu_noble(inventory, as_ubuntu_noble):
    plan = planned(labhost.run_pyinfra(inventory, "tasks/docker.py", dry=True))
    assert (
        "Add Docker's apt source: deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
        "https://download.docker.com/linux/ubuntu noble stable"
    ) in plan
    assert f"Install Docker packages: {DOCKER_CE}" in plan


def test_distro_source_plan_on_ubuntu_noble(inventory, as_ubuntu_noble):
    plan = planned(labhost.run_pyinfra(inventory, "tasks/docker.py", dry=True,
                                       data={"docker_source": "distro"}))
    assert "Install Docker packages: docker.io docker-compose-v2" in plan
    assert not any("Docker's apt" in name for name in plan)


def test_docker_source_cannot_reach_docker_repository_here(inventory, lab_host):
    """A real run of the default source stops at the key download: the repository is unreachable."""
    run = labhost.run_pyinfra(inventory, "tasks/docker.py")
    assert run.returncode != 0
    # pyinfra prints no JSON results when the host fails: read its log of the failing operation.
    last_operation = run.stderr.rsplit("--> Starting operation: ", 1)[1]
    assert last_operation.startswith("Download Docker's apt key to /etc/apt/keyrings/docker.asc")
    assert "Could not resolve host: download.docker.com" in last_operation
    assert not lab_host.file("/etc/apt/sources.list.d/docker.list").exists
    assert not lab_host.package("docker-ce").is_installed


def test_distro_source_installs_a_working_engine(lab_server, inventory, lab_host, login_host):
    first = labhost.run_pyinfra(inventory, "tasks/docker.py", data={"docker_source": "distro"})
    first.check()
    assert first.changed > 0

    for service in ("docker", "containerd"):
        assert lab_host.service(service).is_running, service
        assert lab_host.service(service).is_enabled, service
    assert "docker" in lab_host.user(lab_server.login_user).groups

    version = lab_host.run("docker compose version --short")
    assert version.rc == 0 and version.stdout.strip().startswith("2."), version.stdout
    # A fresh login (no sudo) picks up the new group: the admin runs docker without sudo.
    ps = login_host.run("docker ps --format '{{.ID}}'")
    assert ps.rc == 0, ps.stderr
    assert login_host.run("id -nG").stdout.split().count("docker") == 1

    second = labhost.run_pyinfra(inventory, "tasks/docker.py", data={"docker_source": "distro"})
    second.check()
    assert second.changed == 0, second.changed_operations


def test_unknown_docker_user_is_refused_before_any_change(inventory, lab_host):
    run = labhost.run_pyinfra(inventory, "tasks/docker.py",
                              data={"docker_source": "distro", "docker_users": ["labadmn"]})
    assert run.returncode != 0
    assert "docker_users: no such account on" in run.stderr and "labadmn" in run.stderr
    assert "Starting operation" not in run.stderr
    assert not lab_host.user("labadmn").exists
