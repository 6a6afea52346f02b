"""
A real Debian 13 lab server on this machine: a systemd container with sshd and its own Docker
engine, reached over SSH like any server. The end-to-end tests and the local demo share it.

No image can be pulled here, so the base image is debootstrapped on this machine and every image
is cached by tag. The container is started with the flags a systemd container needs on this
machine (no ``--privileged``: the machine lacks CAP_SYS_RESOURCE), with ``/dev/autofs`` so that
fstab's ``x-systemd.automount`` lines work as on a real host (where this machine's kernel has
autofs: ``HAS_AUTOFS``), and its image makes ``/`` shared-propagation at boot as systemd does on
a real host.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from labhost import probes
from labhost.aptcache import apt_proxy

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTEXTS = Path(__file__).resolve().parent / "contexts"
BASE_IMAGE = "labhub/debian-base:trixie"
LABHOST_REPOSITORY = "labhub/labhost"
DEBIAN_MIRROR = os.environ.get("LABHUB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
LOGIN_USER = "labadmin"
# Everything the harness creates on this machine's engine carries LABEL; it removes only what
# does. A lab server also carries the name it was asked for (NAME_LABEL).
LABEL = "org.labhub.labhost"
NAME_LABEL = "org.labhub.labhost.name"


class LabHostError(RuntimeError):
    pass


def _run(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kwargs)


@contextmanager
def machine_lock(what: str = "setup") -> Iterator[None]:
    """One test process or thread at a time sets up ``what`` of the machine's shared things (the
    engine, an image built once per machine): the suite runs its modules in parallel processes,
    and images that do not build on each other are built at once, each under its own lock."""
    name = hashlib.sha256(what.encode()).hexdigest()[:16]
    with open(os.path.join(tempfile.gettempdir(), f"labhost-{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_engine(timeout: float = 60) -> docker.DockerClient:
    """Use this machine's Docker engine, installing and starting it first when it is not running."""
    if _engine_answers():
        return _client()
    with machine_lock():
        return _start_engine(timeout)


def _start_engine(timeout: float) -> docker.DockerClient:
    if _engine_answers():
        return _client()
    systemd = probes.systemd_running()
    problem = probes.engine_start_problem(root=os.geteuid() == 0, systemd=systemd)
    if problem:
        raise LabHostError(problem)
    packages = [package for package, command in _COMMANDS.items() if shutil.which(command) is None]
    if packages:
        logger.info("installing %s", " and ".join(packages))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        _run("apt-get", "update", "-qq", env=env)
        _run("apt-get", "install", "-y", "-qq", *packages, env=env)
    if systemd:
        # An engine systemd knows of (Docker's packages or the distribution's) is started as
        # its owner set it up, with its own daemon.json.
        logger.info("starting docker.service")
        _run("systemctl", "start", "docker")
    else:
        logger.info("starting dockerd")
        log = open("/var/log/labhub-dockerd.log", "ab")
        subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not _engine_answers():
        if time.monotonic() > deadline:
            raise LabHostError("dockerd did not answer; see /var/log/labhub-dockerd.log")
        time.sleep(0.5)
    return _client()


# The command each Debian package the harness may install provides.
_COMMANDS = {"docker.io": "dockerd", "debootstrap": "debootstrap"}


def _client() -> docker.DockerClient:
    # Removing a lab server (its systemd, engine and containers) can take minutes on a busy
    # machine: the SDK's default of 60 s turns that into a failed teardown.
    return docker.from_env(version="auto", timeout=600)


def _engine_answers() -> bool:
    try:
        return docker.from_env(version="auto").ping()
    except Exception:
        return False


def has_image(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_base_image(client: docker.DockerClient, tag: str = BASE_IMAGE) -> str:
    """A minimal Debian 13 image made with debootstrap, built once per machine."""
    with machine_lock(tag):
        return _debootstrap_image(tag) if not has_image(client, tag) else tag


def _debootstrap_image(tag: str) -> str:
    logger.info("debootstrapping %s (about 30 s)", tag)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="labhub-rootfs-") as root:
        _run(
            "debootstrap",
            "--variant=minbase",
            "trixie",
            root,
            DEBIAN_MIRROR,
            stdout=subprocess.DEVNULL,
            env=dict(os.environ, http_proxy=apt_proxy()),
        )
        # The packages debootstrap fetched and the mirror's lists (some 90 MB) stay out, as the
        # official Debian images leave them: every build updates the lists first, and every image
        # on the base is that much less to save, load and push.
        for leftover in (
            *Path(root, "var/cache/apt/archives").glob("*.deb"),
            *Path(root, "var/lib/apt/lists").glob("*_*"),
        ):
            leftover.unlink()
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        _run(
            "docker",
            "import",
            "--change",
            f"LABEL {LABEL}=base",
            "-",
            tag,
            stdin=tar.stdout,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise LabHostError("tar of the debootstrapped root failed")
    logger.info("made %s in %.0f s", tag, time.monotonic() - started)
    return tag


def context_tag(
    repository: str, version: str, context: Path, buildargs: tuple[tuple[str, str], ...] = ()
) -> str:
    """
    ``repository:version-<hash>``, the hash of the build context's files and build args: images
    are cached by tag, so an edited context must get a new one.
    """
    digest = hashlib.sha256(repr(buildargs).encode())
    for path in sorted(context.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(context).as_posix().encode())
            digest.update(path.read_bytes())
    return f"{repository}:{version}-{digest.hexdigest()[:8]}"


def build_image(client: docker.DockerClient, context: Path, tag: str, **buildargs: str) -> str:
    """Build ``context`` as ``tag`` unless an image with that tag exists (cache by tag)."""
    with machine_lock(tag):
        return _build_image(client, context, tag, buildargs) if not has_image(client, tag) else tag


def _build_image(
    client: docker.DockerClient, context: Path, tag: str, buildargs: dict[str, str]
) -> str:
    logger.info("building %s", tag)
    started = time.monotonic()
    try:
        client.images.build(
            path=str(context),
            tag=tag,
            # Debian's packages through this machine's cache (labhost.aptcache): fetched once.
            buildargs={**buildargs, "http_proxy": apt_proxy()},
            rm=True,
            network_mode="host",
            labels={LABEL: "image"},
        )
    except docker.errors.BuildError as e:
        log = "".join(chunk.get("stream", "") for chunk in e.build_log)
        raise LabHostError(f"building {tag} failed:\n{log[-4000:]}") from e
    logger.info("built %s in %.0f s", tag, time.monotonic() - started)
    return tag


def build_on_base(client: docker.DockerClient, repository: str, folder: str) -> str:
    """An image of ``contexts/<folder>`` built FROM the debootstrapped base, once per machine
    (cached by a tag that hashes the context)."""
    base = ensure_base_image(client)
    context = CONTEXTS / folder
    tag = context_tag(repository, "trixie", context, (("BASE_IMAGE", base),))
    return build_image(client, context, tag, BASE_IMAGE=base)


def ensure_labhost_image(client: docker.DockerClient) -> str:
    return build_on_base(client, LABHOST_REPOSITORY, "labhost")


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
        # docker's CLI, not the SDK's exec_run: the SDK's reading of a large output's frames
        # loses its place with this machine's engine ("116 is not a valid stream").
        result = subprocess.run(
            ["docker", "exec", "--user", user, self.container_id, "sh", "-c", command],
            capture_output=True,
        )
        out, err = result.stdout.decode(), result.stderr.decode()
        if check and result.returncode != 0:
            raise LabHostError(f"{command!r} exited {result.returncode}: {err or out}")
        return out

    def load_images(self, *tags: str) -> None:
        """Move the images the server's own engine lacks from this machine's engine into it, in
        one archive: the layers they share (the debootstrapped base, the python layer) are sent
        once."""
        present = set(self.exec("docker images --format '{{.Repository}}:{{.Tag}}'").split())
        tags = tuple(tag for tag in tags if tag not in present)
        if not tags:
            return
        logger.info("loading %s into %s", ", ".join(tags), self.address)
        save = subprocess.Popen(["docker", "save", *tags], stdout=subprocess.PIPE)
        _run(
            "docker",
            "exec",
            "-i",
            self.container_id,
            "docker",
            "load",
            stdin=save.stdout,
            stdout=subprocess.DEVNULL,
        )
        if save.wait() != 0:
            raise LabHostError(f"docker save {' '.join(tags)} failed")

    def login_data(self) -> dict:
        """The host data pyinfra logs in to this server with (SSH with the generated key, sudo)."""
        return {
            "ssh_user": self.login_user,
            "ssh_key": str(self.key_path),
            "ssh_known_hosts_file": "/dev/null",
            "ssh_strict_host_key_checking": "no",
            "_sudo": True,
        }

    def inventory_file(self, data: dict | None = None, path: Path | None = None) -> Path:
        """Write a pyinfra inventory for this server alone."""
        return write_inventory(path or self.workdir / "inventory.py", [(self, data or {})])

    def reboot(self, timeout: float = 120) -> None:
        """
        Restart the server as a host reboots: systemd shuts down (containers of its engine
        stop), boots again, and the server is back when systemd runs and SSH answers. Its address
        on this machine's bridge may change: ``address`` is read again, and inventories written
        before must be written again.
        """
        # systemd stops the nested engine and its containers first: give it time before a kill.
        self.container.restart(timeout=60)
        _wait_booted(self, timeout)
        container = self.container
        container.reload()
        self.address = probes.container_address(container.attrs)
        _wait_ssh(self.address, timeout)

    def testinfra(self, sudo: bool):
        """pytest-testinfra's view of the server, over SSH as the login user, with or without
        sudo (without it, each command is a fresh login)."""
        import testinfra

        return testinfra.get_host(
            f"ssh://{self.login_user}@{self.address}",
            ssh_identity_file=str(self.key_path),
            ssh_extra_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            "-o LogLevel=ERROR",
            sudo=sudo,
        )

    def automounts(self, action: str, mountpoints: list[str]) -> None:
        """``systemctl stop`` or ``start`` of these mount points' automounts. A lab server on a
        kernel without autofs has none: nothing to do."""
        if HAS_AUTOFS:
            units = " ".join(
                f"$(systemd-escape --path --suffix=automount {shlex.quote(path)})"
                for path in mountpoints
            )
            self.exec(f"systemctl {action} {units}")

    def stand_in_cifs(self, mountpoints: list[str]) -> None:
        """
        A tmpfs stands in for CIFS (which this machine's kernel cannot mount) at these shares'
        mount points: labhub's fstab line of each keeps everything but its type and source, and
        ``mount.tmpfs`` (beside this module) takes CIFS's options. The automounts are started
        again with the new lines; a redeploy writes the CIFS lines back.
        """
        _run(
            "docker",
            "exec",
            "-i",
            self.container_id,
            "install",
            "-m",
            "0755",
            "/dev/stdin",
            "/sbin/mount.tmpfs",
            input=(Path(__file__).with_name("mount.tmpfs")).read_bytes(),
        )
        for mountpoint in mountpoints:
            path = shlex.quote(mountpoint)
            self.exec(
                f'awk -v m={path} \'$2 == m && $3 == "cifs" {{ $1 = "tmpfs"; $3 = "tmpfs" }} '
                "{ print }' /etc/fstab > /etc/fstab.new && mv /etc/fstab.new /etc/fstab && "
                f"systemctl stop $(systemd-escape --path --suffix=automount {path}) "
                f"$(systemd-escape --path --suffix=mount {path})"
            )
        self.exec("systemctl daemon-reload && systemctl restart remote-fs.target")

    def share_server(self, mountpoint: str, answers: bool, hangs: int = 10) -> None:
        """
        The server of a share stood in for by ``stand_in_cifs`` stops answering (``answers``
        False: what enters the share waits ``hangs`` seconds for its mount, which then fails) or
        answers again: once no mount of it is under way, the share mounts on first access; on a
        kernel without autofs nothing mounts on access, and it is mounted here, as the
        automount would.
        """
        path = shlex.quote(mountpoint)
        mark = f"/run/labhost/down/$(systemd-escape --path {path})"
        unit = f"$(systemd-escape --path --suffix=mount {path})"
        if not answers:
            self.exec(
                f"systemctl stop {unit} && mkdir -p /run/labhost/down && echo {hangs} > {mark}"
            )
            return
        self.exec(
            f"rm -f {mark} && while systemctl list-jobs --no-legend | grep -q {unit}; "
            "do sleep 1; done"
        )
        if not HAS_AUTOFS:
            self.exec(f"systemctl start {unit}")

    def stand_in_nfs(self, mountpoints: list[str], export: str, shared_at: str) -> None:
        """
        A folder this server shares with another lab server stands in for NFS (which this
        machine's kernel can neither serve nor mount) at these mount points: labhub's NFS fstab
        line of each, from ``server:<export>/...``, becomes a bind of ``<shared_at>/...``, the
        same folder of the engine volume the exporting server has at ``export`` (see
        ``start_lab_server``'s ``volumes``), keeping every option. The automounts are started
        again with the new lines and the homes mounted; a redeploy writes the NFS lines back.
        """
        program = (
            '($3 == "nfs" || $3 == "nfs4") && ($2 in m) { i = index($1, ":/"); '
            "path = substr($1, i + 1); "
            'if (i && index(path, e "/") == 1) { '
            '$1 = s substr(path, length(e) + 1); $3 = "none"; $4 = "bind," $4 } } { print }'
        )
        marks = "".join(f"m[{json.dumps(m)}]; " for m in mountpoints)
        self.exec(
            f"awk -v e={shlex.quote(export)} -v s={shlex.quote(shared_at)} "
            f"{shlex.quote('BEGIN { ' + marks + '} ' + program)} /etc/fstab > /etc/fstab.new && "
            "mv /etc/fstab.new /etc/fstab"
        )
        mounts = " ".join(
            f"$(systemd-escape --path --suffix=mount {shlex.quote(path)})" for path in mountpoints
        )
        self.automounts("stop", mountpoints)
        self.exec(f"systemctl stop {mounts}")
        # Mounted now, as labhub's deploy mounts them: also where automounts cannot work.
        self.exec(
            f"systemctl daemon-reload && systemctl restart remote-fs.target && "
            f"systemctl start {mounts}"
        )

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


def write_inventory(
    path: Path,
    servers: list[tuple[LabServer, dict]],
    nodes: list[tuple[LabServer, dict]] = (),
) -> Path:
    """
    Write a pyinfra inventory of one lab: its servers (``lab_servers``: the hub server), and its
    lab nodes (the group ``lab_nodes``), each with its own host data on top of its login.
    """
    lines = ["# Generated by labhost for throwaway lab servers."]
    for group, members in (("lab_servers", servers), ("lab_nodes", nodes)):
        if members:
            hosts = [(server.address, {**server.login_data(), **data}) for server, data in members]
            lines.append(f"{group} = {hosts!r}")
    path.write_text("\n".join(lines) + "\n")
    return path


# Some kernels this machine boots have no autofs (no /dev/autofs): lab servers then start without
# it, and systemd's automount units fail in them as on a host without autofs.
HAS_AUTOFS = os.path.exists("/dev/autofs")


def start_lab_server(
    name: str | None = None,
    workdir: Path | None = None,
    boot_timeout: float = 90,
    volumes: dict[str, str] | None = None,
    engine: bool = False,
    stand_ins: bool = False,
) -> LabServer:
    """
    Start a fresh lab server and wait until systemd is running and SSH accepts the key.
    ``volumes`` are engine volumes of this machine mounted in the server, ``{volume: path}``:
    one volume given to several servers of a lab is a folder they share (made, labelled, when
    missing; ``remove_volume`` removes it once they are gone). A volume new and empty at its
    first server's path gets what the image has there (Docker copies it). With ``engine``, the
    server boots with the Docker engine the project's docker task installs, already installed
    (``labhost.images.engine_image``): for the tests of everything after the engine. With
    ``stand_ins`` too, its engine also has the stand-in images loaded, as ``load_stack_images``
    leaves them (``labhost.images.stand_ins_volume``): for the tests that deploy the stack.
    """
    client = ensure_engine()
    template = None
    if engine or stand_ins:
        # They start lab servers themselves to make what they return.
        from labhost.images import engine_image, stand_ins_volume

        image = engine_image()
        template = stand_ins_volume() if stand_ins else None
    else:
        image = ensure_labhost_image(client)
    # Known by its labels: a container of the machine's owner may already have the name.
    wanted = name or "labhost"
    name = name if name and not _name_taken(client, name) else f"{wanted}-{uuid.uuid4().hex[:8]}"
    labels = {LABEL: "1", NAME_LABEL: wanted}
    # A server of that name killed with its test run left its engine's volume: a new server
    # starts with an empty engine, never with the old one's containers coming back.
    _remove_labelled_volume(client, f"{name}-docker")
    volume = client.volumes.create(f"{name}-docker", labels=labels).name
    if template is not None:
        copy_volume(client, template, volume)
    for shared in volumes or {}:
        client.volumes.create(shared, labels={LABEL: "shared"})
    workdir = Path(workdir or tempfile.mkdtemp(prefix=f"{name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    key_path = workdir / "id_ed25519"
    if not key_path.exists():
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key_path))
    try:
        container = _run_lab_server(client, image, name, volume, labels, volumes or {})
    except docker.errors.APIError as e:
        _remove_labelled_volume(client, volume)
        reason = probes.capability_refusal(str(e))
        if reason:
            raise LabHostError(reason) from None
        raise
    address = probes.container_address(container.attrs)
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


# The layers' files are linked, not copied: overlayfs never writes a lower layer, and the engine
# removes a layer by unlinking it. The rest (the engine's databases, which it writes in place)
# is copied. Arguments: the source's and the target's folders.
_COPY_ENGINE_FOLDER = """
set -e
cp -al "$1/overlay2" "$2/overlay2"
tar -C "$1" --exclude=./overlay2 -cf - . | tar -C "$2" -xpf -
"""


def copy_volume(client: docker.DockerClient, source: str, target: str) -> None:
    """Copy the folder of a stopped nested engine, an engine volume of this machine, into another
    (empty): ~4 s for the ~1 GB of layers ``docker load`` takes ~40 s to fill."""
    folders = {
        name: Path(client.volumes.get(name).attrs["Mountpoint"]) for name in (source, target)
    }
    # One mount for both: a hard link cannot cross mounts.
    parent = folders[source].parent.parent
    client.containers.run(
        ensure_labhost_image(client),
        ["bash", "-c", _COPY_ENGINE_FOLDER, "copy"]
        + [f"/volumes/{folders[name].relative_to(parent)}" for name in (source, target)],
        remove=True,
        # The overlay attributes of the layers' folders are trusted.* ones.
        cap_add=["SYS_ADMIN"],
        volumes={str(parent): {"bind": "/volumes", "mode": "rw"}},
        labels={LABEL: "copy"},
    )


def start_lab_servers(count: int, name: str = "labhost", engine: bool = False) -> list[LabServer]:
    """
    Start ``count`` fresh lab servers at once (the servers of one lab: a hub server and its lab
    nodes), each booting in a thread of its own; when one fails, those that started are removed.
    ``engine`` as for ``start_lab_server``.
    """
    started: list[LabServer | None] = [None] * count
    errors: list[BaseException] = []

    def start(index: int) -> None:
        try:
            started[index] = start_lab_server(f"{name}{index}", engine=engine)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    servers = [server for server in started if server is not None]
    if errors:
        for server in servers:
            remove_in_background(server)
        raise errors[0]
    return servers


def _name_taken(client: docker.DockerClient, name: str) -> bool:
    try:
        client.containers.get(name)
        return True
    except docker.errors.NotFound:
        return False


def _run_lab_server(
    client: docker.DockerClient,
    image: str,
    name: str,
    volume: str,
    labels,
    shared: dict[str, str],
):
    container = client.containers.run(
        image,
        name=name,
        hostname=name,
        detach=True,
        cap_add=["ALL"],
        cap_drop=["SYS_RESOURCE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        cgroupns="host",
        # systemd's automount units (fstab's x-systemd.automount) need the kernel's autofs.
        devices=["/dev/autofs:/dev/autofs"] if HAS_AUTOFS else [],
        tmpfs={"/run": "", "/run/lock": ""},
        volumes={
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            volume: {"bind": "/var/lib/docker", "mode": "rw"},
            **{other: {"bind": path, "mode": "rw"} for other, path in shared.items()},
        },
        labels=labels,
    )
    container.reload()
    return container


@contextmanager
def running_lab_server(engine: bool = False, stand_ins: bool = False) -> Iterator[LabServer]:
    """A fresh lab server (``engine`` and ``stand_ins`` as for ``start_lab_server``), removed
    afterwards (in the background: ``wait_for_removals``)."""
    server = start_lab_server(engine=engine, stand_ins=stand_ins)
    try:
        yield server
    finally:
        remove_in_background(server)


# Removing a lab server (its engine's images and containers) takes a minute or two on a busy
# machine, mostly deleting files: the tests go on meanwhile.
_REMOVALS: list[threading.Thread] = []


def remove_in_background(server: LabServer) -> None:
    """Start removing the server; ``wait_for_removals`` waits for it."""
    # Its own connection to the engine: the caller's goes on being used meanwhile.
    server.client = _client()
    removal = threading.Thread(target=server.remove, name=f"removing {server.address}")
    removal.start()
    _REMOVALS.append(removal)


def wait_for_removals() -> None:
    """Until every removal ``remove_in_background`` started has ended."""
    while _REMOVALS:
        _REMOVALS.pop().join()


def _wait_booted(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        try:
            state = server.exec("systemctl is-system-running || true").strip()
        except docker.errors.APIError as e:
            # A container still restarting refuses execs.
            state = str(e)
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


def find_lab_server(name: str, workdir: Path) -> LabServer | None:
    """The running lab server started as ``name`` (with this workdir), if any: found by the
    labels the harness gave it, never by a container name the machine's owner may also use."""
    client = ensure_engine()
    found = client.containers.list(all=True, filters={"label": [LABEL, f"{NAME_LABEL}={name}"]})
    for container in found[1:]:
        _remove_container(client, container)
    if not found:
        return None
    container = found[0]
    if container.status != "running" or not (workdir / "id_ed25519").exists():
        _remove_container(client, container)
        return None
    volume = next(m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume")
    address = probes.container_address(container.attrs)
    return LabServer(client, container.id, volume, address, workdir / "id_ed25519", workdir)


def remove_all_lab_servers() -> int:
    """Remove every lab server container this harness started (and their engine volumes)."""
    client = ensure_engine()
    count = 0
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        _remove_container(client, container)
        count += 1
    return count


def _remove_container(client: docker.DockerClient, container) -> None:
    """A lab server's container and the engine volumes the harness made for it (by label)."""
    volumes = [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"]
    container.remove(force=True)
    for volume in volumes:
        _remove_labelled_volume(client, volume)


def _remove_labelled_volume(client: docker.DockerClient, name: str) -> None:
    """The engine volume, if it is there, the harness made it (it carries LABEL) and no other
    lab server still has it (a shared volume goes with the last)."""
    try:
        found = client.volumes.get(name)
    except docker.errors.NotFound:
        return
    if LABEL in (found.attrs.get("Labels") or {}):
        try:
            found.remove(force=True)
        except docker.errors.APIError as e:
            if e.status_code != 409:
                raise


def remove_volume(name: str) -> None:
    """Remove a volume ``start_lab_server`` made for ``volumes``, once no server has it."""
    _remove_labelled_volume(ensure_engine(), name)
