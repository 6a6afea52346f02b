"""
Fixtures for end-to-end tests: a fresh Debian 13 lab server container reached over SSH, as a lab
admin reaches a real server. A test that cannot get its lab server fails; it never skips.
"""

from __future__ import annotations

import pytest
from hubclient import resolving
from scenario import DOMAIN

import labhost


@pytest.fixture(scope="module")
def lab_server():
    """A fresh lab server for the tests of one module, removed afterwards."""
    with labhost.running_lab_server() as server:
        yield server


@pytest.fixture(scope="module")
def lab_host(lab_server):
    """pytest-testinfra's view of the lab server, over SSH, with sudo."""
    return lab_server.testinfra(sudo=True)


@pytest.fixture(scope="module")
def login_host(lab_server):
    """The lab server as the SSH login user, without sudo: each command is a fresh login."""
    return lab_server.testinfra(sudo=False)


@pytest.fixture(scope="module")
def resolve(lab_server):
    """The hub's name resolves to the lab server in this process, as its DNS record would."""
    with resolving(DOMAIN, lambda: lab_server.address):
        yield
