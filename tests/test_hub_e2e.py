"""
The whole deploy on a fresh Debian 13 lab server, then the hub used as a lab member uses it:
over HTTP from this machine (requests, and a small WebSocket client for kernels), through the
hub's proxy. The server is the shared lab (conftest.py): its dry run and cold deploy are the
ones made for all its modules, and this module, which reboots it, is the last of them.

Nothing can be pulled here: the official registry, JupyterHub and Jupyter base images are stood
in for by images made on this machine (labhost.prepare_images) and loaded into the lab
server's engine; the production Dockerfiles build on them unchanged. CIFS cannot be mounted here,
so a tmpfs at each share's mount point stands in: the labs' bind mounts still show ro/rw and groups.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest
import requests
from hubclient import Hub, form_images, kernel_execute, wait_for_hub
from scenario import (
    DATA_SHARE,
    PASSWORDS,
    REGISTRY,
    SCRATCH_SHARE,
    URL,
    make_shares_writable_as_mounted,
    until_images_fresh,
)

import labhost

pytestmark = pytest.mark.e2e
logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def stack(scenario_lab):
    """The shared lab (conftest.py) as the scenario's cold deploy left it, last of its modules:
    its users may have logged in before."""
    make_shares_writable_as_mounted(scenario_lab.server)
    return {
        "server": scenario_lab.server,
        "inventory": scenario_lab.inventory,
        "cold": scenario_lab.cold,
        "url": URL,
        "verify": scenario_lab.verify,
        "lab": scenario_lab,
    }


# --- The tests, in the order a lab lives through them ------------------------------------------


def test_a_dry_run_on_the_bare_server_plans_the_stack_and_changes_nothing(stack):
    dry = stack["lab"].dry
    assert dry.returncode == 0, dry.stderr[-3000:]
    for planned in (
        "Build the hub image",
        "Bring up the hub stack (docker compose up)",
        "Build 127.0.0.1:5000/lab:1.0",
        "Push 127.0.0.1:5000/lab:1.0 to the registry",
    ):
        assert any(planned in name for name in dry.planned_changes), planned
    assert stack["lab"].left_by_dry == ""


def test_cold_deploy_brings_up_the_stack(stack):
    server, url = stack["server"], stack["url"]
    assert stack["cold"].changed > 0
    assert requests.get(f"{url}/hub/health", timeout=10, verify=stack["verify"]).status_code == 200
    catalog = json.loads(server.exec(f"curl -fsS http://{REGISTRY}/v2/_catalog"))
    assert "lab" in catalog["repositories"]
    tags = json.loads(server.exec(f"curl -fsS http://{REGISTRY}/v2/lab/tags/list"))
    assert "1.0" in tags["tags"]
    # The contract the registry pruning relies on.
    config = server.exec("cat /opt/labhub/registry/config.yml")
    assert re.search(r"delete:\n\s+enabled: true", config)
    services = server.exec(
        "docker compose -f /opt/labhub/compose.yaml ps --services --status running"
    ).split()
    assert sorted(services) == ["engine", "hub", "proxy", "registry"]
    mounts = server.exec(
        "docker inspect labhub-registry-1 --format '{{range .Mounts}}{{.Destination}} {{end}}'"
    )
    assert "/etc/docker/registry/config.yml" in mounts.split()


def test_first_login_spawns_a_lab_from_the_registry(stack):
    server, url = stack["server"], stack["url"]
    alice = Hub(url, "alice", verify=stack["verify"])
    alice.login(PASSWORDS["alice"])
    assert alice.logged_in()
    alice.api_token()

    assert form_images(alice.spawn_form()) == [(f"{REGISTRY}/lab:1.0", True)]

    alice.start()
    image = server.exec("docker inspect jupyter-alice --format '{{.Config.Image}}'").strip()
    assert image == f"{REGISTRY}/lab:1.0"
    uid = int(server.exec("id -u jupyter-alice"))

    written = alice.lab(
        "PUT",
        "/api/contents/hello.txt",
        json={"type": "file", "format": "text", "content": "hello from alice\n"},
    )
    assert written.status_code in (200, 201), written.text
    assert server.exec("cat /home/jupyter-alice/hello.txt") == "hello from alice\n"
    assert int(server.exec("stat -c %u /home/jupyter-alice/hello.txt")) == uid

    assert alice.run("import os; print(os.getuid(), os.getgid())").split() == [str(uid), "100"]
    # alice is an admin: she sees the idle culler running as a hub service.
    services = alice.api("GET", "/hub/api/services").json()
    assert "idle-culler" in services, services
    # JupyterLab is the default view.
    landing = alice.api("GET", "/user/alice/", allow_redirects=False)
    assert urlparse(landing.headers["Location"]).path == "/user/alice/lab"


# --- The hub's reach into the engine: only through the filter, only labs as labhub asks -------
# Run in the hub's container with its own login (its DOCKER_HOST and NETRC): a lab like alice's,
# then that lab with one thing changed, each create answered with its status and message; an
# exec into the registry's container; a request with no login. A create allowed is removed.
FILTER_PROBE = r"""
import json, os, sys
import docker
from docker.errors import APIError

client = docker.APIClient(**docker.utils.kwargs_from_env(), version="auto")
uid = int(sys.argv[1])
base = dict(
    image="127.0.0.1:5000/lab:1.0", command=["true"], user=f"{uid}:100",
    labels={"org.labhub.lab": "alice"},
)
host = dict(
    network_mode="labhub", cap_drop=["ALL"], security_opt=["no-new-privileges"],
    pids_limit=4096, binds={"/home/jupyter-alice": {"bind": "/home/jovyan", "mode": "rw"}},
)
cases = {
    "normal": ({}, {}),
    "privileged": ({}, {"privileged": True}),
    "bind /": ({}, {"binds": {"/": {"bind": "/host", "mode": "rw"}}}),
    "bind socket": ({}, {"binds": {"/var/run/docker.sock": {"bind": "/d.sock", "mode": "rw"}}}),
    "image": ({"image": "labhub-test/jupyterhub:5.2.1"}, {}),
    "uid 0": ({"user": "0:0"}, {}),
    "pid host": ({}, {"pid_mode": "host"}),
    "device": ({}, {"devices": ["/dev/kmsg:/dev/kmsg:rwm"]}),
}
answers = {}
for case, (create, host_config) in cases.items():
    try:
        made = client.create_container(
            **{**base, **create}, host_config=client.create_host_config(**{**host, **host_config})
        )
        client.remove_container(made["Id"], force=True)
        answers[case] = [201, ""]
    except APIError as e:
        answers[case] = [e.status_code, str(e.explanation)]
try:
    client.exec_create("labhub-registry-1", ["id"])
    answers["exec"] = [201, ""]
except APIError as e:
    answers["exec"] = [e.status_code, str(e.explanation)]
os.environ.pop("NETRC")
try:
    docker.APIClient(**docker.utils.kwargs_from_env(), version="1.41").info()
    answers["no login"] = [200, ""]
except APIError as e:
    answers["no login"] = [e.status_code, str(e.explanation)]
print(json.dumps(answers))
"""


def test_the_hub_reaches_the_engine_only_through_its_filter(stack):
    server = stack["server"]
    mounts = json.loads(server.exec("docker inspect labhub-hub-1 --format '{{json .Mounts}}'"))
    assert not [m for m in mounts if "docker.sock" in m["Source"] + m["Destination"]], mounts
    uid = int(server.exec("id -u jupyter-alice"))
    answers = json.loads(
        server.exec(f"docker exec labhub-hub-1 python3 -c {shlex.quote(FILTER_PROBE)} {uid}")
        .strip()
        .splitlines()[-1]
    )
    assert answers.pop("normal") == [201, ""]
    assert answers.pop("no login")[0] == 401
    for case, reason in {
        "privileged": "privileged mode",
        "bind /": "bind of '/'",
        "bind socket": "bind of '/var/run/docker.sock'",
        "image": "not from the lab registry",
        "uid 0": "never run as root",
        "pid host": "PidMode 'host'",
        "device": "devices",
        "exec": "exec into a container",
    }.items():
        status, message = answers.pop(case)
        assert status == 403 and reason in message, (case, status, message)
    assert answers == {}
    # Each refusal is in the filter's log, with its reason.
    logged = server.exec("docker logs labhub-engine-1 2>&1")
    assert "refused POST /v1." in logged and "privileged mode: labs never get it" in logged


def test_a_lab_has_no_capability_no_new_privileges_and_a_process_limit(stack):
    alice = Hub(stack["url"], "alice", verify=stack["verify"])
    alice.login(PASSWORDS["alice"])
    alice.api_token()
    status = dict(
        line.split(":", 1)
        for line in alice.run("print(open('/proc/self/status').read())").splitlines()
        if ":" in line
    )
    assert status["CapEff"].strip() == "0000000000000000"
    assert status["CapPrm"].strip() == "0000000000000000"
    assert status["NoNewPrivs"].strip() == "1"
    config = json.loads(
        stack["server"].exec("docker inspect jupyter-alice --format '{{json .HostConfig}}'")
    )
    assert config["PidsLimit"] == 4096 and config["CapDrop"] == ["ALL"]
    assert config["SecurityOpt"] == ["no-new-privileges"]


def test_the_culler_stops_an_idle_lab_through_the_filter(stack):
    server = stack["server"]
    alice = Hub(stack["url"], "alice", verify=stack["verify"])
    alice.login(PASSWORDS["alice"])
    token = alice.api_token()
    time.sleep(3)
    # The hub's own culler, once, with an idle timeout every lab is past; then alice's lab again.
    culled = server.exec(
        "docker exec -e JUPYTERHUB_API_TOKEN="
        + shlex.quote(token)
        + " -e JUPYTERHUB_API_URL=http://127.0.0.1:8081/hub/api labhub-hub-1 timeout 30 "
        "python3 -m jupyterhub_idle_culler --timeout=1 --cull-every=600 2>&1",
        check=False,
    )
    deadline = time.monotonic() + 60
    while alice.server() is not None and time.monotonic() < deadline:
        time.sleep(1)
    assert alice.server() is None, culled
    assert server.exec("docker ps -aq --filter name=jupyter-alice").strip() == ""
    # A spawn again, as the tests after this one find alice's lab.
    alice.start()


def test_a_spawn_that_pulls_its_image_shows_its_steps(stack):
    """The spawn page's progress for a lab whose image the server's engine does not have (as
    after an admin prunes it): the pull, with how much of it is done, the container created,
    the server waited for, then ready."""
    server, url = stack["server"], stack["url"]
    alice = Hub(url, "alice", verify=stack["verify"])
    alice.login(PASSWORDS["alice"])
    alice.api_token()
    image = f"{REGISTRY}/lab:1.0"
    # An image a container uses cannot be removed: every lab stopped first (alice is an admin).
    for user in alice.api("GET", "/hub/api/users").json():
        if user["servers"]:
            alice.api("DELETE", f"/hub/api/users/{user['name']}/server")
    deadline = time.monotonic() + 120
    while any(user["servers"] for user in alice.api("GET", "/hub/api/users").json()):
        assert time.monotonic() < deadline, "the labs did not stop"
        time.sleep(1)
    # Its layers go too: the engine's build cache keeps those of the image built here.
    server.exec(f"docker rmi {image} && docker builder prune --all --force")

    with ThreadPoolExecutor(max_workers=1) as pool:
        asked = pool.submit(alice.api, "POST", "/hub/api/users/alice/server", json={})
        events = alice.spawn_progress()
        assert asked.result().status_code in (201, 202), asked.result().text

    messages = [event["message"] for event in events]
    logger.info("spawn progress: %s", messages)
    assert events[-1].get("ready"), messages
    pulls = [event for event in events if event["message"].startswith("Pulling the image lab 1.0")]
    # The megabytes come only with the engine's "Downloading" lines, which a fast pull from the
    # server's own registry may skip (test_spawn_progress covers them): the layers always come.
    amounts = [e for e in pulls if re.search(r": \d+ of \d+ layers done", e["message"])]
    assert amounts, messages
    assert 0 < amounts[0]["progress"] <= amounts[-1]["progress"] < 100
    steps = ["Creating the lab's container", "Waiting for the lab's Jupyter server"]
    assert [m for m in messages if m in steps] == steps, messages
    assert messages.index(steps[0]) > messages.index(pulls[-1]["message"])
    assert server.exec(f"docker images -q {image}").strip()
    alice.wait_ready()


def test_wrong_password_and_undeclared_users_are_refused(stack):
    url = stack["url"]
    for user, password in (("alice", "not-alices-password"), ("mallory", "mallory-password")):
        client = Hub(url, user, verify=stack["verify"])
        refused = client.login(password)
        assert urlparse(refused.url).path == "/hub/login", user
        assert "Invalid username or password" in refused.text, user
        assert not client.logged_in(), user


def test_shares_are_mounted_as_declared(stack):
    url = stack["url"]
    alice = Hub(url, "alice", verify=stack["verify"])
    alice.login(PASSWORDS["alice"])
    alice.api_token()
    probe = (
        "import os\n"
        "for share in ('data', 'scratch'):\n"
        "    path = os.path.expanduser('~/' + share)\n"
        "    try:\n"
        "        open(path + '/probe', 'w').write('x')\n"
        "        print(share, 'writable')\n"
        "    except OSError as e:\n"
        "        print(share, 'missing' if not os.path.isdir(path) else f'errno{e.errno}')\n"
    )
    assert alice.run(probe).split("\n")[:2] == ["data errno30", "scratch writable"]

    bob = Hub(url, "bob", verify=stack["verify"])
    bob.login(PASSWORDS["bob"])
    bob.api_token()
    bob.start()
    assert bob.run(probe).split("\n")[:2] == ["data errno30", "scratch missing"]
    assert bob.api("DELETE", "/hub/api/users/bob/server").status_code in (202, 204)


def test_pushed_image_is_offered_within_the_freshness_window_newest_first(stack):
    server, url = stack["server"], stack["url"]
    hub_started = server.exec("docker inspect labhub-hub-1 --format '{{.State.StartedAt}}'")
    # An admin pushes a new version by hand; the hub is not restarted.
    server.exec(
        f"docker tag {REGISTRY}/lab:1.0 {REGISTRY}/lab:1.1 && docker push -q {REGISTRY}/lab:1.1"
    )
    pushed = time.monotonic()
    bob = Hub(url, "bob", verify=stack["verify"])
    bob.login(PASSWORDS["bob"])
    bob.api_token()
    deadline = time.monotonic() + 60
    while bob.server() is not None and time.monotonic() < deadline:
        time.sleep(1)
    until_images_fresh(pushed)
    assert form_images(bob.spawn_form()) == [
        (f"{REGISTRY}/lab:1.1", False),
        (f"{REGISTRY}/lab:1.0", True),
    ]
    bob.start(image=f"{REGISTRY}/lab:1.1")
    image = server.exec("docker inspect jupyter-bob --format '{{.Config.Image}}'").strip()
    assert image == f"{REGISTRY}/lab:1.1"
    bob.api("DELETE", "/hub/api/users/bob/server")
    assert server.exec("docker inspect labhub-hub-1 --format '{{.State.StartedAt}}'") == hub_started


def test_hub_restart_keeps_labs_and_passwords(stack):
    server, url = stack["server"], stack["url"]
    server.exec("cd /opt/labhub && docker compose restart hub")
    wait_for_hub(url, verify=stack["verify"])
    alice = Hub(url, "alice", verify=stack["verify"])
    alice.login(PASSWORDS["alice"])
    assert alice.logged_in()
    alice.api_token()
    assert alice.server()["ready"]
    assert (
        server.exec("docker inspect jupyter-alice --format '{{.State.Running}}'").strip() == "true"
    )
    contents = alice.lab("GET", "/api/contents/hello.txt")
    assert contents.status_code == 200 and contents.json()["content"] == "hello from alice\n"


def test_second_deploy_changes_nothing(stack):
    timings = stack["lab"].timings
    started = time.monotonic()
    again = labhost.run_pyinfra(stack["inventory"], "deploy.py").check()
    timings["no-change deploy"] = time.monotonic() - started
    logger.warning("timings: %s", timings)
    assert again.changed == 0, again.changed_operations


def test_changes_rebuild_and_recreate_only_what_changed(stack, tmp_path):
    """A hub setting recreates the hub alone (labs and their kernels keep running); a new lab
    image is built and pushed alone."""
    server, url = stack["server"], stack["url"]
    alice = Hub(url, "alice", verify=stack["verify"])
    alice.login(PASSWORDS["alice"])
    alice.api_token()
    kernel = alice.lab("POST", "/api/kernels", json={"name": "python3"}).json()["id"]
    channels = f"/user/alice/api/kernels/{kernel}/channels"
    kernel_execute(url, channels, alice.token, "answer = 6 * 7", 60, stack["verify"])
    registry_started = server.exec(
        "docker inspect labhub-registry-1 --format '{{.State.StartedAt}}'"
    )
    hub_container = server.exec("docker inspect labhub-hub-1 --format '{{.Id}}'")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nLABEL org.example.lab-tools=1\n"
    )

    run = labhost.run_pyinfra(
        stack["inventory"],
        "deploy.py",
        data={
            "min_password_length": 12,
            "lab_images": [
                {"name": "lab", "version": "1.0"},
                {"name": "tools", "version": "0.1", "context": str(tools)},
            ],
        },
    ).check()
    changed = [name.split(" | ", 1)[1] for name in run.changed_operations]
    assert sorted(changed) == sorted(
        [
            "Write the stack's files: compose.yaml, hub/settings.json, registry/config.yml, "
            "proxy/caddy.json",
            "Bring up the hub stack (docker compose up)",
            f"Upload the build context of {REGISTRY}/tools:0.1 ({tools})",
            f"Build {REGISTRY}/tools:0.1",
            f"Push {REGISTRY}/tools:0.1 to the registry",
        ]
    ), changed

    assert server.exec("docker inspect labhub-hub-1 --format '{{.Id}}'") != hub_container
    assert (
        server.exec("docker inspect labhub-registry-1 --format '{{.State.StartedAt}}'")
        == registry_started
    )
    assert (
        "tools"
        in json.loads(server.exec(f"curl -fsS http://{REGISTRY}/v2/_catalog"))["repositories"]
    )
    # The same lab, through the new hub: the kernel started before still holds its variable,
    # and the password set at the first login still logs in.
    assert (
        kernel_execute(url, channels, alice.token, "print(answer)", 60, stack["verify"]).strip()
        == "42"
    )
    assert alice.lab("DELETE", f"/api/kernels/{kernel}").status_code == 204
    alice = Hub(url, "alice", verify=stack["verify"])
    alice.login(PASSWORDS["alice"])
    assert alice.logged_in()
    alice.api_token()
    assert alice.server()["ready"]
    assert alice.lab("GET", "/api/contents/hello.txt").status_code == 200


def test_an_engine_restart_keeps_labs_and_kernels_running(stack):
    server, url = stack["server"], stack["url"]
    alice = Hub(url, "alice", verify=stack["verify"])
    alice.login(PASSWORDS["alice"])
    alice.api_token()
    if not (alice.server() or {}).get("ready"):
        alice.start()
    started = server.exec("docker inspect jupyter-alice --format '{{.State.StartedAt}}'")
    kernel = alice.lab("POST", "/api/kernels", json={"name": "python3"}).json()["id"]
    server.exec("systemctl restart docker")
    wait_for_hub(url, verify=stack["verify"])
    # The same container, never stopped, and the kernel started before still answers.
    assert server.exec("docker inspect jupyter-alice --format '{{.State.StartedAt}}'") == started
    assert (
        kernel_execute(
            url,
            f"/user/alice/api/kernels/{kernel}/channels",
            alice.token,
            "print(6 * 7)",
            60,
            stack["verify"],
        ).strip()
        == "42"
    )
    assert alice.lab("DELETE", f"/api/kernels/{kernel}").status_code == 204


def test_a_lab_starts_without_a_share_whose_server_is_down_and_gets_it_back(stack):
    """
    The data share's server stops answering: a tmpfs stands in for CIFS in labhub's own fstab
    line, and its mount fails while the server is down (where the kernel has autofs, whatever
    enters the share first waits for it, as for a CIFS timeout). alice's lab starts without it,
    with scratch, and she is told; the hub's log and status name it. Once the server answers
    again, her next lab has it.
    """
    server, url = stack["server"], stack["url"]
    server.stand_in_cifs([DATA_SHARE])
    server.share_server(DATA_SHARE, answers=False)
    alice = Hub(url, "alice", verify=stack["verify"])
    alice.login(PASSWORDS["alice"])
    alice.api_token()
    probe = (
        "import os\nfor share in ('data', 'scratch'):\n"
        "    print(share, os.path.ismount(os.path.expanduser('~/' + share)))"
    )

    def restart() -> str:
        if alice.server() is not None:
            assert alice.api("DELETE", "/hub/api/users/alice/server").status_code in (202, 204)
            deadline = time.monotonic() + 60
            while alice.server() is not None and time.monotonic() < deadline:
                time.sleep(1)
        alice.start()
        return alice.home_page()

    home = restart()
    assert alice.run(probe).split("\n")[:2] == ["data False", "scratch True"]
    assert "Your lab started without the share data (/home/jovyan/data)" in home, home[-3000:]
    log = server.exec("docker logs labhub-hub-1 2>&1")
    assert f"alice's lab starts without share data: nothing is mounted at {DATA_SHARE}" in log
    status = labhost.run_pyinfra(stack["inventory"], "tasks/status.py")
    failed = [op["name"] for op in status.result["results"]["operations"] if op["error"]]
    assert f"share data: not mounted at {DATA_SHARE}" in failed, failed
    assert not [name for name in failed if name.startswith("share scratch")], failed
    assert status.returncode != 0

    server.share_server(DATA_SHARE, answers=True)
    home = restart()
    assert alice.run(probe).split("\n")[:2] == ["data True", "scratch True"]
    assert "Your lab started without" not in home
    status = labhost.run_pyinfra(stack["inventory"], "tasks/status.py")
    found = {op["name"]: op["error"] for op in status.result["results"]["operations"]}
    assert not found[f"share data: mounted at {DATA_SHARE}"], found


@pytest.mark.skipif(
    not labhost.HAS_AUTOFS,
    reason="this machine's kernel has no autofs (no "
    "/dev/autofs): a share's automount cannot be started in a lab server here",
)
def test_after_a_reboot_a_lab_is_the_first_to_touch_its_share(stack):
    """
    Last, as it reboots the server. A tmpfs stands in for CIFS in labhub's own fstab lines (only
    their type and source swapped); after the reboot nothing has touched the shares until a lab
    starts: the hub, looking whether the share is there for the lab, triggers its automount,
    and the lab writes into the share as its user's uid.
    """
    server = stack["server"]
    server.stand_in_cifs([DATA_SHARE, SCRATCH_SHARE])
    server.reboot()
    url = stack["url"]
    wait_for_hub(url, verify=stack["verify"])
    assert (
        server.exec(f"findmnt --noheadings --output FSTYPE --mountpoint {SCRATCH_SHARE}")
        == "autofs\n"
    )

    alice = Hub(url, "alice", verify=stack["verify"])
    alice.login(PASSWORDS["alice"])
    alice.api_token()
    alice.start()
    written = alice.run(
        "import os\n"
        "open(os.path.expanduser('~/scratch/after-reboot'), 'w').write('x')\n"
        "print(os.stat(os.path.expanduser('~/scratch/after-reboot')).st_uid)"
    )
    uid = server.exec("id -u jupyter-alice").strip()
    assert written.split("\n")[0] == uid
    assert (
        "tmpfs"
        in server.exec(f"findmnt --noheadings --output FSTYPE --mountpoint {SCRATCH_SHARE}").split()
    )
    assert server.exec(f"stat -c %u {SCRATCH_SHARE}/after-reboot").strip() == uid
    # The read-only share mounted read-only, for every user; scratch only for group leem.
    bob = Hub(url, "bob", verify=stack["verify"])
    bob.login(PASSWORDS["bob"])
    bob.api_token()
    bob.start()
    probe = (
        "import os\nfor share in ('data', 'scratch'):\n"
        "    print(share, os.path.isdir(os.path.expanduser('~/' + share)))"
    )
    assert bob.run(probe).split("\n")[:2] == ["data True", "scratch False"]
    data = server.exec(
        f"findmnt --noheadings --output OPTIONS --types tmpfs --mountpoint {DATA_SHARE}"
    )
    assert "ro" in data.strip().split(","), data
