"""
The whole deploy on a fresh Debian 13 lab server, then the hub used as a lab member uses it:
over HTTP from this machine (requests, and a small WebSocket client for kernels), through the
hub's proxy.

Nothing can be pulled here: the official registry, JupyterHub and Jupyter base images are stood
in for by images made on this machine (labhost.prepare_images) and loaded into the lab
server's engine; the production Dockerfiles build on them unchanged. CIFS cannot be mounted here,
so the shares' mount points are plain folders: the labs' bind mounts still show ro/rw and groups.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import struct
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

import labhost

pytestmark = pytest.mark.e2e
logger = logging.getLogger(__name__)

PASSWORDS = {"alice": "alice-first-login", "bob": "bob-first-login-pw"}
DATA_SHARE = "/srv/shares/data"          # read-only, for every hub user
SCRATCH_SHARE = "/srv/shares/scratch"    # read-write, only for group leem
REGISTRY = "127.0.0.1:5000"
TIMINGS: dict[str, float] = {}


def deploy_data(tmp: Path, overrides: dict) -> dict:
    credentials = tmp / "share-credentials"
    credentials.write_text("username=lab\npassword=not-used-here\n")
    return {
        "docker_source": "distro",
        "hub_users": [{"name": "alice", "groups": ["leem"]}, "bob"],
        "hub_admins": ["alice"],
        # The tests reach the hub from this machine; the registry stays on the server's loopback.
        "hub_bind": "0.0.0.0",
        "shares": [
            {"name": "data", "source": "//127.0.0.1/data", "mountpoint": DATA_SHARE,
             "mode": "ro", "credentials": str(credentials)},
            {"name": "scratch", "source": "//127.0.0.1/scratch",
             "mountpoint": SCRATCH_SHARE, "mode": "rw", "credentials": str(credentials),
             "groups": ["leem"]},
        ],
        # The stand-in base images, and this machine's CA bundle for pip in the image builds.
        **overrides,
    }


def make_shares_writable_as_mounted(server: labhost.LabServer) -> None:
    # A CIFS mount's owner and modes come from its mount options; a plain folder stands in, with
    # the share's automount stopped: a first access would mount CIFS, which fails here.
    server.exec(f"systemctl stop $(systemd-escape --path --suffix=automount {DATA_SHARE}) "
                f"$(systemd-escape --path --suffix=automount {SCRATCH_SHARE})")
    server.exec(f"mkdir -p {DATA_SHARE} {SCRATCH_SHARE} && echo shared > {DATA_SHARE}/README "
                f"&& chmod 0777 {SCRATCH_SHARE} {DATA_SHARE}")


@pytest.fixture(scope="module")
def stack(lab_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub")
    started = time.monotonic()
    overrides = labhost.load_stack_images(lab_server)
    TIMINGS["engine and image load"] = time.monotonic() - started
    data = deploy_data(tmp, overrides)
    inventory = lab_server.inventory_file(data)

    # A dry run on the bare server plans the stack and changes nothing.
    dry = labhost.run_pyinfra(inventory, "deploy.py", dry=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    for planned in ("Build the hub image", "Bring up the hub stack (docker compose up)",
                    "Build 127.0.0.1:5000/lab:1.0", "Push 127.0.0.1:5000/lab:1.0 to the registry"):
        assert any(planned in name for name in dry.planned_changes), planned
    assert lab_server.exec("test -e /opt/labhub && echo exists || true").strip() == ""

    started = time.monotonic()
    cold = labhost.run_pyinfra(inventory, "deploy.py")
    TIMINGS["cold deploy"] = time.monotonic() - started
    cold.check()
    make_shares_writable_as_mounted(lab_server)
    logger.warning("timings: %s", TIMINGS)
    return {"server": lab_server, "inventory": inventory, "cold": cold,
            "url": f"http://{lab_server.address}:8000"}


def wait_for_hub(url: str, timeout: float = 120) -> None:
    """Until the hub answers its health check again (after a restart or a reboot)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/hub/health", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    raise AssertionError(f"the hub at {url} did not answer within {timeout} s")


# --- A lab member's HTTP client ----------------------------------------------------------------

class Hub:
    def __init__(self, url: str, user: str):
        self.url = url
        self.user = user
        self.session = requests.Session()
        self.token: str | None = None

    def login(self, password: str) -> requests.Response:
        self.session.get(f"{self.url}/hub/login", timeout=30)
        return self.session.post(
            f"{self.url}/hub/login",
            data={"username": self.user, "password": password,
                  "_xsrf": self.session.cookies.get("_xsrf", path="/hub/")},
            timeout=30,
        )

    def logged_in(self) -> bool:
        response = self.session.get(f"{self.url}/hub/home", timeout=30, allow_redirects=False)
        return response.status_code == 200

    def api_token(self) -> str:
        response = self.session.post(
            f"{self.url}/hub/api/users/{self.user}/tokens",
            json={"note": "labhub e2e", "expires_in": 3600},
            headers={"X-XSRFToken": self.session.cookies.get("_xsrf", path="/hub/")},
            timeout=30,
        )
        response.raise_for_status()
        self.token = response.json()["token"]
        return self.token

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.url + path, timeout=60,
                                headers={"Authorization": f"token {self.token}"}, **kwargs)

    def spawn_form(self) -> str:
        response = self.session.get(f"{self.url}/hub/spawn", timeout=60)
        response.raise_for_status()
        return response.text

    def start(self, image: str | None = None, timeout: float = 240) -> dict:
        response = self.api("POST", f"/hub/api/users/{self.user}/server",
                            json={"image": image} if image else {})
        assert response.status_code in (201, 202), response.text
        return self.wait_ready(timeout)

    def server(self) -> dict | None:
        response = self.api("GET", f"/hub/api/users/{self.user}")
        response.raise_for_status()
        return response.json()["servers"].get("")

    def wait_ready(self, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server()
            if server and server["ready"]:
                return server
            time.sleep(1)
        raise AssertionError(f"{self.user}'s server did not become ready: {server}")

    def lab(self, method: str, path: str, **kwargs) -> requests.Response:
        """The user's Jupyter Server, through the hub's proxy."""
        return self.api(method, f"/user/{self.user}{path}", **kwargs)

    def run(self, code: str, timeout: float = 60) -> str:
        """Run code in a new kernel of the user's lab; return what it printed."""
        kernel = self.lab("POST", "/api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        kernel_id = kernel.json()["id"]
        try:
            return kernel_execute(self.url, f"/user/{self.user}/api/kernels/{kernel_id}/channels",
                                  self.token, code, timeout)
        finally:
            self.lab("DELETE", f"/api/kernels/{kernel_id}")


def kernel_execute(url: str, path: str, token: str, code: str, timeout: float) -> str:
    """Jupyter's kernel protocol over a WebSocket (RFC 6455, text frames), with only the stdlib."""
    parsed = urlparse(url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: token {token}\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise AssertionError(f"WebSocket handshake cut short: {head!r}")
            head += chunk
        head, buffered = head.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head.decode(errors="replace")

        msg_id = uuid.uuid4().hex
        _send_text(sock, json.dumps({
            "header": {"msg_id": msg_id, "username": "e2e", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        output, error = [], None
        reader = _FrameReader(sock, buffered)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(reader.next_text())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "stream":
                output.append(message["content"]["text"])
            elif kind == "error":
                error = "\n".join(message["content"]["traceback"])
            elif kind == "status" and message["content"]["execution_state"] == "idle":
                break
        if error:
            raise AssertionError(f"kernel error:\n{error}")
        return "".join(output)
    finally:
        sock.close()


def _send_text(sock: socket.socket, text: str) -> None:
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    elif len(payload) < 1 << 16:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(header + mask + masked)


class _FrameReader:
    def __init__(self, sock: socket.socket, buffered: bytes):
        self.sock = sock
        self.buffer = buffered

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("WebSocket closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def next_text(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise AssertionError("WebSocket closed by the server")
            if opcode in (0x1, 0x0):
                message += payload
                if first & 0x80:
                    return message.decode()


# --- The tests, in the order a lab lives through them ------------------------------------------

def test_cold_deploy_brings_up_the_stack(stack):
    server, url = stack["server"], stack["url"]
    assert stack["cold"].changed > 0
    assert requests.get(f"{url}/hub/health", timeout=10).status_code == 200
    catalog = json.loads(server.exec(f"curl -fsS http://{REGISTRY}/v2/_catalog"))
    assert "lab" in catalog["repositories"]
    tags = json.loads(server.exec(f"curl -fsS http://{REGISTRY}/v2/lab/tags/list"))
    assert "1.0" in tags["tags"]
    # The contract the registry pruning relies on.
    config = server.exec("cat /opt/labhub/registry/config.yml")
    assert re.search(r"delete:\n\s+enabled: true", config)
    services = server.exec("docker compose -f /opt/labhub/compose.yaml ps --services "
                           "--status running").split()
    assert sorted(services) == ["hub", "registry"]
    mounts = server.exec("docker inspect labhub-registry-1 --format "
                         "'{{range .Mounts}}{{.Destination}} {{end}}'")
    assert "/etc/docker/registry/config.yml" in mounts.split()


def test_first_login_spawns_a_lab_from_the_registry(stack):
    server, url = stack["server"], stack["url"]
    alice = Hub(url, "alice")
    alice.login(PASSWORDS["alice"])
    assert alice.logged_in()
    alice.api_token()

    form = alice.spawn_form()
    assert re.search(rf'<option value="{REGISTRY}/lab:1.0"\s*selected', form), form

    alice.start()
    image = server.exec("docker inspect jupyter-alice --format '{{.Config.Image}}'").strip()
    assert image == f"{REGISTRY}/lab:1.0"
    uid = int(server.exec("id -u jupyter-alice"))

    written = alice.lab("PUT", "/api/contents/hello.txt",
                        json={"type": "file", "format": "text", "content": "hello from alice\n"})
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


def test_wrong_password_and_undeclared_users_are_refused(stack):
    url = stack["url"]
    for user, password in (("alice", "not-alices-password"), ("mallory", "mallory-password")):
        client = Hub(url, user)
        refused = client.login(password)
        assert urlparse(refused.url).path == "/hub/login", user
        assert "Invalid username or password" in refused.text, user
        assert not client.logged_in(), user


def test_shares_are_mounted_as_declared(stack):
    url = stack["url"]
    alice = Hub(url, "alice")
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

    bob = Hub(url, "bob")
    bob.login(PASSWORDS["bob"])
    bob.api_token()
    bob.start()
    assert bob.run(probe).split("\n")[:2] == ["data errno30", "scratch missing"]
    assert bob.api("DELETE", "/hub/api/users/bob/server").status_code in (202, 204)


def test_pushed_image_is_offered_at_once_newest_first(stack):
    server, url = stack["server"], stack["url"]
    hub_started = server.exec("docker inspect labhub-hub-1 --format '{{.State.StartedAt}}'")
    # An admin pushes a new version by hand; the hub is not restarted.
    server.exec(f"docker tag {REGISTRY}/lab:1.0 {REGISTRY}/lab:1.1 && "
                f"docker push -q {REGISTRY}/lab:1.1")
    bob = Hub(url, "bob")
    bob.login(PASSWORDS["bob"])
    bob.api_token()
    deadline = time.monotonic() + 60
    while bob.server() is not None and time.monotonic() < deadline:
        time.sleep(1)
    options = re.findall(r'<option value="([^"]+)"( selected)?', bob.spawn_form())
    assert options == [(f"{REGISTRY}/lab:1.1", ""), (f"{REGISTRY}/lab:1.0", " selected")]
    bob.start(image=f"{REGISTRY}/lab:1.1")
    image = server.exec("docker inspect jupyter-bob --format '{{.Config.Image}}'").strip()
    assert image == f"{REGISTRY}/lab:1.1"
    bob.api("DELETE", "/hub/api/users/bob/server")
    assert server.exec("docker inspect labhub-hub-1 --format '{{.State.StartedAt}}'") \
        == hub_started


def test_hub_restart_keeps_labs_and_passwords(stack):
    server, url = stack["server"], stack["url"]
    server.exec("cd /opt/labhub && docker compose restart hub")
    wait_for_hub(url)
    alice = Hub(url, "alice")
    alice.login(PASSWORDS["alice"])
    assert alice.logged_in()
    alice.api_token()
    assert alice.server()["ready"]
    assert server.exec("docker inspect jupyter-alice --format '{{.State.Running}}'").strip() \
        == "true"
    contents = alice.lab("GET", "/api/contents/hello.txt")
    assert contents.status_code == 200 and contents.json()["content"] == "hello from alice\n"


def test_second_deploy_changes_nothing(stack):
    started = time.monotonic()
    again = labhost.run_pyinfra(stack["inventory"], "deploy.py").check()
    TIMINGS["no-change deploy"] = time.monotonic() - started
    logger.warning("timings: %s", TIMINGS)
    assert again.changed == 0, again.changed_operations


def test_changes_rebuild_and_recreate_only_what_changed(stack, tmp_path):
    """A hub setting recreates the hub alone (labs and their kernels keep running); a new lab
    image is built and pushed alone."""
    server, url = stack["server"], stack["url"]
    alice = Hub(url, "alice")
    alice.login(PASSWORDS["alice"])
    alice.api_token()
    kernel = alice.lab("POST", "/api/kernels", json={"name": "python3"}).json()["id"]
    channels = f"/user/alice/api/kernels/{kernel}/channels"
    kernel_execute(url, channels, alice.token, "answer = 6 * 7", 60)
    registry_started = server.exec("docker inspect labhub-registry-1 --format "
                                   "'{{.State.StartedAt}}'")
    hub_container = server.exec("docker inspect labhub-hub-1 --format '{{.Id}}'")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
                                      "LABEL org.example.lab-tools=1\n")

    run = labhost.run_pyinfra(stack["inventory"], "deploy.py", data={
        "min_password_length": 12,
        "lab_images": [{"name": "lab", "version": "1.0"},
                       {"name": "tools", "version": "0.1", "context": str(tools)}],
    }).check()
    changed = [name.split(" | ", 1)[1] for name in run.changed_operations]
    assert sorted(changed) == sorted([
        "Write the hub's settings.json",
        "Write compose.yaml",
        "Bring up the hub stack (docker compose up)",
        f"Upload the build context of {REGISTRY}/tools:0.1 ({tools})",
        f"Build {REGISTRY}/tools:0.1",
        f"Push {REGISTRY}/tools:0.1 to the registry",
    ]), changed

    assert server.exec("docker inspect labhub-hub-1 --format '{{.Id}}'") != hub_container
    assert server.exec("docker inspect labhub-registry-1 --format '{{.State.StartedAt}}'") \
        == registry_started
    assert "tools" in json.loads(server.exec(f"curl -fsS http://{REGISTRY}/v2/_catalog"))[
        "repositories"]
    # The same lab, through the new hub: the kernel started before still holds its variable,
    # and the password set at the first login still logs in.
    assert kernel_execute(url, channels, alice.token, "print(answer)", 60).strip() == "42"
    assert alice.lab("DELETE", f"/api/kernels/{kernel}").status_code == 204
    alice = Hub(url, "alice")
    alice.login(PASSWORDS["alice"])
    assert alice.logged_in()
    alice.api_token()
    assert alice.server()["ready"]
    assert alice.lab("GET", "/api/contents/hello.txt").status_code == 200


def test_an_engine_restart_keeps_labs_and_kernels_running(stack):
    server, url = stack["server"], stack["url"]
    alice = Hub(url, "alice")
    alice.login(PASSWORDS["alice"])
    alice.api_token()
    if not (alice.server() or {}).get("ready"):
        alice.start()
    started = server.exec("docker inspect jupyter-alice --format '{{.State.StartedAt}}'")
    kernel = alice.lab("POST", "/api/kernels", json={"name": "python3"}).json()["id"]
    server.exec("systemctl restart docker")
    wait_for_hub(url)
    # The same container, never stopped, and the kernel started before still answers.
    assert server.exec("docker inspect jupyter-alice --format '{{.State.StartedAt}}'") == started
    assert kernel_execute(url, f"/user/alice/api/kernels/{kernel}/channels", alice.token,
                          "print(6 * 7)", 60).strip() == "42"
    assert alice.lab("DELETE", f"/api/kernels/{kernel}").status_code == 204


def test_after_a_reboot_a_lab_is_the_first_to_touch_its_share(stack):
    """
    Last, as it reboots the server. A tmpfs stands in for CIFS in labhub's own fstab lines (only
    their type and source swapped); after the reboot nothing has touched the shares until a lab
    starts: the lab's bind mount triggers the share's automount, and the lab writes into the
    share as its user's uid.
    """
    server = stack["server"]
    server.stand_in_cifs([DATA_SHARE, SCRATCH_SHARE])
    server.reboot()
    url = f"http://{server.address}:8000"
    wait_for_hub(url)
    assert server.exec(f"findmnt --noheadings --output FSTYPE --mountpoint {SCRATCH_SHARE}") \
        == "autofs\n"

    alice = Hub(url, "alice")
    alice.login(PASSWORDS["alice"])
    alice.api_token()
    alice.start()
    written = alice.run("import os\n"
                        "open(os.path.expanduser('~/scratch/after-reboot'), 'w').write('x')\n"
                        "print(os.stat(os.path.expanduser('~/scratch/after-reboot')).st_uid)")
    uid = server.exec("id -u jupyter-alice").strip()
    assert written.split("\n")[0] == uid
    assert "tmpfs" in server.exec(f"findmnt --noheadings --output FSTYPE "
                                  f"--mountpoint {SCRATCH_SHARE}").split()
    assert server.exec(f"stat -c %u {SCRATCH_SHARE}/after-reboot").strip() == uid
    # The read-only share mounted read-only, for every user; scratch only for group leem.
    bob = Hub(url, "bob")
    bob.login(PASSWORDS["bob"])
    bob.api_token()
    bob.start()
    probe = ("import os\nfor share in ('data', 'scratch'):\n"
             "    print(share, os.path.isdir(os.path.expanduser('~/' + share)))")
    assert bob.run(probe).split("\n")[:2] == ["data True", "scratch False"]
    data = server.exec(f"findmnt --noheadings --output OPTIONS --types tmpfs "
                       f"--mountpoint {DATA_SHARE}")
    assert "ro" in data.strip().split(","), data
