"""
A lab of several servers without a server: the settings of lab nodes (node_labels,
swarm_advertise_address, the hub server's name, the lab-wide settings that must agree), the
accounts' ids planned across servers, and the swarm facts read from recorded ``docker`` output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State

from labhost.runner import pyinfra_env
from labhub import accounts, cluster
from labhub.accounts import ServerAccounts, plan_lab_ids
from labhub.facts.engine import EngineInfo
from labhub.facts.network import RouteSource
from labhub.facts.swarm import DockerNetwork, SwarmLabs, SwarmNodes, swarm_state
from labhub.settings import ROOT, SettingsError, get_settings, validate

CASES = Path(__file__).parent / "cases" / "swarm"
HUB = "hub.lab.test"


def lab_hosts(hub_data: dict | None = None, nodes: dict | None = None, hubs=(HUB,)) -> list:
    """The hosts of an inventory (hub servers first, then ``nodes`` in group lab_nodes), each
    with its data, in a pyinfra state, as the CLI loads them."""
    nodes = {"node1.lab.test": {}} if nodes is None else nodes
    names = [(name, dict(hub_data or {})) for name in hubs]
    names += [(name, data) for name, data in nodes.items()]
    groups = {cluster.LAB_NODES: (list(nodes), {})} if nodes else {}
    inventory = Inventory((names, {}), **groups)
    State(inventory, Config())
    return [inventory.get_host(name) for name, _ in names]


def problem_of(host) -> str:
    with pytest.raises(SettingsError) as error:
        get_settings(host)
    return str(error.value)


def test_node_labels_are_validated():
    assert validate({"node_labels": {"gpu": "a100", "role": "compute"}}, node=True).node_labels == {
        "gpu": "a100",
        "role": "compute",
    }
    for labels, expected in (
        ({"GPU": "a100"}, "'GPU' is not a node label key"),
        ({"gpu": "a 100"}, "gpu: 'a 100' is not a node label value"),
        ({"gpu": ""}, "gpu: '' is not a node label value"),
        ({"gpu": 1}, "node_labels.gpu: 1 is a number: write it as a string"),
        (["gpu"], "node_labels: should be a mapping"),
    ):
        with pytest.raises(SettingsError, match=expected):
            validate({"node_labels": labels}, node=True)


def test_node_labels_are_refused_on_the_hub_server():
    hub, _ = lab_hosts({"node_labels": {"gpu": "a100"}})
    assert f"node_labels: set on {HUB}, the hub server, which is not a lab node" in problem_of(hub)
    # One server alone is a hub server too.
    (alone,) = lab_hosts({"node_labels": {"gpu": "a100"}}, nodes={})
    assert "node_labels: set on" in problem_of(alone)


def test_the_advertise_address_is_validated_and_used_only_with_nodes():
    assert (
        validate({"swarm_advertise_address": "192.0.2.10"}, lab_nodes=True).swarm_advertise_address
        == "192.0.2.10"
    )
    for address in ("127.0.0.1", "0.0.0.0", "224.0.0.1"):
        with pytest.raises(SettingsError, match="is not an address the other servers"):
            validate({"swarm_advertise_address": address}, lab_nodes=True)
    with pytest.raises(SettingsError, match="not an IP address"):
        validate({"swarm_advertise_address": "hub.lab.test"}, lab_nodes=True)
    (alone,) = lab_hosts({"swarm_advertise_address": "192.0.2.10"}, nodes={})
    assert "swarm_advertise_address: set, but used only with lab nodes" in problem_of(alone)


def test_the_advertise_address_defaults_to_an_ip_name_then_the_route():
    assert cluster.advertise_address("192.0.2.10", None, "198.51.100.1") == "192.0.2.10"
    assert cluster.advertise_address("hub.lab.test", None, "198.51.100.1") == "198.51.100.1"
    assert cluster.advertise_address("hub.lab.test", "192.0.2.7", "198.51.100.1") == "192.0.2.7"
    assert cluster.advertise_address("hub.lab.test", None, "") is None


def test_a_node_takes_the_hub_servers_name_for_the_hub_domain():
    hub, node = lab_hosts()
    assert get_settings(hub).hub_domain == HUB
    assert get_settings(node).hub_domain == HUB
    assert get_settings(node).hub_url == f"https://{HUB}"


def test_lab_wide_settings_must_agree_between_hub_and_nodes():
    hub, node, other = lab_hosts(
        {"hub_users": ["alice"], "user_prefix": "lab-"},
        nodes={
            "node1.lab.test": {"hub_users": ["alice", "bob"], "user_prefix": "lab-"},
            "node2.lab.test": {
                "hub_users": ["alice"],
                "user_prefix": "lab-",
                # Settings of each server's own may differ.
                "docker_source": "distro",
                "docker_users": ["ops"],
                "node_labels": {"gpu": "a100"},
                "swarm_advertise_address": "192.0.2.12",
            },
        },
    )
    said = problem_of(node)
    assert (
        "hub_users: lab node node1.lab.test has another value than the hub server hub.lab.test"
        in said
    )
    assert "user_prefix" not in said
    assert get_settings(other).node_labels == {"gpu": "a100"}
    # The user_prefix differs too: every lab-wide setting is named.
    _, node = lab_hosts({"user_prefix": "lab-"}, nodes={"node1.lab.test": {}})
    assert "user_prefix: lab node node1.lab.test has another value" in problem_of(node)


def test_an_inventory_with_nodes_has_exactly_one_hub_server():
    two = lab_hosts(hubs=("hub1.lab.test", "hub2.lab.test"))
    for host in two:
        said = problem_of(host)
        assert "exactly one hub server" in said
        assert "hub1.lab.test, hub2.lab.test" in said
    everything_a_node = lab_hosts(hubs=())
    assert "it has 0: none" in problem_of(everything_a_node[0])


def account(uid: int, comment: str = "") -> dict:
    return {"uid": uid, "gid": 100, "comment": comment, "home": "", "shell": "", "expire": None}


def labhub_account(uid: int, user: str) -> dict:
    return account(uid, accounts.account_comment(user))


LOGIN = {"labadmin": account(1000)}
USERS = [
    {"name": "alice", "uid": 2001, "groups": ["leem"]},
    "bob",
    {"name": "carol", "groups": ["xps"]},
]


def test_ids_come_from_the_pin_then_the_hub_then_the_lowest_free_everywhere():
    settings = validate({"hub_users": USERS})
    hub = ServerAccounts(
        "hub",
        {**LOGIN, "jupyter-bob": labhub_account(1003, "bob")},
        {"users": {"gid": 100, "members": []}, "leem": {"gid": 1005, "members": []}},
    )
    # uid 1001 and gid 1000 are taken on a node only: nobody of the lab gets them.
    node = ServerAccounts(
        "node1",
        {**LOGIN, "other": account(1001)},
        {"other": {"gid": 1000, "members": []}},
    )
    ids = plan_lab_ids(settings, hub, [node])
    assert ids.uids == {"jupyter-alice": 2001, "jupyter-bob": 1003, "jupyter-carol": 1002}
    assert ids.gids == {"leem": 1005, "xps": 1001}
    assert ids.problems == ()


def test_a_node_with_other_ids_is_a_problem_naming_account_node_ids_and_way_out():
    settings = validate({"hub_users": USERS})
    hub = ServerAccounts("hub", {**LOGIN, "jupyter-bob": labhub_account(1003, "bob")}, {})
    node = ServerAccounts(
        "node1",
        {
            **LOGIN,
            "jupyter-alice": labhub_account(1500, "alice"),
            "jupyter-bob": labhub_account(1003, "bob"),
        },
        {"leem": {"gid": 1600, "members": []}},
    )
    ids = plan_lab_ids(settings, hub, [node])
    assert len(ids.problems) == 2
    alice, leem = ids.problems
    assert alice.startswith(
        "hub_users: account jupyter-alice on lab node node1 has uid 1500, the lab's is 2001 "
        "(pinned in hub_users)"
    )
    assert "usermod --uid 2001 jupyter-alice" in alice
    assert leem.startswith("hub_users[0].groups: group leem on lab node node1 has gid 1600")
    assert "groupmod --gid" in leem
    # The problems are every server's: refused wherever the run meets them first.
    assert set(ids.problems) <= set(accounts.account_problems(settings, hub.accounts, {}, ids))


def test_one_server_plans_no_ids():
    (alone,) = lab_hosts(nodes={})
    assert accounts.lab_ids(alone) is None


def recorded(name: str) -> list[str]:
    return (CASES / name).read_text().splitlines()


def swarm_of(lines: list[str]) -> dict:
    """The swarm state of an engine whose ``docker info`` has these ``.Swarm`` lines."""
    return swarm_state(EngineInfo().process(['{"Swarm": %s}' % "\n".join(lines)]))


def test_swarm_state_of_a_manager_a_worker_and_no_swarm():
    manager = swarm_of(recorded("info-manager.txt"))
    assert manager["state"] == "active" and manager["manager"] is True
    assert manager["address"] == "172.17.0.6"
    worker = swarm_of(recorded("info-worker.txt"))
    assert worker["manager"] is False and worker["state"] == "active"
    assert worker["managers"] == [{"id": manager["node_id"], "address": "172.17.0.6:2377"}]
    none = swarm_of(
        [
            '{"NodeID":"","NodeAddr":"","LocalNodeState":"inactive","ControlAvailable":false,'
            '"Error":"","RemoteManagers":null}'
        ]
    )
    # An engine that does not answer: in no swarm.
    assert none == swarm_state(EngineInfo().process([])) == swarm_state({})
    assert none["state"] == "inactive" and not none["manager"]


def test_swarm_nodes_with_their_labels():
    nodes = SwarmNodes().process(recorded("node-inspect.txt"))
    assert [(n["role"], n["state"], n["labels"]) for n in nodes] == [
        ("manager", "ready", {}),
        ("worker", "ready", {"role": "compute"}),
        ("worker", "ready", {"gpu": "a100", "role": "compute"}),
    ]


def test_the_labs_of_a_swarm_with_their_nodes():
    # Recorded on a one-node swarm: a lab's service running, another's task failed (not listed).
    assert SwarmLabs().process(recorded("labs.txt")) == [
        {
            "user": "rec",
            "service": "jupyter-rec",
            "node_id": "2awdv6wj4lutfmqkxnvgjccuw",
            "node": "swarmrec",
            "state": "running",
            "since": "2026-12-02T18:54:28.8476968Z",
            "image": "labhub-test/python:trixie-bce868d2",
        }
    ]
    # An engine that manages no swarm prints nothing.
    assert SwarmLabs().process([]) == []


def test_the_overlay_network_and_the_route_source():
    network = DockerNetwork().process(recorded("network.txt"))
    assert network["driver"] == "overlay" and network["attachable"] is True
    assert "encrypted" in network["options"]
    assert DockerNetwork().process([]) is None
    # The default route's source: the address a server advertises to the swarm without a setting.
    assert RouteSource().process(recorded("route.txt")) == {
        "address": "1.1.1.1",
        "source": "172.17.0.4",
    }
    assert RouteSource().process(
        ["address 1.1.1.1", "RTNETLINK answers: Network is unreachable"]
    ) == {"address": "1.1.1.1", "source": None}


def test_the_cli_refuses_a_lab_whose_servers_disagree_before_connecting(tmp_path):
    """Through pyinfra's own CLI: lab-wide settings that differ between the hub server and a
    node stop the run before it connects to any server."""
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        "lab_servers = [('@fake/hub', {'hub_domain': 'hub.lab.test', 'hub_users': ['alice']})]\n"
        "lab_nodes = [('@fake/node1', {'hub_domain': 'hub.lab.test', "
        "'hub_users': ['alice', 'bob'], 'node_labels': {'gpu': 'a100'}})]\n"
    )
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("pyinfra")), str(inventory), "deploy.py", "-y"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=pyinfra_env(),
    )
    assert proc.returncode != 0
    assert "invalid labhub settings for @fake/node1:" in proc.stderr
    assert (
        "hub_users: lab node @fake/node1 has another value than the hub server @fake/hub"
        in proc.stderr
    )
    assert "Connecting" not in proc.stderr and "Connected" not in proc.stderr
    assert "Starting operation" not in proc.stderr


def test_an_unencrypted_swarm_without_lab_nodes_is_refused():
    with pytest.raises(SettingsError, match="swarm_encrypted: false, but used only with lab nodes"):
        validate({"swarm_encrypted": False, "tls": "off"}, "lab1")
    assert validate({"swarm_encrypted": True, "tls": "off"}, "lab1").swarm_encrypted
    assert not validate(
        {"swarm_encrypted": False, "hub_domain": "hub.lab.test"}, "lab1", lab_nodes=True
    ).swarm_encrypted
