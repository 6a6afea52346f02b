"""
Where the engine comes from, without a server: the refusal to swap one source's engine for the
other's, and how apt's refusal of a repository is told. The end-to-end tests run both on lab
servers (tests/test_docker_e2e.py).
"""

from __future__ import annotations

import shlex

import pytest

from labhub import docker_source
from labhub.operations import apt_source

DOCKER_CE = set(docker_source.DOCKER_CE_PACKAGES)
DEBIAN = {"docker.io", "docker-cli", "docker-compose", "containerd", "runc"}


@pytest.mark.parametrize(
    ("installed", "source"),
    [
        (set(), None),
        ({"containerd", "runc"}, None),
        (DEBIAN, "distro"),
        (DOCKER_CE | {"runc"}, "docker"),
        # Docker's CLI alone, as some admins install it to talk to a remote engine.
        ({"docker-ce-cli"}, "docker"),
        # Not a real host (the packages conflict), but Docker's win: they are what apt keeps.
        (DOCKER_CE | {"docker.io"}, "docker"),
    ],
)
def test_installed_source(installed, source):
    assert docker_source.installed_source(installed) == source


@pytest.mark.parametrize("setting", ["docker", "distro"])
def test_a_new_server_or_the_same_source_is_no_switch(setting):
    assert docker_source.switch_problem(setting, set()) is None
    own = DOCKER_CE if setting == "docker" else DEBIAN
    assert docker_source.switch_problem(setting, own) is None


def test_switching_to_distro_names_the_setting_and_both_ways_out():
    problem = docker_source.switch_problem("distro", DOCKER_CE | {"runc"})
    assert problem.startswith(
        "docker_source is 'distro', but the Docker engine here was installed from Docker's apt "
        "repository (docker-ce, docker-ce-cli, containerd.io, docker-buildx-plugin, "
        "docker-compose-plugin)"
    )
    assert "set docker_source to 'docker' to keep it" in problem
    assert (
        "apt-get remove docker-ce docker-ce-cli containerd.io docker-buildx-plugin "
        "docker-compose-plugin;"
    ) in problem


def test_switching_to_docker_lists_only_the_installed_distribution_packages():
    problem = docker_source.switch_problem("docker", DEBIAN | {"git"})
    assert (
        "installed from the distribution's packages (docker.io, docker-cli, docker-compose, "
        "containerd, runc)"
    ) in problem
    assert "set docker_source to 'distro' to keep it" in problem
    assert "apt-get remove docker.io docker-cli docker-compose containerd runc;" in problem


def test_repository_is_named_as_apt_names_it():
    os_release = {"id": "debian", "version_codename": "trixie", "version_id": "13"}
    assert (
        docker_source.repository("http://10.0.0.1/linux", os_release)
        == "http://10.0.0.1/linux/debian trixie"
    )
    assert docker_source.apt_source_line("http://10.0.0.1/linux", os_release, "arm64") == (
        "deb [arch=arm64 signed-by=/etc/apt/keyrings/docker.asc] "
        "http://10.0.0.1/linux/debian trixie stable"
    )


def test_update_command_reads_one_source_and_fails_on_warnings():
    words = shlex.split(apt_source.update_command("/etc/apt/sources.list.d/my list.list"))
    assert words[:5] == ["env", "LC_ALL=C", "apt-get", "update", "-q"]
    options = [words[i + 1] for i, word in enumerate(words) if word == "-o"]
    assert options == [
        "Dir::Etc::SourceList=/etc/apt/sources.list.d/my list.list",
        "Dir::Etc::SourceParts=-",
        "APT::Get::List-Cleanup=0",
        "APT::Update::Error-Mode=any",
    ]


REPOSITORY = "Docker's apt repository http://10.0.0.1/linux/debian trixie"


def test_a_signature_apt_refuses_is_told_in_one_line():
    # apt 3.0 (sqv) on a repository it never fetched before.
    lines = [
        "Err:1 http://10.0.0.1/linux/debian trixie InRelease",
        "W: OpenPGP signature verification failed: http://10.0.0.1/linux/debian trixie "
        "InRelease: Sub-process /usr/bin/sqv returned an error code (1), error message is: "
        "Missing key 63F7D289, which is needed to verify signature.",
        "E: The repository 'http://10.0.0.1/linux/debian trixie InRelease' is not signed.",
    ]
    assert apt_source.failure_message(REPOSITORY, "/etc/apt/keyrings/docker.asc", lines) == (
        f"{REPOSITORY}: its signature did not verify with the key in "
        "/etc/apt/keyrings/docker.asc, so apt refused the repository and nothing was installed "
        "from it (apt: Missing key 63F7D289, which is needed to verify signature.)"
    )


def test_gpgv_wording_of_a_missing_key_is_a_signature_problem_too():
    # apt 2.x (gpgv), on Debian 12 and Ubuntu 24.04.
    lines = [
        "W: GPG error: http://10.0.0.1/linux/debian bookworm InRelease: The following "
        "signatures couldn't be verified because the public key is not available: "
        "NO_PUBKEY 2287B8CD8A1E3680",
        "E: The repository 'http://10.0.0.1/linux/debian bookworm InRelease' is not signed.",
    ]
    message = apt_source.failure_message(REPOSITORY, "/etc/apt/keyrings/docker.asc", lines)
    assert "its signature did not verify" in message and "NO_PUBKEY 2287B8CD8A1E3680" in message


def test_other_update_failures_are_not_called_signature_problems():
    lines = [
        "E: Failed to fetch http://10.0.0.1/linux/debian/dists/trixie/InRelease  "
        "404  Not Found [IP: 10.0.0.1 80]"
    ]
    message = apt_source.failure_message(REPOSITORY, "/etc/apt/keyrings/docker.asc", lines)
    assert message.startswith(
        f"{REPOSITORY}: apt could not update its package lists (apt: Failed to fetch"
    )
    assert "signature" not in message
