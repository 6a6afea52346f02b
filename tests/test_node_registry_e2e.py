"""
A lab node pulls the lab images from the hub server's registry, as a lab with a second machine
runs: one hub server and one lab node (two lab servers of this machine), deployed from one
inventory. After one ``pyinfra inventory.py deploy.py`` (at -vvv) the node's engine has the lab
image with the registry's digest, pulled over TLS with the login labhub generated on the hub
server (the proxy's access log names the user and the node's address); a pull without the login
is refused with 401, and one from a server that is not a node (this machine, the hub server
itself) with 403, login or not. The login's files are root's alone on both servers and the
password is in no output of the run and nowhere in the repository. A second run changes
nothing, and an image version added later is pushed, then pre-pulled, by the next deploy.

The node finds the hub's name in its /etc/hosts, written here (a real lab has DNS).
"""

from __future__ import annotations

import json
import subprocess

import pytest

import labhost

pytestmark = pytest.mark.e2e

DOMAIN = "hub.lab.test"
PORT = 5443
ADDRESS = f"{DOMAIN}:{PORT}"
SECRETS = "/etc/labhub/registry"
ACCEPT = (
    "application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,"
    "application/vnd.docker.distribution.manifest.list.v2+json,"
    "application/vnd.docker.distribution.manifest.v2+json"
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("node-registry")
    hub = labhost.start_lab_server(stand_ins=True)
    node = None
    try:
        node = labhost.start_lab_server(engine=True)
        overrides = labhost.load_stack_images(hub)
        node.exec(f"echo '{hub.address} {DOMAIN}' >> /etc/hosts")
        data = {
            "docker_source": "distro",
            "hub_users": ["alice"],
            "hub_domain": DOMAIN,
            **overrides,
        }
        inventory = labhost.write_inventory(tmp / "inventory.py", [(hub, data)], [(node, data)])
        first = labhost.run_pyinfra(inventory, "deploy.py", extra=("-vvv",)).check()
        yield {"hub": hub, "node": node, "inventory": inventory, "data": data, "runs": [first]}
    finally:
        labhost.remove_in_background(hub)
        if node is not None:
            labhost.remove_in_background(node)


def registry_digest(hub: labhost.LabServer, repository: str, tag: str) -> str:
    headers = hub.exec(
        f"curl -sSI -H 'Accept: {ACCEPT}' http://127.0.0.1:5000/v2/{repository}/manifests/{tag}"
    )
    for line in headers.splitlines():
        if line.lower().startswith("docker-content-digest:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"the registry has no {repository}:{tag}:\n{headers}")


def repo_digests(node: labhost.LabServer, image: str) -> list[str]:
    out = node.exec(f"docker image inspect --format '{{{{json .RepoDigests}}}}' {image}")
    return json.loads(out)


def proxy_access_log(hub: labhost.LabServer) -> list[dict]:
    out = hub.exec(
        "docker logs $(docker ps -q --filter label=com.docker.compose.service=proxy) 2>&1"
    )
    entries = []
    for line in out.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("logger", "").startswith("http.log.access"):
            entries.append(entry)
    return entries


def password(hub: labhost.LabServer) -> str:
    return hub.exec(f"cat {SECRETS}/password")


def test_the_node_has_the_lab_image_with_the_registrys_digest(lab):
    digest = registry_digest(lab["hub"], "lab", "1.0")
    assert f"{ADDRESS}/lab@{digest}" in repo_digests(lab["node"], f"{ADDRESS}/lab:1.0")


def test_the_node_pulled_over_tls_with_the_login(lab):
    log = proxy_access_log(lab["hub"])
    pulls = [
        entry
        for entry in log
        if entry["request"]["uri"] == "/v2/lab/manifests/1.0" and entry["status"] == 200
    ]
    assert pulls, f"the proxy logged no pull of lab:1.0: {log[-5:]}"
    for entry in pulls:
        assert entry["user_id"] == "labhub"
        assert entry["request"]["remote_ip"] == lab["node"].address
        assert entry["request"]["tls"]["server_name"] == DOMAIN


def test_a_pull_without_the_login_is_refused(lab):
    node = lab["node"]
    result = node.exec(
        f"docker --config /tmp/no-login pull {ADDRESS}/lab:1.0 2>&1; echo exit=$?", check=False
    )
    assert "exit=0" not in result
    assert "no basic auth credentials" in result or "401" in result, result
    status = node.exec(
        f"curl -s -o /dev/null -w '%{{http_code}}' --cacert /etc/docker/certs.d/{ADDRESS}/ca.crt "
        f"https://{ADDRESS}/v2/"
    )
    assert status == "401"
    wrong = node.exec(
        f"curl -s -o /dev/null -w '%{{http_code}}' -u labhub:wrong-password "
        f"--cacert /etc/docker/certs.d/{ADDRESS}/ca.crt https://{ADDRESS}/v2/"
    )
    assert wrong == "401"
    right = node.exec(
        f"curl -s -o /dev/null -w '%{{http_code}}' -K- --cacert "
        f"/etc/docker/certs.d/{ADDRESS}/ca.crt https://{ADDRESS}/v2/ <<EOF\n"
        f'user = "labhub:{password(lab["hub"])}"\nEOF'
    )
    assert right == "200"


def test_a_server_that_is_not_a_node_is_refused_even_with_the_login(lab):
    hub = lab["hub"]
    login = f'user = "labhub:{password(hub)}"\n'
    # This machine.
    here = subprocess.run(
        [
            "curl",
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-K-",
            "--resolve",
            f"{ADDRESS}:{hub.address}",
            f"https://{ADDRESS}/v2/",
        ],
        input=login,
        capture_output=True,
        text=True,
        check=True,
    )
    assert here.stdout == "403"
    # The hub server itself, through the public port.
    itself = hub.exec(
        f"curl -sk -o /dev/null -w '%{{http_code}}' -K- --resolve {ADDRESS}:{hub.address} "
        f"https://{ADDRESS}/v2/ <<EOF\n{login}EOF"
    )
    assert itself == "403"


def test_the_login_files_are_roots_alone(lab):
    hub, node = lab["hub"], lab["node"]
    files = [f"{SECRETS}/password", f"{SECRETS}/proxy.env", f"{SECRETS}/docker/config.json"]
    for path in files:
        assert hub.exec(f"stat -c '%a %U %G' {path}").strip() == "600 root root", path
    assert hub.exec(f"stat -c '%a %U' {SECRETS}/docker").strip() == "700 root"
    assert node.exec(f"stat -c '%a %U %G' {SECRETS}/docker/config.json").strip() == "600 root root"
    assert node.exec(f"stat -c '%a %U' {SECRETS}/docker").strip() == "700 root"
    assert node.exec(f"test -e {SECRETS}/password && echo yes || echo no").strip() == "no"
    # The hub container reads the same login, for the services it creates on the nodes.
    config = hub.exec(
        "docker compose -f /opt/labhub/compose.yaml -p labhub exec -T hub "
        "cat /root/.docker/config.json"
    )
    assert list(json.loads(config)["auths"]) == [ADDRESS]


def test_the_password_is_in_no_output_and_not_in_the_repository(lab):
    secret = password(lab["hub"])
    assert len(secret) >= 32
    run = lab["runs"][0]
    assert "-vvv" in run.argv
    assert secret not in run.stdout
    assert secret not in run.stderr
    found = subprocess.run(
        ["git", "grep", "--untracked", "-F", "-l", secret],
        cwd=labhost.PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert found.returncode == 1, found.stdout


def test_a_second_run_changes_nothing(lab):
    again = labhost.run_pyinfra(lab["inventory"], "deploy.py").check()
    assert again.changed == 0, (again.changed_operations, again.stderr[-3000:])


def test_an_image_pushed_later_is_pre_pulled_by_the_next_deploy(lab):
    hub, node = lab["hub"], lab["node"]
    images = {"lab_images": [{"name": "lab", "version": "1.0"}, {"name": "lab", "version": "1.1"}]}
    plan = labhost.run_pyinfra(lab["inventory"], "deploy.py", data=images, dry=True).check()
    # Named "<task file> | <operation>" in the plan.
    planned = [name.rsplit(" | ", 1)[-1] for name in plan.planned_changes]
    push = planned.index("Push 127.0.0.1:5000/lab:1.1 to the registry")
    pull = planned.index(f"Pre-pull {ADDRESS}/lab:1.1")
    assert push < pull
    labhost.run_pyinfra(lab["inventory"], "deploy.py", data=images).check()
    digest = registry_digest(hub, "lab", "1.1")
    assert f"{ADDRESS}/lab@{digest}" in repo_digests(node, f"{ADDRESS}/lab:1.1")
    again = labhost.run_pyinfra(lab["inventory"], "deploy.py", data=images).check()
    assert again.changed == 0, again.changed_operations
