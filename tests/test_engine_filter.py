"""
The engine filter's policy (files/hub/labhub_engine.py), case by case, on what a real spawn sent:
the create body of alice's lab, the hub's settings.json and accounts.json, all recorded from the
hub of an end-to-end run (tests/cases/engine-filter/); each refusal is that lab with one thing
changed. GPU labs and swarm services, which this machine cannot spawn, are rendered by labhub's
own code and docker-py's (no engine), as tests/test_limits.py renders them.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import docker
import pytest
import yaml

from labhub import stack
from labhub.registry import CLIENT_SOURCE_FILE

CASES = Path(__file__).parent / "cases" / "engine-filter"
MODULES = ("labhub_engine", "labhub_spawn", "labhub_registry")
CLIENT = docker.APIClient(base_url="tcp://127.0.0.1:1", version="1.45")
GPU = "GPU-3f6b1c2e-0000-4000-8000-000000000001"
GPU2 = "GPU-3f6b1c2e-0000-4000-8000-000000000002"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """files/hub/labhub_engine.py as the hub image installs it, beside what it imports."""
    lib = tmp_path_factory.mktemp("hub-lib")
    shutil.copy(stack.HUB_CONTEXT / "labhub_engine.py", lib)
    shutil.copy(stack.HUB_CONTEXT / "labhub_spawn.py", lib)
    shutil.copy(CLIENT_SOURCE_FILE, lib / "labhub_registry.py")
    sys.path.insert(0, str(lib))
    for module in MODULES:
        sys.modules.pop(module, None)
    import labhub_engine

    yield labhub_engine
    sys.path.remove(str(lib))
    for module in MODULES:
        sys.modules.pop(module, None)


def recorded(name: str) -> dict:
    return json.loads((CASES / f"{name}.json").read_text())


def policy(engine, **settings):
    return engine.Policy({**recorded("settings"), **settings}, recorded("accounts"))


def create(engine, body: dict, **settings) -> str | None:
    request = engine.Request("POST", "/v1.45/containers/create", {"name": "x"}, body)
    return engine.refusal(request, policy(engine, **settings))


def changed(host: dict | None = None, **top) -> dict:
    """alice's recorded create, with ``top`` and ``host`` (HostConfig) fields changed."""
    body = copy.deepcopy(recorded("create-alice"))
    body.update(top)
    body["HostConfig"].update(host or {})
    return body


def test_the_recorded_spawn_is_allowed(engine):
    body = recorded("create-alice")
    # What labhub asks for, as the real spawn sent it.
    assert body["HostConfig"]["CapDrop"] == ["ALL"]
    assert body["HostConfig"]["SecurityOpt"] == ["no-new-privileges"]
    assert create(engine, body) is None


@pytest.mark.parametrize(
    "body, reason",
    [
        pytest.param(changed({"Privileged": True}), "privileged mode", id="privileged"),
        pytest.param(changed({"CapAdd": ["SYS_ADMIN"]}), "added capabilities", id="cap-add"),
        pytest.param(changed({"PidMode": "host"}), "PidMode 'host'", id="pid-host"),
        pytest.param(changed({"IpcMode": "host"}), "IpcMode 'host'", id="ipc-host"),
        pytest.param(changed({"UTSMode": "host"}), "UTSMode 'host'", id="uts-host"),
        pytest.param(changed({"UsernsMode": "host"}), "UsernsMode 'host'", id="userns-host"),
        pytest.param(changed({"NetworkMode": "host"}), "network 'host'", id="network-host"),
        pytest.param(changed({"PidMode": "container:abc"}), "PidMode", id="pid-of-another"),
        pytest.param(
            changed({"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]}),
            "devices ['/dev/sda']",
            id="device",
        ),
        pytest.param(
            changed(
                {"DeviceRequests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]}
            ),
            "alice's groups get no GPU",
            id="gpus-without-lab-gpus",
        ),
        pytest.param(changed({"Binds": ["/:/host:rw"]}), "bind of '/'", id="bind-root"),
        pytest.param(
            changed({"Binds": ["/var/run/docker.sock:/var/run/docker.sock:rw"]}),
            "bind of '/var/run/docker.sock'",
            id="bind-socket",
        ),
        pytest.param(
            changed({"Binds": ["/home/jupyter-bob:/home/jovyan:rw"]}),
            "bind of '/home/jupyter-bob'",
            id="bind-another-home",
        ),
        pytest.param(
            changed({"Binds": ["/home/jupyter-alice:/etc:rw"]}),
            "it goes at '/home/jovyan'",
            id="bind-home-elsewhere",
        ),
        pytest.param(
            changed(
                {"Binds": ["/srv/shares/data:/home/jovyan/data:rw"]},
            ),
            "declared read-only",
            id="bind-read-only-share-writable",
        ),
        pytest.param(
            changed(
                {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host", "ReadOnly": False}]}
            ),
            "HostConfig.Mounts",
            id="mount-root",
        ),
        pytest.param(changed(Image="docker.io/library/debian:13"), "lab registry", id="image"),
        pytest.param(changed(Image="127.0.0.1:5001/lab:1.0"), "lab registry", id="other-registry"),
        pytest.param(changed(User="0:0"), "never run as root", id="uid-0"),
        pytest.param(changed(User="root"), "never run as root", id="root"),
        pytest.param(changed(User=""), "never run as root", id="no-user"),
        pytest.param(changed(User="1002:100"), "runs as alice's uid", id="another-uid"),
        pytest.param(changed({"GroupAdd": ["0"]}), "not all alice's", id="group-root"),
        pytest.param(changed(User="{uid}:0"), "group 0: not one of alice's", id="gid-0"),
        pytest.param(changed({"CapDrop": None}), "capabilities not all dropped", id="caps"),
        pytest.param(changed({"SecurityOpt": []}), "no-new-privileges missing", id="nnp"),
        pytest.param(
            changed({"SecurityOpt": ["no-new-privileges", "seccomp=unconfined"]}),
            "security options ['seccomp=unconfined']",
            id="seccomp-unconfined",
        ),
        pytest.param(changed({"PidsLimit": None}), "process limit None", id="no-pids-limit"),
        pytest.param(changed({"PidsLimit": -1}), "process limit -1", id="unlimited-pids"),
        pytest.param(changed({"PidsLimit": 100000}), "at most 4096", id="pids-over-setting"),
        pytest.param(changed({"MaskedPaths": []}), "MaskedPaths", id="proc-unmasked"),
        pytest.param(changed({"OomScoreAdj": -1000}), "HostConfig.OomScoreAdj", id="oom-immune"),
        pytest.param(
            changed({"Sysctls": {"kernel.shm_rmid_forced": "1"}}), "HostConfig.Sysctls", id="sysctl"
        ),
        pytest.param(
            changed(NetworkingConfig={"EndpointsConfig": {"labhub-engine": {}}}),
            "networks ['labhub-engine']",
            id="the-filters-network",
        ),
        pytest.param(changed(Labels={}), "no user's lab", id="no-owner"),
        pytest.param(
            changed(Labels={"org.labhub.lab": "mallory"}), "no user's lab", id="not-a-hub-user"
        ),
    ],
)
def test_a_create_unlike_labhubs_is_refused_saying_why(engine, body, reason):
    body["User"] = body["User"].replace("{uid}", str(recorded("accounts")["alice"]["uid"]))
    refused = create(engine, body)
    assert refused is not None and reason in refused, refused


@pytest.mark.parametrize(
    "method, path, query, target, reason",
    [
        ("GET", "/version", {}, None, None),
        ("GET", "/_ping", {}, None, None),
        ("GET", "/v1.45/info", {}, None, None),
        ("GET", "/v1.45/containers/json", {"all": "1"}, None, None),
        ("GET", "/v1.45/images/127.0.0.1:5000/lab:1.0/json", {}, None, None),
        ("GET", "/v1.45/containers/jupyter-alice/json", {}, {"org.labhub.lab": "alice"}, None),
        ("POST", "/v1.45/containers/abc/start", {}, {"org.labhub.lab": "alice"}, None),
        ("POST", "/v1.45/containers/abc/stop", {"t": "10"}, {"org.labhub.lab": "alice"}, None),
        ("DELETE", "/v1.45/containers/abc", {"v": "1"}, {"org.labhub.lab": "alice"}, None),
        ("PUT", "/v1.45/containers/abc/archive", {}, {"org.labhub.lab": "alice"}, None),
        ("POST", "/v1.45/images/create", {"fromImage": "127.0.0.1:5000/lab"}, None, None),
        ("POST", "/v1.45/containers/abc/start", {}, {}, "not a lab"),
        ("PUT", "/v1.45/containers/labhub-engine-1/archive", {}, {}, "not a lab"),
        ("DELETE", "/v1.45/containers/labhub-registry-1", {}, {"a": "b"}, "not a lab"),
        ("POST", "/v1.45/containers/abc/exec", {}, None, "exec into a container"),
        ("POST", "/v1.45/exec/abc/start", {}, None, "exec into a container"),
        ("POST", "/v1.45/images/create", {"fromImage": "evil.example/x"}, None, "lab registry"),
        ("POST", "/v1.45/build", {}, None, "not an engine call"),
        ("POST", "/v1.45/volumes/create", {}, None, "not an engine call"),
        ("POST", "/v1.45/containers/abc/update", {}, None, "not an engine call"),
        ("POST", "/v1.45/plugins/pull", {}, None, "not an engine call"),
        ("GET", "/v1.45/containers/abc/../../x/json", {}, None, "not one labhub asks for"),
    ],
)
def test_only_the_calls_spawning_makes_are_forwarded(engine, method, path, query, target, reason):
    request = engine.Request(method, path, query)
    refused = engine.refusal(request, policy(engine), target)
    assert (refused is None) if reason is None else (reason in (refused or "")), refused


def test_the_filter_reads_a_requests_object_before_judging_it(engine):
    assert engine.target_kind(engine.Request("POST", "/v1.45/containers/x/start")) == "container"
    assert engine.target_kind(engine.Request("DELETE", "/v1.45/services/x")) == "service"
    assert engine.target_kind(engine.Request("DELETE", "/v1.45/configs/x")) == "config"
    assert engine.target_kind(engine.Request("POST", "/v1.45/containers/create")) is None


def gpu_settings(request) -> dict:
    limits = copy.deepcopy(recorded("settings")["limits"])
    limits["gpus"] = {"leem": request}
    limits["server_gpus"] = [
        {"index": 0, "name": "A100", "uuid": GPU, "mig": []},
        {"index": 1, "name": "A100", "uuid": GPU2, "mig": []},
    ]
    return {"limits": limits}


def gpu_create(engine, spawn, request, devices: list[str]) -> dict:
    """alice's recorded create with the GPUs labhub_spawn.lab_host_config gives for ``devices``,
    rendered by docker-py."""
    resources = {k: None for k in ("mem_limit", "cpu_limit", "mem_guarantee", "cpu_guarantee")}
    config = spawn.lab_host_config({**resources, "gpus": request}, devices, None)
    rendered = CLIENT.create_host_config(**config)
    return changed({"DeviceRequests": rendered["DeviceRequests"]})


def test_a_gpu_group_gets_its_gpus_and_no_others(engine):
    import labhub_spawn as spawn

    # alice is in leem, which lab_gpus gives one GPU of its own.
    assert create(engine, gpu_create(engine, spawn, 1, [GPU2]), **gpu_settings(1)) is None
    too_many = create(engine, gpu_create(engine, spawn, 1, [GPU, GPU2]), **gpu_settings(1))
    assert "2 GPUs: alice's groups get 1" in too_many
    unknown = create(engine, gpu_create(engine, spawn, 1, ["GPU-other"]), **gpu_settings(1))
    assert "GPUs ['GPU-other']: not alice's groups'" in unknown
    # A group given GPU 0 by index gets that one only.
    assert create(engine, gpu_create(engine, spawn, ["0"], [GPU]), **gpu_settings(["0"])) is None
    listed = create(engine, gpu_create(engine, spawn, ["0"], [GPU2]), **gpu_settings(["0"]))
    assert "not alice's groups'" in listed
    assert (
        create(engine, gpu_create(engine, spawn, "all", [GPU, GPU2]), **gpu_settings("all")) is None
    )
    # Every GPU by count, or anything but NVIDIA's gpu capability: not how labhub asks.
    body = gpu_create(engine, spawn, 1, [GPU])
    body["HostConfig"]["DeviceRequests"][0].update(Count=-1, DeviceIDs=[])
    assert "by id" in create(engine, body, **gpu_settings(1))
    body = gpu_create(engine, spawn, 1, [GPU])
    body["HostConfig"]["DeviceRequests"][0]["Capabilities"] = [["gpu", "utility", "compute"]]
    assert "gpu capability only" in create(engine, body, **gpu_settings(1))


def service_body(engine, **spec) -> dict:
    """A lab service as labhub_service.LabServiceSpawner.create_object makes it (docker-py's
    types; labhub_spawn's security), as JSON."""
    import labhub_spawn as spawn
    from docker.types import ContainerSpec, EndpointSpec, Mount, Resources, TaskTemplate

    account = recorded("accounts")["alice"]
    security, limits = spawn.service_security(4096)
    container = ContainerSpec(
        image="hub.lab.example.org:5443/lab:1.0",
        args=["jupyterhub-singleuser"],
        env={"A": "b"},
        mounts=[Mount(target="/home/jovyan", source=account["home"], type="bind")],
        labels={engine.USER_LABEL: "alice"},
        user=f"{account['uid']}:{account['gids'][0]}",
        groups=[str(g) for g in account["gids"][1:]],
    )
    container.update(security)
    container.update(spec)
    resources = Resources(
        **spawn.service_resources(
            {
                "gpus": 1,
                **dict.fromkeys(("mem_limit", "cpu_limit", "mem_guarantee", "cpu_guarantee")),
            }
        )
    )
    resources.setdefault("Limits", {}).update(limits)
    task = TaskTemplate(container_spec=container, resources=resources, networks=["labhub-swarm"])
    body = {
        "Name": "jupyter-alice",
        "Labels": {engine.USER_LABEL: "alice"},
        "TaskTemplate": task,
        "EndpointSpec": EndpointSpec(mode="dnsrr"),
    }
    return json.loads(json.dumps(body))


def service(engine, body) -> str | None:
    swarm = {
        "node_registry": {"address": "hub.lab.example.org:5443"},
        "swarm": {"network": "labhub-swarm"},
        **gpu_settings(1),
    }
    request = engine.Request("POST", "/v1.45/services/create", {}, body)
    return engine.refusal(request, policy(engine, **swarm))


def test_a_lab_service_as_labhub_makes_it_is_allowed_and_others_refused(engine):
    assert service(engine, service_body(engine)) is None
    for spec, reason in (
        ({"CapabilityDrop": []}, "capabilities not all dropped"),
        ({"CapabilityAdd": ["NET_ADMIN"]}, "added capabilities"),
        ({"Privileges": None}, "no new privileges"),
        ({"User": "0"}, "never run as root"),
        ({"Image": "docker.io/library/debian:13"}, "lab registry"),
        ({"Sysctls": {"net.ipv4.ip_forward": "1"}}, "ContainerSpec.Sysctls"),
        (
            {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]},
            "bind of '/'",
        ),
        (
            {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": "x",
                        "Target": "/x",
                        "VolumeOptions": {"DriverConfig": {"Options": {"device": "/"}}},
                    }
                ]
            },
            "declared paths only",
        ),
        ({"Configs": [{"File": {"Name": "/etc/shadow"}}]}, "account files only"),
    ):
        refused = service(engine, service_body(engine, **spec))
        assert refused is not None and reason in refused, (spec, refused)
    body = service_body(engine)
    body["TaskTemplate"]["Resources"]["Limits"]["Pids"] = 0
    assert "process limit" in service(engine, body)
    body = service_body(engine)
    body["TaskTemplate"]["Resources"]["Reservations"]["GenericResources"][0][
        "DiscreteResourceSpec"
    ]["Value"] = 2
    assert "2 GPUs" in service(engine, body)


def test_a_logged_create_leaves_the_environment_out(engine):
    body = changed(Env=["JUPYTERHUB_API_TOKEN=secret", "HOME=/home/jovyan"])
    assert engine.redacted(body)["Env"] == ["JUPYTERHUB_API_TOKEN=…", "HOME=…"]
    assert "secret" not in json.dumps(engine.redacted(service_body(engine, Env=["T=secret"])))


def test_only_the_filter_has_the_socket_and_only_the_hub_reaches_it():
    from labhub.settings import validate

    settings = validate(
        {"hub_users": ["alice"], "tls": "internal", "hub_domain": "hub.lab.example.org"}, "lab1"
    )
    compose = yaml.safe_load(stack.compose_file_text(settings, "labhub/hub:1", "{}", ""))
    services = compose["services"]
    with_socket = [
        name
        for name, service in services.items()
        if any("docker.sock" in volume for volume in service.get("volumes", []))
    ]
    assert with_socket == ["engine"]
    engine = services["engine"]
    # The hub's image, another command; on the hub's network of their own, with no port.
    assert engine["image"] == services["hub"]["image"] == "labhub/hub:1"
    assert engine["command"] == ["python3", "-m", "labhub_engine_filter"]
    assert engine["networks"] == ["labhub-engine"] and "ports" not in engine
    assert compose["networks"]["labhub-engine"] == {"name": "labhub-engine", "internal": True}
    assert [name for name, s in services.items() if "labhub-engine" in s.get("networks", [])] == [
        "hub",
        "engine",
    ]
    assert services["hub"]["environment"]["DOCKER_HOST"] == "tcp://engine:2375"
    # The hub starts once the filter answers: started without it, it would take labs for stopped.
    assert services["hub"]["depends_on"]["engine"] == {"condition": "service_healthy"}
    assert "healthcheck" in engine
    # The login: a file on the server both mount read-only; its content is never in the project.
    login = f"{stack.ENGINE_LOGIN_FILE}:{stack.ENGINE_LOGIN_PATH}:ro"
    assert login in services["hub"]["volumes"] and login in engine["volumes"]
    assert "password" not in yaml.safe_dump(compose)
