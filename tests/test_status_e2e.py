"""
tasks/status.py on a deployed lab server: healthy, then with the registry stopped, a share
unmounted, a hub user's account locked and the registry's disk nearly full (a small tmpfs over
its data), each problem named and the run failed. Also what the no-change run sends.

On the shared lab server (conftest.py), first of its modules: right after its cold deploy.
"""

from __future__ import annotations

import pytest
from hubclient import Hub
from scenario import DATA_SHARE, DOMAIN, PASSWORDS, SCRATCH_SHARE, URL

import labhost

pytestmark = pytest.mark.e2e
# CIFS cannot mount here: status enters each share (its automount, where the kernel has autofs,
# fails to mount it) and names it not mounted.
UNMOUNTED = [
    f"share data: not mounted at {DATA_SHARE}",
    f"share scratch: not mounted at {SCRATCH_SHARE}",
]


@pytest.fixture(scope="module")
def deployed(scenario_lab):
    """The shared lab as its cold deploy left it; what test_each_problem_is_named_and_the_run_fails
    breaks is put back afterwards, for the modules after this one."""
    server = scenario_lab.server
    yield {
        "server": server,
        "inventory": scenario_lab.inventory,
        "url": URL,
        "verify": scenario_lab.verify,
    }
    # And the next module deploys the scenario again before its tests, to be sure.
    scenario_lab.changed_by = __name__
    server.exec("docker compose -f /opt/labhub/compose.yaml start registry")
    server.exec("usermod --expiredate '' jupyter-bob")
    server.automounts("start", [DATA_SHARE])


def status(inventory) -> labhost.PyinfraRun:
    return labhost.run_pyinfra(inventory, "tasks/status.py")


def failed(run: labhost.PyinfraRun) -> list[str]:
    return [op["name"] for op in run.result["results"]["operations"] if op["error"]]


def names(run: labhost.PyinfraRun) -> list[str]:
    return [op["name"] for op in run.result["results"]["operations"]]


def test_the_no_change_run_sends_few_commands(deployed):
    run = labhost.run_pyinfra(deployed["inventory"], "deploy.py", extra=("--debug",)).check()
    assert run.changed == 0, run.changed_operations
    sent = [
        line
        for line in run.stderr.splitlines()
        if ("Running command on" in line or "Attempting upload of" in line)
        # The shares' mount attempts: sent again only because CIFS cannot mount here; on a
        # server whose shares are mounted they are not sent.
        and "--suffix=mount /srv/shares/" not in line
    ]
    # 21: one more since a failed hub upgrade leaves a mark that a deploy reads (and clears once
    # the hub runs as built).
    assert len(sent) <= 21, "\n".join(sent)
    dry = labhost.run_pyinfra(
        deployed["inventory"], "deploy.py", dry=True, extra=("--diff", "--debug")
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    # What the real run does here: try the shares' mounts again (and, maybe, reload for them).
    certain = [op["name"] for op in dry.result["plan"] if op["hosts_with_change"]]
    assert sorted(certain) == [
        f"tasks/shares.py | Mount share {name} at /srv/shares/{name}"
        for name in ("data", "scratch")
    ], certain
    sent = [line for line in dry.stderr.splitlines() if "Running command on" in line]
    # The same reads as the real run's.
    assert len(sent) <= 21, "\n".join(sent)


def test_a_healthy_server_reports_healthy(deployed):
    alice = Hub(deployed["url"], "alice", verify=deployed["verify"])
    alice.login(PASSWORDS["alice"])
    assert alice.logged_in()

    run = status(deployed["inventory"])
    assert run.changed == 0 and failed(run) == UNMOUNTED
    found = names(run)
    assert run.returncode != 0
    assert found[-1] == f"labhub status: {len(UNMOUNTED)} problem(s)"
    assert any(name.startswith("hub: JupyterHub ") and "answers at" in name for name in found)
    assert any(name.startswith("registry: ") and "answers at" in name for name in found)
    assert "hub user alice: account jupyter-alice active, password set" in found
    assert (
        "hub user bob: account jupyter-bob active, no password yet (the first login sets it)"
    ) in found
    assert any(name.startswith("disk of the registry's data") for name in found)
    assert any(name.startswith("registry pruning would free ") for name in found)
    # The proxy's local CA issues for hours, and renews them itself.
    assert any(
        name.startswith(f"certificate of {DOMAIN} (internal): ") and name.endswith(" left")
        for name in found
    ), found


def test_each_problem_is_named_and_the_run_fails(deployed):
    server = deployed["server"]
    server.exec("docker compose -f /opt/labhub/compose.yaml stop registry")
    server.automounts("stop", [DATA_SHARE])
    server.exec("usermod --expiredate 1 jupyter-bob")
    data = server.exec(
        "docker volume inspect labhub_registry-data --format '{{.Mountpoint}}'"
    ).strip()
    server.exec(f"mount -t tmpfs -o size=1m tmpfs {data} && head -c 990000 /dev/zero > {data}/fill")
    try:
        run = status(deployed["inventory"])
    finally:
        server.exec(f"umount {data}")
    # Non-zero, and the results still printed: scripts read them.
    assert run.returncode != 0
    assert run.result["results"]["failed_hosts"] == [server.address]
    problems = failed(run)
    expected = 4 + len(UNMOUNTED) - (f"share data: not mounted at {DATA_SHARE}" in UNMOUNTED)
    assert names(run)[-1] == f"labhub status: {expected} problem(s)"
    assert len(problems) == expected, problems
    assert any(name.startswith("registry: ") and "does not answer" in name for name in problems), (
        problems
    )
    assert f"share data: not mounted at {DATA_SHARE}" in problems
    assert any(name.startswith("hub user bob: account jupyter-bob locked") for name in problems)
    assert any(name.startswith(f"disk of the registry's data ({data}): ") for name in problems), (
        problems
    )
    # The healthy parts are not problems, and each problem is told in the output.
    assert not any(
        name.startswith(("hub: ", "hub user alice", "share scratch"))
        for name in problems
        if name not in UNMOUNTED
    )
    for words in (
        "registry does not answer",
        f"nothing is mounted at {DATA_SHARE}",
        "account jupyter-bob is locked",
        "the disk is nearly full",
    ):
        assert words in run.stderr, words
