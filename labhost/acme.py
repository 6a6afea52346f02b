"""
A real ACME CA on this machine for the HTTPS tests: Debian's pebble (an RFC 8555 test CA) and
pebble-challtestsrv (a DNS server answering every name with one lab server's address), listening
on this machine's Docker bridge, where lab servers and the containers in them reach it.

pebble validates for real (HTTP-01 or TLS-ALPN-01 against the lab server's ports 80 and 443) and
signs with a root made at each start, which ``root()`` fetches for clients to trust.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from labhost import probes
from labhost.server import LabHostError, ensure_engine

ACME_PORT = 14000
MANAGEMENT_PORT = 15000
DNS_PORT = 8053
DNS_MANAGEMENT_PORT = 8055


@dataclass
class Pebble:
    address: str
    workdir: Path
    processes: list[subprocess.Popen]

    @property
    def directory(self) -> str:
        """The ACME directory URL, as the proxy is configured with it (acme_directory)."""
        return f"https://{self.address}:{ACME_PORT}/dir"

    @property
    def listener_ca(self) -> Path:
        """The certificate of pebble's own HTTPS listener (acme_ca_root)."""
        return self.workdir / "listener.pem"

    def root(self) -> str:
        """The root certificate that signs what pebble issues (a new one at each start)."""
        context = ssl.create_default_context(cafile=str(self.listener_ca))
        url = f"https://{self.address}:{MANAGEMENT_PORT}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return response.read().decode()

    def resolve_to(self, address: str) -> None:
        """Every name resolves to ``address`` for pebble's validation from now on."""
        request = urllib.request.Request(
            f"http://{self.address}:{DNS_MANAGEMENT_PORT}/set-default-ipv4",
            data=json.dumps({"ip": address}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def bridge_address() -> str:
    """This machine's address on Docker's default bridge, where lab servers reach pebble."""
    network = ensure_engine().networks.get("bridge")
    try:
        return probes.bridge_gateway(network.attrs, probes.read_interface_ipv4)
    except probes.ProbeError as e:
        raise LabHostError(str(e)) from None


def _wait_port(address: str, port: int, process: subprocess.Popen, log: Path) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabHostError(f"{process.args[0]} exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise LabHostError(f"{process.args[0]} did not listen on {address}:{port}")


@contextmanager
def running_pebble(validates: str) -> Iterator[Pebble]:
    """pebble and its DNS server, every name resolving to ``validates`` (a lab server's
    address), stopped afterwards."""
    for command in ("pebble", "pebble-challtestsrv", "openssl"):
        if shutil.which(command) is None:
            raise LabHostError(f"{command} is not installed (./dev installs Debian's pebble)")
    address = bridge_address()
    workdir = Path(tempfile.mkdtemp(prefix="labhub-pebble-"))
    # pebble's own listener needs a certificate; the package ships none.
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-keyout",
            str(workdir / "listener.key"),
            "-out",
            str(workdir / "listener.pem"),
            "-subj",
            "/CN=pebble",
            "-addext",
            f"subjectAltName=IP:{address}",
        ],
        check=True,
        capture_output=True,
    )
    config = {
        "pebble": {
            "listenAddress": f"{address}:{ACME_PORT}",
            "managementListenAddress": f"{address}:{MANAGEMENT_PORT}",
            "certificate": str(workdir / "listener.pem"),
            "privateKey": str(workdir / "listener.key"),
            "httpPort": 80,
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (workdir / "pebble.json").write_text(json.dumps(config))
    processes: list[subprocess.Popen] = []
    pebble = Pebble(address, workdir, processes)
    try:
        dns_log = workdir / "challtestsrv.log"
        processes.append(
            subprocess.Popen(
                [
                    "pebble-challtestsrv",
                    "-defaultIPv4",
                    validates,
                    "-defaultIPv6",
                    "",
                    "-dns01",
                    f"{address}:{DNS_PORT}",
                    "-http01",
                    "",
                    "-https01",
                    "",
                    "-tlsalpn01",
                    "",
                    "-management",
                    f"{address}:{DNS_MANAGEMENT_PORT}",
                ],
                stdout=dns_log.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        log = workdir / "pebble.log"
        # Validation at once, not after pebble's random delay of up to 15 s.
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1"}
        processes.append(
            subprocess.Popen(
                [
                    "pebble",
                    "-config",
                    str(workdir / "pebble.json"),
                    "-dnsserver",
                    f"{address}:{DNS_PORT}",
                ],
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        _wait_port(address, ACME_PORT, processes[-1], log)
        yield pebble
    finally:
        pebble.stop()
