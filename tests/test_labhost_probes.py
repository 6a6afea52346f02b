"""
The harness's probes of this machine's Docker engine (labhost.probes), on answers recorded from
real engines and on the variants an existing engine may give: a bridge whose record lists no
gateway, a custom bip, a dual-stack bridge, a bridge interface of its own name.
"""

import json

import pytest

from labhost import probes
from tests.case_files import CASES, cases


@pytest.mark.parametrize("case", cases("engine"))
def test_bridge_gateway(case):
    interfaces = case["interfaces"]
    expected = case["expected"]
    if isinstance(expected, dict):
        with pytest.raises(probes.ProbeError) as raised:
            probes.bridge_gateway(case["network"], interfaces.get)
        for words in expected["error"]:
            assert words in str(raised.value)
    else:
        assert probes.bridge_gateway(case["network"], interfaces.get) == expected


def record(name: str):
    return json.loads((CASES / "engine-records" / f"{name}.json").read_text())["record"]


def test_interface_address_from_ip_json():
    assert probes.interface_ipv4(record("ip-addr-docker0")) == "172.17.0.1"
    assert probes.interface_ipv4([]) is None


@pytest.mark.parametrize(
    ("name", "address"), [("inspect-api-1.41", "172.17.0.3"), ("inspect-api-1.44", "10.123.0.7")]
)
def test_container_address(name, address):
    assert probes.container_address(record(name)) == address


def test_container_without_address_is_named():
    attrs = {"Name": "/labhost-1", "NetworkSettings": {"IPAddress": "", "Networks": {}}}
    with pytest.raises(probes.ProbeError, match="labhost-1 has no address on the 'bridge'"):
        probes.container_address(attrs)


def test_engine_start_needs_root_said_in_one_line():
    assert probes.engine_start_problem(root=True, systemd=True) is None
    problem = probes.engine_start_problem(root=False, systemd=True)
    assert "sudo systemctl start docker" in problem and "\n" not in problem
    assert "sudo dockerd" in probes.engine_start_problem(root=False, systemd=False)


def test_capability_refusal_is_one_line():
    error = (
        '500 Server Error: Internal Server Error ("failed to create task for container: '
        "OCI runtime create failed: runc create failed: unable to start container process: "
        'unable to apply caps: operation not permitted: unknown")'
    )
    reason = probes.capability_refusal(error)
    assert "--cap-add ALL" in reason and "\n" not in reason
    assert probes.capability_refusal("404 Client Error: no such image") is None
