"""
Fixtures for end-to-end tests: a fresh Debian 13 lab server container reached over SSH, as a lab
admin reaches a real server. A test that cannot get its lab server fails; it never skips.

The suite runs in two processes (pytest-xdist, ``--dist loadgroup``): each process takes whole
groups, and every module is a group of its own (its tests share its lab server, in order), but
for the modules in ``SHARED_LAB_MODULES``: they are one group, run in one process in that order,
on one lab server deployed once (``shared_lab``).
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hubclient import resolving
from scenario import DOMAIN, ScenarioLab

import labhost

SHARED_LAB_GROUP = "shared-lab"
# The order the modules of the shared lab go in. status first: it needs a hub user who never
# logged in and shares nothing has mounted, and puts back what it breaks; browser next: it
# deploys settings of its own and deletes the image it pushed; hub last: it reboots the server,
# swaps the shares' fstab lines for tmpfs and pushes images.
SHARED_LAB_MODULES = ("test_status_e2e", "test_browser_e2e", "test_hub_e2e")
# The groups handed out first (in the order the tests are collected, as each process runs low):
# the longest, so that two of them do not end the run on one process while the other has
# finished. The fast tests come last and fill in.
LONGEST_FIRST = (
    SHARED_LAB_GROUP,
    # Three lab servers each: the hub server and two lab nodes.
    "test_swarm_e2e",
    "test_swarm_spawn_e2e",
    "test_node_registry_e2e",
    "test_backup_e2e",
    "test_registry_e2e",
    "test_interrupted_e2e",
    "test_https_e2e",
    "test_docker_e2e",
    "test_limits_e2e",
    # Not end to end, but 225 dry runs of pyinfra (three minutes of CPU): beside the waits of a
    # lab server's test, not alone at the end.
    "test_refusals",
)


def group(module: str) -> str:
    """The group a test module's tests run in: its own, or the shared lab's."""
    return SHARED_LAB_GROUP if module in SHARED_LAB_MODULES else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadgroup`` by ``group``, from each test's module: xdist's own reads
    ``xdist_group`` marks from a suffix it writes into node ids, which pytest 9.2 no longer takes,
    so it silently stops grouping (pytest-dev/pytest-xdist#1386)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ByGroup(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group(PurePosixPath(nodeid.split("::", 1)[0]).stem)

    return ByGroup(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each group's tests together (the shared lab's modules in their order), the longest
    groups first, end-to-end before fast; in each module, its own order."""
    for item in items:
        if "shared_lab" in item.fixturenames and item.module.__name__ not in SHARED_LAB_MODULES:
            raise pytest.UsageError(
                f"{item.module.__name__} uses shared_lab: add it to "
                "SHARED_LAB_MODULES, where the order it goes in is decided"
            )

    def rank(indexed: tuple[int, pytest.Item]) -> tuple:
        index, item = indexed
        module = item.module.__name__
        slow = (
            LONGEST_FIRST.index(group(module))
            if group(module) in LONGEST_FIRST
            else len(LONGEST_FIRST)
        )
        e2e = item.get_closest_marker("e2e") is not None
        within = SHARED_LAB_MODULES.index(module) if module in SHARED_LAB_MODULES else 0
        return (slow, not e2e, group(module), within, index)

    items[:] = [item for _, item in sorted(enumerate(items), key=rank)]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # What the machine lacks to run lab servers (or what the harness could not find on its
    # engine) is said in its own words, not as a traceback from deep in a fixture.
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(labhost.LabHostError):
        report.longrepr = f"labhost: {call.excinfo.value}"
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    labhost.wait_for_removals()


@pytest.fixture(scope="module")
def lab_server(request):
    """A fresh lab server for the tests of one module, removed afterwards (while the next
    module starts); for a module marked ``engine_installed``, with the Docker engine already
    installed and the stand-in images in it."""
    stand_ins = request.node.get_closest_marker("engine_installed") is not None
    with labhost.running_lab_server(stand_ins=stand_ins) as server:
        yield server


# The shared lab of this process, once its first module has started it.
SHARED_LAB: dict = {}


@pytest.fixture(scope="module")
def shared_lab(request, tmp_path_factory):
    """One lab server with the scenario deployed (``scenario.ScenarioLab``), for the modules of
    SHARED_LAB_MODULES in turn: started by the first of them, removed after the last (its labs
    would only take the machine's time from the modules after it)."""
    if "failed" in SHARED_LAB:
        raise labhost.LabHostError(
            f"the shared lab server could not be deployed (the error is {SHARED_LAB['failed']}'s)"
        )
    if "lab" not in SHARED_LAB:
        server = labhost.start_lab_server(stand_ins=True)
        request.config.add_cleanup(server.remove)
        try:
            SHARED_LAB["lab"] = ScenarioLab.deploy(server, tmp_path_factory.mktemp("shared-lab"))
        except BaseException:
            SHARED_LAB["failed"] = request.module.__name__
            server.remove()
            raise
    yield SHARED_LAB["lab"]
    modules = [
        item.module.__name__
        for item in request.session.items
        if group(item.module.__name__) == SHARED_LAB_GROUP
    ]
    if request.module.__name__ == modules[-1]:
        labhost.remove_in_background(SHARED_LAB.pop("lab").server)


@pytest.fixture(scope="module")
def scenario_lab(shared_lab):
    """The shared lab with the scenario's settings (deployed again when a module before changed
    them), the hub's name resolving to it."""
    shared_lab.converge()
    with resolving(DOMAIN, lambda: shared_lab.server.address):
        yield shared_lab


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
