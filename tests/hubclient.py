"""
A lab member's HTTP client of the hub, over HTTP or HTTPS: the login form, the REST API, the lab's
Jupyter Server through the hub's proxy, and kernels over a WebSocket (ws:// or wss://), with
requests and the standard library only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlparse

import requests


@contextmanager
def resolving(name: str, address: Callable[[], str]) -> Iterator[None]:
    """``name`` resolves to ``address()`` in this process, as a DNS record of the hub's name
    would (asked again at each connection: a lab server's address changes when it reboots)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real(address() if host == name else host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real


def wait_for_hub(url: str, timeout: float = 120, verify: bool | str = True) -> None:
    """Until the hub answers its health check again (after a restart or a reboot)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/hub/health", timeout=5, verify=verify).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    raise AssertionError(f"the hub at {url} did not answer within {timeout} s")


# --- A lab member's HTTP client ----------------------------------------------------------------


class Hub:
    """``verify``: the CA file that HTTPS must chain to (requests' ``verify``)."""

    def __init__(self, url: str, user: str, verify: bool | str = True):
        self.url = url
        self.user = user
        self.verify = verify
        # Given at each request: REQUESTS_CA_BUNDLE in the environment overrides a session's.
        self.session = requests.Session()
        self.token: str | None = None

    def login(self, password: str) -> requests.Response:
        self.session.get(f"{self.url}/hub/login", timeout=30, verify=self.verify)
        return self.session.post(
            f"{self.url}/hub/login",
            verify=self.verify,
            data={
                "username": self.user,
                "password": password,
                "_xsrf": self.session.cookies.get("_xsrf", path="/hub/"),
            },
            timeout=30,
        )

    def claim(self, link: str, password: str) -> requests.Response:
        """Choose the password on an invitation's page (its link, from the admin), as the
        invited user does; the page's answer when it offers no form."""
        page = self.session.get(link, timeout=30, verify=self.verify)
        if page.status_code != 200:
            return page
        query = parse_qs(urlparse(link).query)
        return self.session.post(
            f"{self.url}/hub/invite",
            verify=self.verify,
            data={
                "user": query["user"][0],
                "token": query["token"][0],
                "password": password,
                "_xsrf": self.session.cookies.get("_xsrf", path="/hub/"),
            },
            timeout=30,
        )

    def change_password(self, password: str) -> requests.Response:
        """FirstUse's change-password page, logged in."""
        self.session.get(f"{self.url}/hub/auth/change-password", timeout=30, verify=self.verify)
        return self.session.post(
            f"{self.url}/hub/auth/change-password",
            verify=self.verify,
            data={"password": password, "_xsrf": self.session.cookies.get("_xsrf", path="/hub/")},
            timeout=30,
        )

    def logged_in(self) -> bool:
        response = self.session.get(
            f"{self.url}/hub/home", timeout=30, allow_redirects=False, verify=self.verify
        )
        return response.status_code == 200

    def home_page(self) -> str:
        """The hub's home page, as the user sees it (where notices of the lab are)."""
        return self.session.get(f"{self.url}/hub/home", timeout=30, verify=self.verify).text

    def api_token(self) -> str:
        response = self.session.post(
            f"{self.url}/hub/api/users/{self.user}/tokens",
            verify=self.verify,
            json={"note": "labhub e2e", "expires_in": 3600},
            headers={"X-XSRFToken": self.session.cookies.get("_xsrf", path="/hub/")},
            timeout=30,
        )
        response.raise_for_status()
        self.token = response.json()["token"]
        return self.token

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(
            method,
            self.url + path,
            timeout=60,
            verify=self.verify,
            headers={"Authorization": f"token {self.token}"},
            **kwargs,
        )

    def spawn_progress(self, timeout: float = 240) -> list[dict]:
        """
        The events the spawn page shows of the user's spawn (its progress bar: the event stream
        it reads), from the first until the spawn is ready or failed. Read again while the hub
        says no spawn is pending yet (a spawn just asked for): 400, or 404 while JupyterHub 6 has
        no spawner for the server yet.
        """
        deadline = time.monotonic() + timeout
        url = f"{self.url}/hub/api/users/{self.user}/server/progress"
        headers = {"Authorization": f"token {self.token}"}
        while True:
            response = requests.get(
                url, stream=True, timeout=60, verify=self.verify, headers=headers
            )
            if response.status_code not in (400, 404) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        response.raise_for_status()
        events = []
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
                if events[-1].get("ready") or events[-1].get("failed"):
                    break
        response.close()
        return events

    def spawn_form(self) -> str:
        response = self.session.get(f"{self.url}/hub/spawn", timeout=60, verify=self.verify)
        response.raise_for_status()
        return response.text

    def start(self, image: str | None = None, timeout: float = 240) -> dict:
        response = self.api(
            "POST", f"/hub/api/users/{self.user}/server", json={"image": image} if image else {}
        )
        assert response.status_code in (201, 202), response.text
        return self.wait_ready(timeout)

    def server(self) -> dict | None:
        response = self.api("GET", f"/hub/api/users/{self.user}")
        response.raise_for_status()
        return response.json()["servers"].get("")

    def wait_ready(self, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        server = self.server()
        if not (server and server["ready"]):
            # As the spawn page waits: its event stream ends the moment the lab is ready.
            events = self.spawn_progress(timeout)
            if events and events[-1].get("failed"):
                raise AssertionError(f"{self.user}'s spawn failed: {events[-1]}")
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
            return kernel_execute(
                self.url,
                f"/user/{self.user}/api/kernels/{kernel_id}/channels",
                self.token,
                code,
                timeout,
                self.verify,
            )
        finally:
            self.lab("DELETE", f"/api/kernels/{kernel_id}")


def form_images(form: str) -> list[tuple[str, bool]]:
    """The images a spawn form offers, in its order, and whether each is preselected."""
    return [
        (value, bool(checked))
        for value, checked in re.findall(
            r'name="image"[^>]*value="([^"]+)"[^>]*?( checked)?>', form
        )
    ]


def kernel_execute(
    url: str, path: str, token: str, code: str, timeout: float, verify: bool | str = True
) -> str:
    """Jupyter's kernel protocol over a WebSocket (RFC 6455, text frames), with only the stdlib:
    wss:// when the hub's URL is https://, verified as ``verify`` says."""
    parsed = urlparse(url)
    secure = parsed.scheme == "https"
    port = parsed.port or (443 if secure else 80)
    sock = socket.create_connection((parsed.hostname, port), timeout=timeout)
    if secure:
        context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        if verify is False:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname=parsed.hostname)
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
        _send_text(
            sock,
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "e2e",
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "buffers": [],
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            ),
        )
        output, error = [], None
        reader = _FrameReader(sock, buffered)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(reader.next_text())
            kind = message["msg_type"]
            # The lab's server says so when the kernel died (it starts another): no reply comes.
            state = message["content"].get("execution_state") if kind == "status" else None
            if state in ("restarting", "dead"):
                raise AssertionError(f"the kernel died before it answered ({state})")
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if kind == "stream":
                output.append(message["content"]["text"])
            elif kind == "error":
                error = "\n".join(message["content"]["traceback"])
            elif state == "idle":
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
