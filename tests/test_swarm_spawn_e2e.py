"""
Labs on lab nodes, end to end on three lab servers: the hub server and two nodes in one swarm,
node 2 labelled ``gpu=a100`` (its node_labels). Through the hub over HTTPS with a login: a user of
group gpu, placed on node 2 (lab_placement), gets a lab there, as the engine's own view of the
task says, with the contents API and a kernel, as the user's account; a user in no placed group
runs anywhere, one whose name makes a service name over swarm's 63 characters too; a group placed
where no node is fails its spawn at once, saying so, naming the group and the constraint; a lab
killed for memory on node 2 tells its user and the hub's log why; the admin's status names each
lab's node; once node 2 is removed from the inventory, the lab running there is stopped through
the hub, its group's labs fail the same way and the others' start on the servers left.

The nodes pull the lab image from the hub server's registry over TLS with the login
(tasks/node_images.py), finding the hub's name in their /etc/hosts (a real lab has DNS). What
stands in here: this kernel can neither serve nor mount NFS, so the hub server's /home is an
engine volume of this machine that the nodes have too, and their homes' NFS fstab lines become
binds of it (``LabServer.stand_in_nfs``): the file a lab writes on node 2 is the one the hub
server has. And this kernel has no IPsec's ESP, so the lab runs with ``swarm_encrypted`` false
(tests/test_swarm_e2e.py checks the encrypted network the default makes).
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
import requests
from hubclient import Hub, resolving
from scenario import DOMAIN, LOCAL_CA_ROOT, URL

import labhost
from labhub.node_registry import DOCKER_CONFIG

pytestmark = pytest.mark.e2e

# The lab image as the nodes pull it from the hub server's registry.
LAB_IMAGE = f"{DOMAIN}:5443/lab:1.0"
# Where the nodes have the hub server's /home (the stand-in for its NFS export).
SHARED_AT = "/srv/labhost-homes"
# A name of 24 characters (the longest an account with the default prefix takes) that DockerSpawner
# escapes into 56 ('_' is '-5f'): "jupyter-" and it make 64, one more than swarm takes.
LONG = "a__b__c__d__e__f__g__h__"
PASSWORDS = {
    "alice": "alice-swarm-password",
    "bob": "bob-swarm-password",
    "carol": "carol-swarm-password",
    LONG: "long-swarm-password",
}


def users() -> list[dict]:
    # The same uids on every server: the lab writes the home as the user's uid on any node.
    return [
        {"name": "alice", "uid": 2001},
        {"name": "bob", "uid": 2002, "groups": ["gpu"]},
        {"name": "carol", "uid": 2003, "groups": ["tpu"]},
        {"name": LONG, "uid": 2004},
    ]


@pytest.fixture(scope="module")
def swarm_lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("swarm")
    homes = f"labhost-homes-{uuid.uuid4().hex[:8]}"
    servers = [labhost.start_lab_server("swarm-hub", volumes={homes: "/home"}, stand_ins=True)]
    try:
        for name in ("swarm-node1", "swarm-node2"):
            servers.append(labhost.start_lab_server(name, volumes={homes: SHARED_AT}, engine=True))
        hub, node1, node2 = servers
        for node in (node1, node2):
            node.exec(f"echo '{hub.address} {DOMAIN}' >> /etc/hosts")
        # The lab's settings, the same on every server; node 2's labels its own.
        data = {
            "docker_source": "distro",
            "hub_users": users(),
            "hub_admins": ["alice"],
            # Not about who gets in: the first login sets the password.
            "first_login": "open",
            "hub_bind": "0.0.0.0",
            "hub_domain": DOMAIN,
            # This machine's kernel has no IPsec ESP (CONFIG_INET_ESP unset: the engine's
            # "Failed Adding SA ... function not implemented"): an encrypted network would carry
            # nothing between the servers here.
            "swarm_encrypted": False,
            "lab_placement": {
                "gpu": ["node.labels.gpu==a100"],
                "tpu": ["node.labels.tpu==v5"],
            },
            # bob's labs (on node 2) are killed past it, and he is told.
            "lab_limits": {"gpu": {"mem_limit": "256M"}},
            **labhost.load_stack_images(hub),
        }
        inventory = labhost.write_inventory(
            tmp / "inventory.py",
            [(hub, data)],
            [(node1, data), (node2, {**data, "node_labels": {"gpu": "a100"}})],
        )
        run = labhost.run_pyinfra(inventory, "deploy.py").check()
        home_paths = [f"/home/jupyter-{user['name']}" for user in users()]
        for node in (node1, node2):
            node.stand_in_nfs(home_paths, export="/home", shared_at=SHARED_AT)
        root = tmp / "local-ca-root.crt"
        root.write_text(hub.exec(f"cat {LOCAL_CA_ROOT}"))
        with resolving(DOMAIN, lambda: hub.address):
            yield {
                "hub": hub,
                "nodes": (node1, node2),
                "inventory": inventory,
                "data": data,
                "tmp": tmp,
                "run": run,
                "verify": str(root),
            }
    finally:
        for server in servers:
            server.remove()
        labhost.remove_volume(homes)


def logged_in(lab, name: str) -> Hub:
    client = Hub(URL, name, verify=lab["verify"])
    client.login(PASSWORDS[name])
    assert client.logged_in()
    client.api_token()
    return client


def service_of(lab, name: str) -> dict:
    services = json.loads(
        lab["hub"].exec(
            "docker service inspect $(docker service ls -q --filter label=org.labhub.hub-user="
            f"{name})"
        )
    )
    assert len(services) == 1, services
    return services[0]


def running_task(lab, service: str) -> dict:
    tasks = json.loads(
        lab["hub"].exec(
            f"docker inspect $(docker service ps -q --no-trunc --filter desired-state=running "
            f"{service})"
        )
    )
    assert len(tasks) == 1 and tasks[0]["Status"]["State"] == "running", tasks
    return tasks[0]


def node_id(server: labhost.LabServer) -> str:
    return server.exec("docker info --format '{{.Swarm.NodeID}}'").strip()


def stop(lab, client: Hub) -> None:
    """Stop the user's lab through the hub, until its service is gone from the swarm."""
    client.api("DELETE", f"/hub/api/users/{client.user}/server")
    deadline = time.monotonic() + 60
    while (
        lab["hub"].exec(f"docker service ls -q --filter label=org.labhub.hub-user={client.user}")
        or client.server()
    ):
        assert time.monotonic() < deadline, f"{client.user}'s lab is still there"
        time.sleep(1)


def spawn_failure(client: Hub, timeout: float = 120) -> str:
    """Start the user's lab, which must fail: the message the hub gives (the spawn's own error
    when it fails within the hub's first seconds, else its progress's last event)."""
    response = client.api("POST", f"/hub/api/users/{client.user}/server", json={})
    if response.status_code >= 400:
        return response.json()["message"]
    assert response.status_code == 202, response.text
    with requests.get(
        f"{client.url}/hub/api/users/{client.user}/server/progress",
        headers={"Authorization": f"token {client.token}"},
        verify=client.verify,
        stream=True,
        timeout=timeout,
    ) as events:
        for line in events.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("failed"):
                    return event["message"]
                if event.get("ready"):
                    raise AssertionError(f"{client.user}'s lab started: {event}")
    raise AssertionError(f"{client.user}'s spawn neither failed nor started")


def test_the_swarm_has_the_nodes_with_their_labels(swarm_lab):
    hub, (node1, node2) = swarm_lab["hub"], swarm_lab["nodes"]
    # Without encryption, as asked, and the run says so.
    network = json.loads(hub.exec("docker network inspect labhub-swarm"))[0]
    assert "encrypted" not in network["Options"] and network["Attachable"] is True
    run = swarm_lab["run"]
    assert "swarm_encrypted is false" in run.stdout + run.stderr
    nodes = json.loads(hub.exec("docker node inspect $(docker node ls -q)"))
    by_id = {node["ID"]: node for node in nodes}
    assert set(by_id) == {node_id(hub), node_id(node1), node_id(node2)}
    assert all(node["Status"]["State"] == "ready" for node in nodes)
    assert by_id[node_id(node2)]["Spec"]["Labels"] == {"gpu": "a100"}
    assert by_id[node_id(node1)]["Spec"].get("Labels", {}) == {}


def test_a_user_placed_by_group_runs_on_that_node(swarm_lab):
    hub, (_, node2) = swarm_lab["hub"], swarm_lab["nodes"]
    bob = logged_in(swarm_lab, "bob")
    bob.start()
    service = service_of(swarm_lab, "bob")
    # The engine's own view: the task runs on node 2.
    task = running_task(swarm_lab, service["Spec"]["Name"])
    assert task["NodeID"] == node_id(node2)
    spec = service["Spec"]["TaskTemplate"]
    assert spec["Placement"]["Constraints"] == ["node.labels.gpu==a100"]
    assert service["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
    assert spec["RestartPolicy"]["Condition"] == "none"
    # The home a bind mount of the host's folder, on the swarm's network.
    mounts = spec["ContainerSpec"]["Mounts"]
    assert {"Type": "bind", "Source": "/home/jupyter-bob", "Target": "/home/jovyan"} in [
        {k: m[k] for k in ("Type", "Source", "Target")} for m in mounts
    ]
    network = json.loads(hub.exec("docker network inspect labhub-swarm"))[0]
    assert [n["Target"] for n in spec["Networks"]] == [network["Id"]]

    # Through the hub over HTTPS: the contents API and a kernel, as the user's account.
    written = bob.lab(
        "PUT",
        "/api/contents/from-node2.txt",
        json={"type": "file", "format": "text", "content": "written on node 2\n"},
    )
    assert written.status_code in (200, 201), written.text
    printed = bob.run(
        "import getpass, os, socket\n"
        "print(getpass.getuser(), os.getuid(), os.getgid(), os.environ['HOME'])\n"
        "print(open(os.path.expanduser('~/from-node2.txt')).read(), end='')\n"
    )
    assert printed == "jupyter-bob 2002 100 /home/jovyan\nwritten on node 2\n"
    # The file is the user's, in the one home: the hub server has it as node 2 does.
    assert node2.exec("stat -c '%U %u' /home/jupyter-bob/from-node2.txt") == "jupyter-bob 2002\n"
    assert hub.exec("cat /home/jupyter-bob/from-node2.txt") == "written on node 2\n"
    assert hub.exec("stat -c '%U %u' /home/jupyter-bob/from-node2.txt") == "jupyter-bob 2002\n"
    # The admin's status names the lab's service and the node its task runs on.
    found = [
        op["name"]
        for op in labhost.run_pyinfra(
            swarm_lab["inventory"], "tasks/status.py", extra=("--limit", hub.address)
        ).result["results"]["operations"]
    ]
    hostname = node2.exec("hostname").strip()
    assert any(
        name.startswith(f"lab of bob: running on node {hostname} since ")
        and name.endswith(f"({LAB_IMAGE}, service {service['Spec']['Name']})")
        for name in found
    ), found
    stop(swarm_lab, bob)


def hub_log(lab) -> str:
    return lab["hub"].exec("docker logs labhub-hub-1 2>&1")


def test_a_lab_killed_for_memory_on_a_node_stops_and_its_user_is_told(swarm_lab):
    (_, node2) = swarm_lab["nodes"]
    bob = logged_in(swarm_lab, "bob")
    bob.start()
    service = service_of(swarm_lab, "bob")
    assert service["Spec"]["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] == 256 * 2**20
    task = running_task(swarm_lab, service["Spec"]["Name"])
    assert task["NodeID"] == node_id(node2)
    # The lab's Jupyter server first in the OOM killer's line, then a kernel past the limit.
    try:
        bob.run(
            "import os\n"
            "open(f'/proc/{os.getppid()}/oom_score_adj', 'w').write('1000')\n"
            "block = b'x' * (384 * 1024 * 1024)",
            timeout=60,
        )
    # The kernel's WebSocket closes, or its reply never comes (the lab behind it is gone).
    except (AssertionError, requests.RequestException):
        pass
    deadline = time.monotonic() + 120
    while bob.server() is not None:
        assert time.monotonic() < deadline, "the hub does not see bob's lab stopped"
        time.sleep(2)
    # The engine's own view, on node 2: its container was killed for memory.
    container = task["Status"]["ContainerStatus"]["ContainerID"]
    state = json.loads(node2.exec(f"docker inspect --format '{{{{json .State}}}}' {container}"))
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    page = bob.home_page()
    assert "Your lab was stopped because it used more than its memory limit of 256M." in page
    hostname = node2.exec("hostname").strip()
    assert (
        f"bob's lab {service['Spec']['Name']} hit its memory limit (256M): the kernel killed "
        f"its main process, the lab stopped (task failed on node {hostname}, exit code 137)"
    ) in hub_log(swarm_lab)
    # The notice stays until the next lab starts (which replaces the stopped service).
    bob.start()
    assert "used more than its memory limit" not in bob.home_page()
    stop(swarm_lab, bob)


def test_a_placement_no_node_meets_fails_the_spawn_at_once(swarm_lab):
    hub = swarm_lab["hub"]
    carol = logged_in(swarm_lab, "carol")
    message = spawn_failure(carol)
    # Not a spawn timeout: the swarm's refusal, naming the group and its constraint.
    assert "Labs of group tpu run only on a node where node.labels.tpu==v5" in message
    assert "no suitable node (scheduling constraints not satisfied on 3 nodes)" in message
    # The hub's log says so too, and the refused service is gone.
    logs = hub.exec("docker logs labhub-hub-1 2>&1 | tail -200")
    assert "Labs of group tpu run only on a node where node.labels.tpu==v5" in logs
    assert hub.exec("docker service ls -q --filter label=org.labhub.hub-user=carol") == ""


def test_users_in_no_placed_group_run_anywhere(swarm_lab):
    for name in ("alice", LONG):
        client = logged_in(swarm_lab, name)
        client.start()
        service = service_of(swarm_lab, name)
        assert service["Spec"]["TaskTemplate"]["Placement"].get("Constraints") is None
        running_task(swarm_lab, service["Spec"]["Name"])
        assert client.run("import getpass; print(getpass.getuser())") == f"jupyter-{name}\n"
        if name == LONG:
            # jupyter-<escaped name> is 64 characters: swarm takes 63 at most.
            assert len(service["Spec"]["Name"]) == 63
        stop(swarm_lab, client)


def test_an_image_a_node_cannot_pull_fails_the_spawn_at_once(swarm_lab):
    (_, node2) = swarm_lab["nodes"]
    # The image was pulled onto node 2 by the deploy, from the hub server's registry.
    assert node2.exec(f"docker image inspect -f '{{{{.RepoDigests}}}}' {LAB_IMAGE}").startswith(
        f"[{DOMAIN}:5443/lab@sha256:"
    )
    # Node 2 loses the image (once no container of an earlier lab holds it), and cannot pull it
    # again: the hub's name no longer resolves there, nor would its certificate be trusted.
    # (/etc/hosts is the engine's bind mount: written over, not replaced.)
    deadline = time.monotonic() + 60
    while node2.exec(f"docker ps -aq --filter ancestor={LAB_IMAGE}").strip():
        assert time.monotonic() < deadline, "an earlier lab's container stays on node 2"
        time.sleep(1)
    node2.exec(
        f"docker image rm {LAB_IMAGE} && grep -v ' {DOMAIN}$' /etc/hosts > /tmp/hosts && "
        f"cat /tmp/hosts > /etc/hosts && mv /etc/docker/certs.d /etc/docker/certs.d.away"
    )
    assert node2.exec(f"docker image ls -q {LAB_IMAGE}").strip() == ""
    bob = logged_in(swarm_lab, "bob")
    message = spawn_failure(bob)
    hostname = node2.exec("hostname").strip()
    assert message.startswith(f"The image lab 1.0 could not be pulled on node {hostname} ("), (
        message
    )
    assert (
        swarm_lab["hub"].exec("docker service ls -q --filter label=org.labhub.hub-user=bob") == ""
    )
    node2.exec("mv /etc/docker/certs.d.away /etc/docker/certs.d")


def test_a_node_removed_from_the_inventory_no_longer_runs_its_groups_labs(swarm_lab):
    hub, (node1, node2) = swarm_lab["hub"], swarm_lab["nodes"]
    data = swarm_lab["data"]
    # Node 2 pulls again (the test before took that away), and runs bob's lab. Its engine reads
    # /etc/hosts again only once its last read is 5 s old (Go's resolver): until then it cannot.
    node2.exec(f"echo '{hub.address} {DOMAIN}' >> /etc/hosts")
    pull = f"DOCKER_CONFIG={DOCKER_CONFIG} docker pull -q {LAB_IMAGE} >/dev/null 2>&1 && echo ok"
    deadline = time.monotonic() + 30
    while node2.exec(pull, check=False).strip() != "ok":
        assert time.monotonic() < deadline, "node 2 does not pull from the hub server again"
        time.sleep(1)
    bob = logged_in(swarm_lab, "bob")
    bob.start()
    service = service_of(swarm_lab, "bob")["Spec"]["Name"]
    assert running_task(swarm_lab, service)["NodeID"] == node_id(node2)
    inventory = labhost.write_inventory(
        swarm_lab["tmp"] / "without-node2.py", [(hub, data)], [(node1, data)]
    )
    run = labhost.run_pyinfra(inventory, "deploy.py").check()
    assert node_id(node2) not in hub.exec("docker node ls -q").split()
    # Its lab was stopped through the hub, which knows it stopped, before the node left.
    said = run.stdout + run.stderr
    hostname = node2.exec("hostname").strip()
    assert f"node {hostname} leaves the swarm: stopping the labs of bob there through the hub" in (
        said
    )
    assert bob.server() is None
    assert hub.exec("docker service ls -q --filter label=org.labhub.hub-user=bob") == ""
    assert "DELETE /hub/api/users/bob/server (labhub-deploy@" in hub_log(swarm_lab)
    # With the deploy's token: root's alone on the server, never printed.
    assert hub.exec("stat -c '%U %G %a' /etc/labhub/hub-api-token") == "root root 600\n"
    token = hub.exec("cat /etc/labhub/hub-api-token").strip()
    # As secret_files.generated makes it: 48 letters and digits.
    assert re.fullmatch(r"[A-Za-z0-9]{48}", token) and token not in said
    # The group placed on node 2 has nowhere to run: told at once, naming group and constraint.
    message = spawn_failure(logged_in(swarm_lab, "bob"))
    assert "Labs of group gpu run only on a node where node.labels.gpu==a100" in message
    # Everyone else's labs start on the servers left.
    alice = logged_in(swarm_lab, "alice")
    alice.start()
    task = running_task(swarm_lab, service_of(swarm_lab, "alice")["Spec"]["Name"])
    assert task["NodeID"] in (node_id(hub), node_id(node1))
    assert alice.run("print(6 * 7)") == "42\n"
    stop(swarm_lab, alice)
