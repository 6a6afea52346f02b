"""
A real Debian 13 lab server on this machine: a systemd container with sshd and its own Docker
engine, reached over SSH like any server. The end-to-end tests and the local demo share it.

The recipe (flags, quirks) is the one verified in ``shared/labhost.md``: no image can be pulled,
so the base image is debootstrapped here and cached by tag.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
PROJECT_ROOT = HERE.parent.parent
BASE_IMAGE = "labhub/debian-base:trixie"
LABHOST_IMAGE = "labhub/labhost:trixie-1"
DEBIAN_MIRROR = os.environ.get("LABHUB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
LOGIN_USER = "labadmin"
LABEL = "org.labhub.labhost"


class LabHostError(RuntimeError):
    pass


def _run(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kwargs)


def ensure_engine(timeout: float = 60) -> docker.DockerClient:
    """Use this machine's Docker engine, installing and starting it first when it is not running."""
    client = docker.from_env(version="auto") if _engine_answers() else None
    if client is not None:
        return client
    if shutil.which("dockerd") is None or shutil.which("debootstrap") is None:
        logger.info("installing docker.io and debootstrap")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        _run("apt-get", "update", "-qq", env=env)
        _run("apt-get", "install", "-y", "-qq", "docker.io", "debootstrap", env=env)
    if not _engine_answers():
        logger.info("starting dockerd")
        log = open("/var/log/labhub-dockerd.log", "ab")
        subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not _engine_answers():
        if time.monotonic() > deadline:
            raise LabHostError("dockerd did not answer; see /var/log/labhub-dockerd.log")
        time.sleep(0.5)
    return docker.from_env(version="auto")


def _engine_answers() -> bool:
    try:
        return docker.from_env(version="auto").ping()
    except Exception:
        return False


def _has_image(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_base_image(client: docker.DockerClient, tag: str = BASE_IMAGE) -> str:
    """A minimal Debian 13 image made with debootstrap, built once per machine."""
    if _has_image(client, tag):
        return tag
    logger.info("debootstrapping %s", tag)
    with tempfile.TemporaryDirectory(prefix="labhub-rootfs-") as root:
        _run("debootstrap", "--variant=minbase", "trixie", root, DEBIAN_MIRROR,
             stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        _run("docker", "import", "-", tag, stdin=tar.stdout, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise LabHostError("tar of the debootstrapped root failed")
    return tag


def build_image(client: docker.DockerClient, context: Path, tag: str, **buildargs: str) -> str:
    """Build ``context`` as ``tag`` unless an image with that tag exists (cache by tag)."""
    if not _has_image(client, tag):
        logger.info("building %s", tag)
        try:
            client.images.build(path=str(context), tag=tag, buildargs=buildargs, rm=True,
                                network_mode="host")
        except docker.errors.BuildError as e:
            log = "".join(chunk.get("stream", "") for chunk in e.build_log)
            raise LabHostError(f"building {tag} failed:\n{log[-4000:]}") from e
    return tag


def ensure_labhost_image(client: docker.DockerClient) -> str:
    base = ensure_base_image(client)
    return build_image(client, HERE, LABHOST_IMAGE, BASE_IMAGE=base)


@dataclass
class LabServer:
    """One running lab server container and the SSH login pyinfra uses."""

    client: docker.DockerClient
    container_id: str
    volume: str
    address: str
    key_path: Path
    workdir: Path
    login_user: str = LOGIN_USER
    _closed: bool = field(default=False, repr=False)

    @property
    def container(self):
        return self.client.containers.get(self.container_id)

    def exec(self, command: str, check: bool = True, user: str = "root") -> str:
        """Run a shell command on the server as root (outside SSH) and return its stdout."""
        result = self.container.exec_run(["sh", "-c", command], user=user, demux=True)
        out = (result.output[0] or b"").decode()
        err = (result.output[1] or b"").decode()
        if check and result.exit_code != 0:
            raise LabHostError(f"{command!r} exited {result.exit_code}: {err or out}")
        return out

    def load_image(self, tag: str) -> None:
        """Move an image from this machine's engine into the server's own engine."""
        save = subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE)
        _run("docker", "exec", "-i", self.container_id, "docker", "load",
             stdin=save.stdout, stdout=subprocess.DEVNULL)
        if save.wait() != 0:
            raise LabHostError(f"docker save {tag} failed")

    def inventory_file(self, data: dict | None = None, path: Path | None = None) -> Path:
        """Write a pyinfra inventory for this server (SSH with the generated key, sudo)."""
        host_data = {
            "ssh_user": self.login_user,
            "ssh_key": str(self.key_path),
            "ssh_known_hosts_file": "/dev/null",
            "ssh_strict_host_key_checking": "no",
            "_sudo": True,
            **(data or {}),
        }
        path = path or self.workdir / "inventory.py"
        path.write_text(
            "# Generated by labhub.labhost for a throwaway lab server.\n"
            f"lab_servers = [({self.address!r}, {host_data!r})]\n"
        )
        return path

    def remove(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        try:
            self.client.volumes.get(self.volume).remove(force=True)
        except docker.errors.NotFound:
            pass
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_lab_server(name: str | None = None, workdir: Path | None = None,
                     boot_timeout: float = 90) -> LabServer:
    """Start a fresh lab server and wait until systemd is running and SSH accepts the key."""
    client = ensure_engine()
    image = ensure_labhost_image(client)
    name = name or f"labhost-{uuid.uuid4().hex[:8]}"
    volume = f"{name}-docker"
    workdir = Path(workdir or tempfile.mkdtemp(prefix=f"{name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    key_path = workdir / "id_ed25519"
    if not key_path.exists():
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key_path))
    container = client.containers.run(
        image,
        name=name,
        hostname=name,
        detach=True,
        cap_add=["ALL"],
        cap_drop=["SYS_RESOURCE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        cgroupns="host",
        tmpfs={"/run": "", "/run/lock": ""},
        volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
                 volume: {"bind": "/var/lib/docker", "mode": "rw"}},
        labels={LABEL: "1"},
    )
    container.reload()
    address = container.attrs["NetworkSettings"]["IPAddress"]
    server = LabServer(client, container.id, volume, address, key_path, workdir)
    try:
        _wait_booted(server, boot_timeout)
        pubkey = (workdir / "id_ed25519.pub").read_text().strip()
        home = f"/home/{LOGIN_USER}"
        server.exec(
            f"install -d -m 0700 -o {LOGIN_USER} -g {LOGIN_USER} {home}/.ssh && "
            f"echo '{pubkey}' > {home}/.ssh/authorized_keys && "
            f"chown {LOGIN_USER}: {home}/.ssh/authorized_keys && chmod 0600 {home}/.ssh/authorized_keys"
        )
        _wait_ssh(address, boot_timeout)
    except BaseException:
        server.remove()
        raise
    return server


def _wait_booted(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = server.exec("systemctl is-system-running || true").strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise LabHostError(f"lab server did not boot (systemd state {state!r})")


def _wait_ssh(address: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, 22), timeout=2) as sock:
                if sock.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise LabHostError(f"no SSH on {address}:22")


def remove_all_lab_servers() -> int:
    """Remove every lab server container this harness started (and their engine volumes)."""
    client = ensure_engine()
    count = 0
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        volumes = [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"]
        container.remove(force=True)
        for volume in volumes:
            try:
                client.volumes.get(volume).remove(force=True)
            except docker.errors.NotFound:
                pass
        count += 1
    return count


@dataclass
class PyinfraRun:
    """One ``pyinfra`` CLI run: exit code, output and the JSON results pyinfra printed."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict:
        import json

        start = self.stdout.find("{")
        if start < 0:
            raise LabHostError(f"pyinfra printed no JSON:\n{self.stdout}\n{self.stderr[-3000:]}")
        return json.loads(self.stdout[start:])

    @property
    def changed(self) -> int:
        """How many operations changed something (``results.totals.success`` of ``--json``)."""
        return self.result["results"]["totals"]["success"]

    @property
    def changed_operations(self) -> list[str]:
        return [op["name"] for op in self.result["results"]["operations"] if op["success"]]

    @property
    def planned_changes(self) -> list[str]:
        """Names of the operations a ``--dry`` run would (or might) change."""
        return [op["name"] for op in self.result["plan"]
                if op["hosts_with_change"] or op["hosts_with_conditional_change"]]

    def check(self) -> PyinfraRun:
        if self.returncode != 0:
            raise LabHostError(
                f"{' '.join(self.argv)} exited {self.returncode}:\n"
                f"{self.stderr[-6000:]}\n{self.stdout[-2000:]}"
            )
        return self


def run_pyinfra(inventory: Path, *deploy: str, data: dict | None = None, dry: bool = False,
                extra: tuple[str, ...] = (), cwd: Path | None = None,
                timeout: float = 1800) -> PyinfraRun:
    """Run the pyinfra CLI of this environment (as an admin would) with ``--json`` results."""
    import json
    import sys

    argv = [str(Path(sys.executable).with_name("pyinfra")), str(inventory), *deploy, "--json"]
    argv += ["--dry"] if dry else ["-y"]
    for key, value in (data or {}).items():
        argv += ["--data", f"{key}={json.dumps(value)}"]
    argv += list(extra)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          cwd=str(cwd or PROJECT_ROOT))
    return PyinfraRun(argv, proc.returncode, proc.stdout, proc.stderr)


def find_lab_server(name: str, workdir: Path) -> LabServer | None:
    """The running lab server called ``name`` (started earlier with this workdir), if any."""
    client = ensure_engine()
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        return None
    if container.status != "running" or not (workdir / "id_ed25519").exists():
        container.remove(force=True)
        return None
    address = container.attrs["NetworkSettings"]["IPAddress"]
    return LabServer(client, container.id, f"{name}-docker", address, workdir / "id_ed25519",
                     workdir)


# --- Test stand-ins for the official images the stack starts from ------------------------------
#
# Nothing can be pulled here, so the images the deploy builds FROM (and the registry it runs) are
# made on this machine from the debootstrapped base, with the shape the production Dockerfiles rely
# on, and moved into the lab server's engine before a deploy. Each tag carries a hash of its build
# context, so editing a stand-in's Dockerfile rebuilds it.

IMAGES_DIR = HERE / "images"
CA_BUNDLE = Path(os.environ.get("LABHUB_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
# The versions the production defaults pin (group_data/all.py): the stand-ins install the same.
JUPYTERHUB_VERSION = "5.2.1"
JUPYTERLAB_VERSION = "4.3.4"
LAB_BASE_TAG = "2025-01-20"


@dataclass(frozen=True)
class StandIn:
    """One stand-in image: its folder under ``images/``, repository, tag, build args, setting."""

    folder: str
    repository: str
    version: str
    setting: str
    buildargs: tuple[tuple[str, str], ...] = ()

    def tag(self) -> str:
        import hashlib

        digest = hashlib.sha256(repr(self.buildargs).encode())
        for path in sorted((IMAGES_DIR / self.folder).rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(IMAGES_DIR).as_posix().encode())
                digest.update(path.read_bytes())
        return f"{self.repository}:{self.version}-{digest.hexdigest()[:8]}"


STAND_INS = (
    StandIn("registry", "labhub-test/registry", "2.8", "registry_image"),
    StandIn("jupyterhub", "labhub-test/jupyterhub", JUPYTERHUB_VERSION, "hub_base_image",
            (("JUPYTERHUB_VERSION", JUPYTERHUB_VERSION),)),
    StandIn("lab-base", "labhub-test/base-notebook", LAB_BASE_TAG, "lab_base_image",
            (("JUPYTERHUB_VERSION", JUPYTERHUB_VERSION),
             ("JUPYTERLAB_VERSION", JUPYTERLAB_VERSION))),
)


def prepare_images(client: docker.DockerClient) -> dict[str, str]:
    """
    Build the stand-ins of the official registry, JupyterHub and Jupyter base images (once per
    machine, cached by tag) and return the setting overrides that point a deploy at them, with
    this machine's CA bundle for the deploy's own image builds (pip needs it here).
    """
    base = ensure_base_image(client)
    overrides = {"build_ca_bundle": str(CA_BUNDLE)}
    for image in STAND_INS:
        tag = image.tag()
        if not _has_image(client, tag):
            # pip in the builds trusts this machine's CA bundle, copied into the context.
            with tempfile.TemporaryDirectory(prefix="labhub-image-") as context:
                shutil.copytree(IMAGES_DIR / image.folder, context, dirs_exist_ok=True)
                shutil.copy(CA_BUNDLE, Path(context) / "ca-bundle.crt")
                build_image(client, Path(context), tag, BASE_IMAGE=base, **dict(image.buildargs))
        overrides[image.setting] = tag
    return overrides


def ensure_server_engine(server: LabServer) -> None:
    """
    The lab server's own Docker engine, installed by the project's docker task (Debian's packages)
    when it is missing: images can only be loaded into a running engine. In production the engine
    pulls the official images itself.
    """
    if server.exec("command -v docker || true").strip():
        return
    logger.info("installing the lab server's Docker engine (tasks/docker.py, distro packages)")
    inventory = server.inventory_file({"docker_source": "distro"},
                                      path=server.workdir / "engine-inventory.py")
    run_pyinfra(inventory, "tasks/docker.py").check()


def load_stack_images(server: LabServer) -> dict[str, str]:
    """
    Move the stand-in images into the lab server's engine (installing the engine first when
    needed); returns the same setting overrides as ``prepare_images``.
    """
    overrides = prepare_images(ensure_engine())
    ensure_server_engine(server)
    present = set(server.exec("docker images --format '{{.Repository}}:{{.Tag}}'").split())
    for tag in (overrides[image.setting] for image in STAND_INS):
        if tag not in present:
            logger.info("loading %s into %s", tag, server.address)
            server.load_image(tag)
    return overrides
