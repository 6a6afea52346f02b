"""
A real registry server for tests and the benchmark: Debian's ``docker-registry`` (the distribution
2.8 server the official ``registry:2`` image runs) on a free loopback port, with its own storage
folder and configuration (deletes enabled or disabled, read-only maintenance mode). Images to push
into it are made by ``registry_images``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests
from registry_images import (  # noqa: F401 (the names tests import from here)
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    Image,
    Index,
    make_image,
    make_index,
    make_layer,
    sha256,
)

BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RegistryAPI:
    """Pushing real images to, and reading back from, a registry at ``address`` over HTTP."""

    def __init__(self, address: str):
        self._address = address
        self.session = requests.Session()

    @property
    def address(self) -> str:
        return self._address

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    # --- pushing through the API ----------------------------------------------------------------

    def push_blob(self, repo: str, blob: Blob) -> None:
        head = self.session.head(f"{self.url}/v2/{repo}/blobs/{blob.digest}")
        if head.status_code == 200:
            return
        start = self.session.post(f"{self.url}/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        url = location if location.startswith("http") else self.url + location
        put = self.session.put(
            f"{url}{sep}digest={blob.digest}",
            data=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert put.status_code == 201, put.text

    def push_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        response = self.session.put(
            f"{self.url}/v2/{repo}/manifests/{reference}",
            data=body,
            headers={"Content-Type": media_type},
        )
        assert response.status_code == 201, response.text
        return response.headers["Docker-Content-Digest"]

    def push_image(self, repo: str, tag: str, image: Image) -> str:
        for blob in image.blobs:
            self.push_blob(repo, blob)
        digest = self.push_manifest(repo, tag, image.manifest, image.media_type)
        assert digest == image.digest
        return digest

    def push_index(self, repo: str, tag: str, index: Index) -> str:
        for image in index.images:
            for blob in image.blobs:
                self.push_blob(repo, blob)
            self.push_manifest(repo, image.digest, image.manifest, image.media_type)
        digest = self.push_manifest(repo, tag, index.manifest, OCI_INDEX)
        assert digest == index.digest
        return digest

    def tag(self, repo: str, tag: str, digest: str) -> str:
        """Point ``tag`` at an existing manifest (re-put its bytes under the tag)."""
        got = self.session.get(
            f"{self.url}/v2/{repo}/manifests/{digest}",
            headers={"Accept": ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST))},
        )
        assert got.status_code == 200, got.text
        return self.push_manifest(repo, tag, got.content, got.headers["Content-Type"])

    # --- reading back ---------------------------------------------------------------------------

    def catalog(self) -> list[str]:
        return requests.get(f"{self.url}/v2/_catalog?n=1000").json()["repositories"] or []

    def tags(self, repo: str) -> list[str]:
        response = requests.get(f"{self.url}/v2/{repo}/tags/list")
        if response.status_code == 404:
            return []
        return sorted(response.json().get("tags") or [])

    def skopeo_pull(self, ref: str, all_platforms: bool = False) -> subprocess.CompletedProcess:
        """Pull an image (every blob) with skopeo into a throwaway folder; the result to check."""
        with tempfile.TemporaryDirectory(prefix="labhub-pull-") as dest:
            argv = ["skopeo", "copy", "--src-tls-verify=false", "--retry-times", "0"]
            if all_platforms:
                argv.append("--all")
            argv += [f"docker://{self.address}/{ref}", f"oci:{dest}/image:x"]
            return subprocess.run(
                argv, capture_output=True, text=True, env={**os.environ, "HOME": dest}
            )


class LocalRegistry(RegistryAPI):
    """``docker-registry serve`` on 127.0.0.1:<free port> with a temporary storage folder."""

    def __init__(
        self,
        root: Path | None = None,
        delete: bool = True,
        read_only: bool = False,
        log_level: str = "info",
    ):
        self.root = Path(root or tempfile.mkdtemp(prefix="labhub-registry-"))
        self.storage = self.root / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config = self.root / "config.yml"
        self.log_path = self.root / "registry.log"
        self.port = free_port()
        self.delete_enabled = delete
        self.read_only = read_only
        self.log_level = log_level
        self.process: subprocess.Popen | None = None
        super().__init__(f"127.0.0.1:{self.port}")
        self.write_config()

    def write_config(self) -> None:
        self.config.write_text(f"""\
version: 0.1
log:
  level: {self.log_level}
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {self.storage}
  delete:
    enabled: {str(self.delete_enabled).lower()}
  maintenance:
    readonly:
      enabled: {str(self.read_only).lower()}
  cache:
    blobdescriptor: inmemory
http:
  addr: {self.address}
""")

    def start(self) -> LocalRegistry:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [BINARY, "serve", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited:\n{self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/v2/", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("docker-registry did not answer")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, **changes) -> None:
        self.stop()
        for key, value in changes.items():
            setattr(self, key, value)
        self.write_config()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def garbage_collect(self) -> str:
        """The real collector, registry stopped (as the task does on the host), then restarted."""
        running = self.process is not None
        self.stop()
        result = subprocess.run(
            [BINARY, "garbage-collect", str(self.config)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"garbage-collect failed: {result.stderr}{result.stdout}")
        if running:
            self.start()
        return result.stdout

    # --- storage on disk ------------------------------------------------------------------------

    def disk_bytes(self) -> int:
        """Apparent bytes of every file under the storage folder (``du -sb`` without folders)."""
        return sum(p.stat().st_size for p in self.storage.rglob("*") if p.is_file())

    def files(self) -> dict[str, int]:
        return {
            str(p.relative_to(self.storage)): p.stat().st_size
            for p in self.storage.rglob("*")
            if p.is_file()
        }

    def blob_files(self) -> set[str]:
        blobs = self.storage / "docker/registry/v2/blobs"
        return {p.parent.name for p in blobs.rglob("data")} if blobs.exists() else set()

    def request_count(self) -> int:
        """Requests the registry served so far (its access log lines)."""
        if not self.log_path.exists():
            return 0
        return sum(
            1
            for line in self.log_path.read_text(errors="replace").splitlines()
            if '"GET ' in line
            or '"HEAD ' in line
            or '"DELETE ' in line
            or '"PUT ' in line
            or '"POST ' in line
            or '"PATCH ' in line
        )
