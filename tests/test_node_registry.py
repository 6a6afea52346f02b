"""
The registry as lab nodes reach it, from the settings: its settings refused where they cannot
work, the proxy's site for the nodes alone, the compose project and the hub's settings with
nodes (and exactly as before without), the login's configuration, and the facts' reading of
what hosts print (recorded from a Debian 13 lab server).
"""

from __future__ import annotations

import json

import pytest
import yaml

from labhub import caddy, node_registry, stack
from labhub.facts.network import RouteSource
from labhub.facts.node_registry import RegistryLogin
from labhub.settings import SettingsError, validate

NODES = ["192.0.2.21", "192.0.2.22"]


def with_nodes(**data):
    return validate({"hub_domain": "hub.lab.test", **data}, "hub", lab_nodes=True)


def test_the_nodes_pull_by_the_hubs_name_and_node_registry_port():
    settings = with_nodes(node_registry_port=6443, lab_images=[{"name": "lab", "version": "2"}])
    assert node_registry.address(settings) == "hub.lab.test:6443"
    assert node_registry.image(settings, settings.lab_images[0]) == "hub.lab.test:6443/lab:2"
    assert node_registry.ca_file(settings) == "/etc/docker/certs.d/hub.lab.test:6443/ca.crt"
    v6 = validate({"hub_domain": "2001:db8::1"}, "hub", lab_nodes=True)
    assert node_registry.address(v6) == "[2001:db8::1]:5443"


@pytest.mark.parametrize(
    ("data", "nodes", "problem"),
    [
        (
            {"tls": "off"},
            True,
            'tls: "off" with lab nodes: the nodes pull lab images from the hub server\'s '
            "registry over TLS",
        ),
        (
            {"node_registry_port": 6443},
            False,
            "node_registry_port: set, but used only with lab nodes (the inventory has no group "
            "lab_nodes)",
        ),
        (
            {"node_registry_port": 443},
            True,
            "node_registry_port: port 443 on 0.0.0.0 is https_port's already",
        ),
        ({"node_registry_port": 0}, True, "node_registry_port: Input should be greater than"),
    ],
)
def test_refused(data, nodes, problem):
    with pytest.raises(SettingsError) as refused:
        validate({"hub_domain": "hub.lab.test", **data}, "hub", lab_nodes=nodes)
    assert problem in str(refused.value)


def test_the_proxy_serves_the_registry_to_the_nodes_alone():
    settings = with_nodes()
    server = caddy.config(settings, NODES)["apps"]["http"]["servers"]["registry"]
    assert server["listen"] == [":5443"]
    assert server["tls_connection_policies"] == [{"default_sni": "hub.lab.test"}]
    refuse, serve = server["routes"]
    # Anyone else is refused before being asked to log in.
    assert refuse["match"] == [{"not": [{"remote_ip": {"ranges": NODES}}]}]
    assert refuse["handle"] == [{"handler": "static_response", "status_code": 403}]
    assert refuse["terminal"] is True
    handlers = [handle["handler"] for handle in serve["handle"]]
    assert handlers == ["headers", "authentication", "reverse_proxy"]
    basic = serve["handle"][1]["providers"]["http_basic"]
    # Only the hash's placeholder: no secret in the configuration.
    assert basic["accounts"] == [
        {"username": "labhub", "password": "{env.LABHUB_NODE_REGISTRY_HASH}"}
    ]
    assert serve["handle"][2]["upstreams"] == [{"dial": "registry:5000"}]
    # No node known: nobody gets in.
    nobody = caddy.config(settings, [])["apps"]["http"]["servers"]["registry"]["routes"][0]
    assert nobody["match"] == [] and nobody["terminal"] is True


def test_one_server_is_as_before():
    settings = validate({"hub_domain": "hub.lab.test"}, "hub")
    assert set(caddy.config(settings)["apps"]["http"]["servers"]) == {"hub", "redirect"}
    assert "node_registry" not in stack.hub_settings(settings)
    compose = yaml.safe_load(stack.compose_file_text(settings, "labhub/hub:x", "{}", ""))
    assert compose["services"]["proxy"]["command"][0] == "caddy"
    assert [p["published"] for p in compose["services"]["proxy"]["ports"]] == ["443", "80"]
    assert not any(".docker" in v for v in compose["services"]["hub"]["volumes"])


def test_with_nodes_the_stack_publishes_the_nodes_registry_and_hands_the_hub_the_login():
    settings = with_nodes()
    compose = yaml.safe_load(stack.compose_file_text(settings, "labhub/hub:x", "{}", ""))
    proxy = compose["services"]["proxy"]
    assert {"host_ip": "0.0.0.0", "published": "5443", "target": 5443} in proxy["ports"]
    env = "/etc/caddy/labhub-registry-login.env"
    assert f"/etc/labhub/registry/proxy.env:{env}:ro" in proxy["volumes"]
    assert proxy["command"][:4] == ["sh", "-c", 'set -a && . "$0" && set +a && exec "$@"', env]
    assert proxy["command"][4:6] == ["caddy", "run"]
    assert "/etc/labhub/registry/docker:/root/.docker:ro" in compose["services"]["hub"]["volumes"]
    # The registry itself stays on loopback.
    assert compose["services"]["registry"]["ports"][0]["host_ip"] == "127.0.0.1"
    assert stack.hub_settings(settings)["node_registry"] == {
        "address": "hub.lab.test:5443",
        "docker_config": "/root/.docker/config.json",
    }


def test_the_login_configuration_is_json_around_its_auth():
    before, after = node_registry.docker_config_parts(with_nodes())
    text = before + "bGFiaHViOnNlY3JldA==" + after
    assert json.loads(text) == {"auths": {"hub.lab.test:5443": {"auth": "bGFiaHViOnNlY3JldA=="}}}
    assert text.endswith("\n")


def test_each_node_pre_pulls_every_lab_image():
    settings = with_nodes(
        lab_images=[{"name": "lab", "version": "1.0"}, {"name": "gpu", "version": "1.0"}]
    )
    assert [i.ref for i in node_registry.node_images(settings, "gpu1")] == ["lab:1.0", "gpu:1.0"]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            [
                "address 172.17.0.2",
                "172.17.0.2 dev eth0 src 172.17.0.3 uid 0 \\    cache ",
            ],
            {"address": "172.17.0.2", "source": "172.17.0.3"},
        ),
        (["address "], {"address": None, "source": None}),
        (
            ["address 2001:db8::10", "2001:db8::10 from :: dev eth0 proto kernel src 2001:db8::21"],
            {"address": "2001:db8::10", "source": "2001:db8::21"},
        ),
    ],
)
def test_route_source(output, expected):
    assert RouteSource().process(output) == expected


def test_registry_login_reads_only_words():
    assert RegistryLogin().process(["proxy-env", "", "docker-config "]) == [
        "proxy-env",
        "docker-config",
    ]
