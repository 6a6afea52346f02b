"""
Labs on lab nodes, without a swarm: the lab_placement setting, what the deploy hands the hub
(settings.json, compose.yaml), and the swarm spawner's pure pieces (files/hub/labhub_swarm.py) on
task JSON recorded from a real swarm (tests/cases/swarm-tasks/).
"""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from case_files import cases
from pyinfra.api import Config, Inventory, State
from registry_server import free_port
from test_images_plan import load_hub_config, settings_data

from labhub import stack
from labhub.settings import SettingsError, get_settings, validate

# The hub image's module, as the image has it: loaded from files/hub, leaving sys.path alone.
_spec = importlib.util.spec_from_file_location(
    "labhub_swarm", stack.HUB_CONTEXT / "labhub_swarm.py"
)
labhub_swarm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(labhub_swarm)

PLACED = {
    "hub_users": [
        "alice",
        {"name": "bob", "groups": ["gpu", "teaching"]},
        {"name": "carol", "groups": ["teaching"]},
    ],
    "lab_placement": {
        "teaching": ["node.role==worker", " node.hostname != gpu1 "],
        "gpu": ["node.labels.gpu==a100"],
    },
}


def error_of(**data) -> str:
    with pytest.raises(SettingsError) as excinfo:
        validate({**PLACED, **data}, "lab1", lab_nodes=True)
    return str(excinfo.value)


@pytest.mark.parametrize(
    "placement, expected",
    [
        (
            {"gpu": ["node.label.gpu==a100"]},
            "lab_placement.gpu[0]: 'node.label.gpu==a100': swarm places by node.labels.<label>",
        ),
        ({"gpu": ["node.labels.gpu=a100"]}, "lab_placement.gpu[0]: 'node.labels.gpu=a100' is not"),
        (
            {"gpu": ["node.role==worker", "node.role==boss"]},
            "lab_placement.gpu[1]: 'node.role==boss': node.role is manager or worker, not 'boss'",
        ),
        ({"gpu": ["node.labels.gpu==a 100"]}, "lab_placement.gpu[0]: 'node.labels.gpu==a 100'"),
        ({"gpu": ["node.labels.g$u==a100"]}, "'g$u' is not a valid label name"),
        ({"gpu": []}, "lab_placement.gpu: an empty list places nothing"),
        ({"gpu": "node.role==worker"}, "lab_placement.gpu: should be a list"),
        (
            {"gpus": ["node.labels.gpu==a100"]},
            "lab_placement.gpus: 'gpus' is not a group of any hub user (their groups: gpu, "
            "teaching)",
        ),
        ({"docker": ["node.role==worker"]}, "'docker' is a system group"),
    ],
)
def test_a_bad_placement_names_the_group_and_the_constraint(placement, expected):
    assert expected in error_of(lab_placement=placement)


def test_a_user_runs_where_the_first_of_the_groups_placed_says():
    settings = validate(PLACED, "lab1", lab_nodes=True)
    alice, bob, carol = settings.hub_users
    # Spaces around the operator dropped, as swarm reads them.
    teaching = ("teaching", ("node.role==worker", "node.hostname!=gpu1"))
    # bob is in gpu and teaching: teaching comes first in lab_placement.
    assert settings.lab_placement_of(bob) == teaching
    assert settings.lab_placement_of(carol) == teaching
    # In no placed group: anywhere.
    assert settings.lab_placement_of(alice) is None


def inventory_state(nodes: bool) -> State:
    hub = ("@fake/hub", {"fake_responses": {}, "hub_domain": "hub.lab.test", **PLACED})
    node = ("@fake/node1", {"fake_responses": {}})
    groups = {"lab_nodes": ([node[0]], {})} if nodes else {}
    return State(Inventory(([hub, node] if nodes else [hub], {}), **groups), Config())


def test_placement_without_lab_nodes_is_refused():
    state = inventory_state(nodes=False)
    with pytest.raises(SettingsError, match="lab_placement: set, but used only with lab nodes"):
        get_settings(state.inventory.get_host("@fake/hub"))
    state = inventory_state(nodes=True)
    assert get_settings(state.inventory.get_host("@fake/hub")).lab_placement


def test_the_hub_gets_the_swarm_only_with_lab_nodes():
    settings = validate({**settings_data(), "tls": "off"}, "lab1")
    one = stack.hub_settings(settings)
    assert "swarm" not in one
    compose = yaml.safe_load(stack.compose_file_text(settings, "hub:1", "{}", ""))
    # One server: the compose project as before lab nodes, on its own networks only.
    assert compose["networks"] == {
        "default": {"name": "labhub"},
        "labhub-engine": {"name": "labhub-engine", "internal": True},
    }
    assert compose["services"]["hub"]["networks"] == ["default", "labhub-engine"]

    settings = validate(PLACED, "lab1", lab_nodes=True)
    assert stack.hub_settings(settings)["swarm"] == {
        "network": "labhub-swarm",
        "placement": {
            "bob": {
                "group": "teaching",
                "constraints": ["node.role==worker", "node.hostname!=gpu1"],
            },
            "carol": {
                "group": "teaching",
                "constraints": ["node.role==worker", "node.hostname!=gpu1"],
            },
        },
        # The deploy's own service of the hub's API: it stops the labs of a node that leaves.
        "deploy": {
            "service": "labhub-deploy",
            "token_file": "/run/secrets/labhub-deploy-token",
            "scopes": ["delete:servers"],
        },
    }
    compose = yaml.safe_load(stack.compose_file_text(settings, "hub:1", "{}", ""))
    assert compose["networks"]["labhub-swarm"] == {"name": "labhub-swarm", "external": True}
    assert compose["services"]["hub"]["networks"] == ["default", "labhub-engine", "labhub-swarm"]
    # Its token, made on the server (root only), read by the hub where the settings say.
    assert (
        "/etc/labhub/hub-api-token:/run/secrets/labhub-deploy-token:ro"
        in compose["services"]["hub"]["volumes"]
    )
    # Only the hub: the registry and the proxy stay on the project's network.
    assert "networks" not in compose["services"]["registry"]


def test_hub_config_spawns_services_with_lab_nodes(monkeypatch, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    one = validate({**settings_data(), "tls": "off"}, "lab1")
    c = load_hub_config(one, monkeypatch, tmp_path, url)["c"]
    assert c.JupyterHub["spawner_class"] == "labhub_lab.LabSpawner"
    (tmp_path / "swarm").mkdir()
    settings = validate({**PLACED, "hub_domain": "hub.lab.test"}, "lab1", lab_nodes=True)
    swarm = stack.swarm_settings(settings)
    token = tmp_path / "deploy-token"
    token.write_text("made-on-the-server\n")
    swarm["deploy"]["token_file"] = str(token)
    c = load_hub_config(settings, monkeypatch, tmp_path / "swarm", url, swarm=swarm)["c"]
    assert c.JupyterHub["spawner_class"] == "labhub_service.LabServiceSpawner"
    # The deploy's service, with its token and a role of only what stopping a lab needs.
    assert c.JupyterHub["services"][-1] == {
        "name": "labhub-deploy",
        "api_token": "made-on-the-server",
    }
    assert c.JupyterHub["load_roles"][-1] == {
        "name": "labhub-deploy",
        "scopes": ["delete:servers"],
        "services": ["labhub-deploy"],
    }
    assert c.SwarmSpawner["network_name"] == "labhub-swarm"
    assert c.LabServiceSpawner["lab_placement"] == swarm["placement"]
    # The nodes pull the lab images from the hub server's registry as they reach it.
    assert c.LabServiceSpawner["lab_registry"] == "127.0.0.1:5000"
    assert c.LabServiceSpawner["node_registry"] == "hub.lab.test:5443"
    # The hub's engine has the image (its command is checked, its accounts read there).
    assert c.DockerSpawner["pull_policy"] == "ifnotpresent"


def test_service_names_fit_swarms_limit():
    assert labhub_swarm.service_name("jupyter-alice") == "jupyter-alice"
    # A hub user name of 24 characters, escaped as DockerSpawner does ('_' is '-5f').
    long = "jupyter-a" + "-5f" * 23
    other = "jupyter-a" + "-5f" * 22 + "-2d"
    assert len(long) == 78
    name = labhub_swarm.service_name(long)
    assert len(name) == 63 and name.startswith("jupyter-a-5f")
    assert labhub_swarm.service_name(other) != name
    # A DNS label: letters, digits and '-', never ending with '-'.
    assert all(ch.isalnum() or ch == "-" for ch in name) and not name.endswith("-")
    assert labhub_swarm.service_name(name) == name


def test_volumes_are_binds_and_named_volumes():
    mounts = labhub_swarm.mounts(
        {
            "/home/jupyter-bob": {"bind": "/home/jovyan", "mode": "rw"},
            "/srv/ref": {"bind": "/opt/ref", "mode": "ro"},
            "labhub-homes": {"bind": "/mnt/homes", "mode": "rw"},
        }
    )
    assert mounts == [
        {
            "target": "/home/jovyan",
            "source": "/home/jupyter-bob",
            "type": "bind",
            "read_only": False,
        },
        {"target": "/opt/ref", "source": "/srv/ref", "type": "bind", "read_only": True},
        {"target": "/mnt/homes", "source": "labhub-homes", "type": "volume", "read_only": False},
    ]


def test_the_user_goes_in_the_container_spec():
    account = {
        "name": "jupyter-bob",
        "uid": 1002,
        "groups": [("users", 100), ("leem", 1003), ("gpu", 1004)],
        "gecos": "bob",
        "home": "/home/jovyan",
    }
    # ContainerSpec's own arguments: user "uid:gid", the other groups by gid.
    assert labhub_swarm.container_user(account) == {"user": "1002:100", "groups": ["1003", "1004"]}


def test_account_configs_are_named_by_their_content():
    one = labhub_swarm.config_name("passwd", "root:x:0:0::/root:/bin/sh\n")
    assert one == labhub_swarm.config_name("passwd", "root:x:0:0::/root:/bin/sh\n")
    assert one != labhub_swarm.config_name("passwd", "root:x:0:0::/root:/bin/bash\n")
    assert one.startswith("labhub-passwd-") and len(one) <= 64


@pytest.mark.parametrize("case", cases("swarm-tasks"))
def test_recorded_tasks_say_how_the_lab_is_doing(case):
    task = labhub_swarm.current_task(case["tasks"])
    assert labhub_swarm.task_outcome(task) == case["outcome"]
    if case["outcome"] == "stopped":
        assert labhub_swarm.exit_code(task) == case["exit_code"]
    if case["outcome"] == "refused":
        message = labhub_swarm.refusal_message(task, case["image"], case["placement"], case["node"])
        for words in case["message_has"]:
            assert words in message


def test_a_placement_no_node_meets_names_its_group_and_constraints():
    (case,) = [c.values[0] for c in cases("swarm-tasks") if c.id == "pending"]
    task = case["tasks"][0]
    message = labhub_swarm.refusal_message(
        task, "lab 1.0", {"group": "teaching", "constraints": ["node.role==worker", "node.id!=x"]}
    )
    assert message.startswith(
        "Labs of group teaching run only on a node where node.role==worker and node.id!=x "
        "(lab_placement), and no node of the swarm is one"
    )
    # Without a placement of labhub's (an admin's extra constraint): still said, not waited on.
    assert "placement" in labhub_swarm.refusal_message(task, "lab 1.0")


def test_a_task_on_its_way_is_waited_for():
    (case,) = [c.values[0] for c in cases("swarm-tasks") if c.id == "running"]
    task = dict(case["tasks"][0])
    for state in ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting"):
        # Pending without an error: being scheduled, not refused.
        task["Status"] = {"State": state, "Message": "pending task scheduling"}
        assert labhub_swarm.task_outcome(task) == "starting"
    # The task the swarm still wants running, before an older one that went.
    gone = {**task, "DesiredState": "shutdown", "CreatedAt": "2099-01-01T00:00:00Z"}
    assert labhub_swarm.current_task([gone, task]) is task
    assert labhub_swarm.current_task([]) is None


def test_a_lab_image_is_pulled_by_the_nodes_from_the_registry_as_they_reach_it():
    assert (
        labhub_swarm.node_image("127.0.0.1:5000/lab:1.0", "127.0.0.1:5000", "hub.lab.test:5443")
        == "hub.lab.test:5443/lab:1.0"
    )
    # Another registry's image, or no address for the nodes: as it is.
    assert (
        labhub_swarm.node_image("other:5000/lab:1.0", "127.0.0.1:5000", "hub.lab.test:5443")
        == "other:5000/lab:1.0"
    )
    assert labhub_swarm.node_image("127.0.0.1:5000/lab:1.0", "127.0.0.1:5000", "") == (
        "127.0.0.1:5000/lab:1.0"
    )


@pytest.mark.parametrize("case", cases("swarm-tasks"))
def test_only_a_task_the_kernel_killed_past_its_memory_limit_was_killed_for_memory(case):
    task = labhub_swarm.current_task(case["tasks"])
    # Recorded: its node's container says OOMKilled; the task says only its exit code.
    killed = case.get("container_state", {}).get("OOMKilled", False)
    assert labhub_swarm.memory_killed(task) == (case["memory_limit"] if killed else None)


def test_the_hub_reaches_a_lab_at_its_tasks_address_on_the_lab_network():
    (case,) = [c.values[0] for c in cases("swarm-tasks") if c.id == "running"]
    task = case["tasks"][0]
    assert labhub_swarm.task_address(task, "labhub-swarm") == "10.0.1.2"
    # Not on that network, or not attached yet: no address to reach it at.
    assert labhub_swarm.task_address(task, "another-network") is None
    assert labhub_swarm.task_address({**task, "NetworksAttachments": None}, "labhub-swarm") is None
