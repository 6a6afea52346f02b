"""
Fixtures for end-to-end tests: a fresh Debian 13 lab server container reached over SSH, as a lab
admin reaches a real server. A test that cannot get its lab server fails; it never skips.
"""

from __future__ import annotations

import pytest
import testinfra

import labhost


def _testinfra_host(server: labhost.LabServer, sudo: bool):
    return testinfra.get_host(
        f"ssh://{server.login_user}@{server.address}",
        ssh_identity_file=str(server.key_path),
        ssh_extra_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        "-o LogLevel=ERROR",
        sudo=sudo,
    )


@pytest.fixture(scope="module")
def lab_server():
    """A fresh lab server for the tests of one module, removed afterwards."""
    server = labhost.start_lab_server()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def lab_host(lab_server):
    """pytest-testinfra's view of the lab server, over SSH, with sudo."""
    return _testinfra_host(lab_server, sudo=True)


@pytest.fixture(scope="module")
def login_host(lab_server):
    """The lab server as the SSH login user, without sudo: each command is a fresh login."""
    return _testinfra_host(lab_server, sudo=False)
