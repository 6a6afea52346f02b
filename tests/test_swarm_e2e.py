"""
deploy.py on a lab of three lab servers, over SSH, through pyinfra's CLI: a hub server and two
lab nodes with node labels. The swarm forms from the inventory (the hub server its manager, the
nodes its workers with their labels, an encrypted attachable overlay network), the accounts have
the hub's ids on every node, the join token is never printed nor on a command line, a node
removed from the inventory leaves the swarm and joins again when it is added back; a node whose
account has another uid is refused before anything changes anywhere.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import labhost

pytestmark = pytest.mark.e2e

USERS = ["alice", {"name": "bob", "groups": ["leem"]}]
LABELS = ({"role": "compute"}, {"gpu": "a100", "role": "compute"})
DOMAIN = "hub.lab.test"


@pytest.fixture(scope="module")
def lab():
    # The hub server's engine is installed beforehand, with the stand-ins in it: the deploy
    # installs the nodes' engines, which is the install this module tests.
    servers = [labhost.start_lab_server("swarm0", stand_ins=True)]
    try:
        servers += labhost.start_lab_servers(2, name="swarm-node")
        # The nodes find the hub's name (they pull the lab images by it) as a DNS record says.
        for node in servers[1:]:
            node.exec(f"echo '{servers[0].address} {DOMAIN}' >> /etc/hosts")
        overrides = labhost.load_stack_images(servers[0])
        yield servers, overrides
    finally:
        for server in servers:
            labhost.remove_in_background(server)


@pytest.fixture(scope="module")
def hub(lab):
    return lab[0][0]


@pytest.fixture(scope="module")
def nodes(lab):
    return lab[0][1:]


def inventory(lab, tmp_path_factory, nodes: tuple[int, ...] = (0, 1)):
    (hub, *lab_nodes), overrides = lab
    common = {
        "docker_source": "distro",
        "hub_users": USERS,
        "hub_domain": DOMAIN,
        **overrides,
    }
    return labhost.write_inventory(
        tmp_path_factory.mktemp("swarm") / "inventory.py",
        [(hub, common)],
        [(lab_nodes[i], {**common, "node_labels": LABELS[i]}) for i in nodes],
    )


def swarm_nodes(hub: labhost.LabServer) -> dict[str, dict]:
    """The swarm's nodes as its manager lists them, by host name."""
    found = json.loads(hub.exec("docker node inspect $(docker node ls -q)"))
    return {node["Description"]["Hostname"]: node for node in found}


def hostname(server: labhost.LabServer) -> str:
    return server.exec("hostname").strip()


def ids(server: labhost.LabServer) -> dict[str, str]:
    return {
        name: server.exec(f"getent {database} {name} | cut -d: -f3").strip()
        for database, name in (
            ("passwd", "jupyter-alice"),
            ("passwd", "jupyter-bob"),
            ("group", "leem"),
        )
    }


def test_a_node_account_with_another_uid_is_refused_before_any_change(
    lab, hub, nodes, tmp_path_factory
):
    # An account labhub made on node 2 earlier, with a uid of its own.
    nodes[1].exec("useradd -m -u 1500 -g users -c 'labhub hub user bob' jupyter-bob")
    try:
        run = labhost.run_pyinfra(inventory(lab, tmp_path_factory), "deploy.py")
        assert run.returncode != 0
        said = run.stdout + run.stderr
        # The lab's uid of bob: the lowest free on every server (the login account has 1000,
        # alice gets 1001).
        assert (
            f"account jupyter-bob on lab node {nodes[1].address} has uid 1500, the lab's is 1002"
            in said
        )
        assert "usermod --uid 1002 jupyter-bob" in said
        # Nothing changed on any server: no hub accounts, no engine on the nodes.
        for server in (hub, *nodes):
            assert server.exec("getent passwd jupyter-alice || true").strip() == ""
        for node in nodes:
            assert node.exec("command -v dockerd || true").strip() == ""
    finally:
        nodes[1].exec("userdel -r jupyter-bob")


class Sampler:
    """The command lines of every process on a server, sampled while a deploy runs."""

    def __init__(self, server: labhost.LabServer):
        self.proc = subprocess.Popen(
            [
                "docker",
                "exec",
                server.container_id,
                "sh",
                "-c",
                "while :; do cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; echo; "
                "sleep 0.05; done",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def stop(self) -> str:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=60)
        return out


@pytest.fixture(scope="module")
def formed(lab, hub, nodes, tmp_path_factory):
    """The first deploy, at -vvv (pyinfra prints every fact's output), the command lines of
    every server's processes sampled meanwhile."""
    samplers = [Sampler(server) for server in (hub, *nodes)]
    try:
        run = labhost.run_pyinfra(inventory(lab, tmp_path_factory), "deploy.py", extra=("-vvv",))
    finally:
        command_lines = [sampler.stop() for sampler in samplers]
    run.check()
    return run, command_lines


def test_the_swarm_forms_with_the_nodes_labels(formed, hub, nodes):
    found = swarm_nodes(hub)
    assert len(found) == 3
    assert {node["Status"]["State"] for node in found.values()} == {"ready"}
    assert found[hostname(hub)]["Spec"]["Role"] == "manager"
    for node, labels in zip(nodes, LABELS):
        assert found[hostname(node)]["Spec"]["Role"] == "worker"
        assert found[hostname(node)]["Spec"]["Labels"] == labels
        assert found[hostname(node)]["Status"]["Addr"] == node.address


def test_the_swarm_network_is_an_encrypted_attachable_overlay(formed, hub):
    network = json.loads(hub.exec("docker network inspect labhub-swarm"))[0]
    assert network["Driver"] == "overlay"
    assert network["Scope"] == "swarm"
    assert network["Attachable"] is True
    assert "encrypted" in network["Options"]


def test_accounts_have_the_hub_servers_ids_on_every_node(formed, hub, nodes):
    on_hub = ids(hub)
    assert all(on_hub.values())
    for node in nodes:
        assert ids(node) == on_hub


def test_the_join_token_is_never_printed_nor_on_a_command_line(formed, hub, nodes):
    run, command_lines = formed
    token = hub.exec("docker swarm join-token -q worker").strip()
    assert token.startswith("SWMTKN-")
    # The facts' output was printed: the run was verbose enough to show a token read as a fact.
    assert "docker swarm join-token" in run.stderr
    assert token not in run.stdout
    assert token not in run.stderr
    for sampled in command_lines:
        assert "sshd" in sampled
        assert token not in sampled
    for node in nodes:
        assert node.exec("ls /run/labhub-swarm-join.json 2>/dev/null || true").strip() == ""


def test_a_second_run_changes_nothing(formed, lab, tmp_path_factory):
    run = labhost.run_pyinfra(inventory(lab, tmp_path_factory), "deploy.py").check()
    assert run.changed_operations == []


def test_a_node_removed_from_the_inventory_leaves_the_swarm(
    formed, lab, hub, nodes, tmp_path_factory
):
    labhost.run_pyinfra(inventory(lab, tmp_path_factory, nodes=(0,)), "deploy.py").check()
    found = swarm_nodes(hub)
    assert hostname(nodes[1]) not in found
    assert hostname(nodes[0]) in found


def test_a_node_added_back_joins_and_only_what_names_the_nodes_changes(
    formed, lab, hub, nodes, tmp_path_factory
):
    run = labhost.run_pyinfra(inventory(lab, tmp_path_factory), "deploy.py").check()
    swarm = [op for op in run.changed_operations if op.startswith("tasks/swarm.py")]
    assert sorted(swarm) == sorted(
        [
            f"tasks/swarm.py | Join the swarm of {hub.address} as a worker",
            "tasks/swarm.py | The lab nodes in the swarm with their labels, other workers "
            "drained and removed",
        ]
    )
    # Besides: what names the nodes' addresses, the homes' export and the proxy that serves the
    # registry to the nodes alone.
    others = sorted(set(run.changed_operations) - set(swarm))
    assert others == sorted(
        [
            "tasks/homes.py | Export the homes to the lab nodes: /etc/exports.d/labhub.exports",
            "tasks/homes.py | Export the homes as the exports files say (exportfs -ra)",
            *[op for op in others if op.startswith("tasks/hub.py | ")],
        ]
    ), others
    assert "tasks/hub.py | Bring up the hub stack (docker compose up)" in others
    deadline = time.monotonic() + 60
    while True:
        found = swarm_nodes(hub)
        node = found.get(hostname(nodes[1]))
        if node and node["Status"]["State"] == "ready" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert node is not None and node["Status"]["State"] == "ready"
    assert node["Spec"]["Labels"] == LABELS[1]


def test_a_node_in_another_swarm_leaves_it_and_joins_the_labs(
    formed, lab, hub, nodes, tmp_path_factory
):
    # Node 1 leaves and makes a swarm of its own, as a server reused from another lab would be.
    nodes[0].exec("docker swarm leave --force && docker swarm init >/dev/null")
    run = labhost.run_pyinfra(inventory(lab, tmp_path_factory), "deploy.py").check()
    assert f"tasks/swarm.py | Join the swarm of {hub.address} as a worker" in run.changed_operations
    info = json.loads(nodes[0].exec("docker info --format '{{json .Swarm}}'"))
    assert info["LocalNodeState"] == "active" and info["ControlAvailable"] is False
    found = json.loads(hub.exec("docker node inspect $(docker node ls -q)"))
    # Its entry from before it left is gone: one node of that name, the worker it is now.
    mine = [node for node in found if node["Description"]["Hostname"] == hostname(nodes[0])]
    assert [node["ID"] for node in mine] == [info["NodeID"]]
    assert mine[0]["Spec"]["Labels"] == LABELS[0]
