"""
The lab hub's spawner: DockerSpawner, plus

- a named user in every lab, whatever image it runs: before the container first starts, its own
  /etc/passwd and /etc/group are read from it, the user's account is added
  (labhub_spawn.account_files) and written back with Docker's archive API. The image's other
  accounts stay. Why this way: the labs run as the user's uid with gid 100 (not group 0), so the
  official images' start script, which adds such an account only when started as root or group
  0, cannot; bind-mounting files generated on the host would replace the image's own accounts
  and needs host paths the hub (in a container) must know; an entrypoint wrapper would have to
  be in each image. Writing into the created container needs nothing from the image;
- failures a person can act on: an image that cannot start a Jupyter server (no command, a
  command that exits, a server that never answers) fails the spawn with a message naming the
  image, as soon as its container stops, or after http_timeout;
- the limits and GPUs of the user's groups (labhub_spawn.LabLimits): memory, CPUs, the memory
  guarantee as a reservation, GPUs by device id, chosen here among those no other lab holds
  (dockerspawner#331: a count would give every lab the same); a spawn whose guarantees or GPUs
  the server can no longer give is refused with a message;
- a lab killed for memory is told: containers are not auto-removed (Docker's auto_remove
  would delete them, and their state with them, the moment they exit), so that poll reads why
  the lab stopped (OOMKilled) before removing it. The user sees it on the hub's home page and
  spawn page (jupyterhub_config.py), and the hub's log says it. A kernel killed for memory
  while the lab runs is told the same way;
- the spawn's steps on the spawn page (labhub_progress.py): the image pulled, with how much of it
  is done, the container created, its server waited for. The pull is done in
  ``run_pre_spawn_hook``, which JupyterHub awaits before it starts ``start`` under
  ``start_timeout`` (``asyncio.wait_for``, whose limit is fixed when it starts: raising
  ``start_timeout`` during a pull would not move it): a large image's pull does not count
  against the lab's start.
- a share that cannot be mounted when the lab starts (its server down) is left out of the lab,
  waited for a few seconds at most (labhub_spawn.ShareProbe): the user is told on the same
  pages, the hub's log names the share, and the next start gets it once it is back.

Kept apart from labhub_spawn.py, which needs no DockerSpawner to be imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import io
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

from docker.errors import APIError, NotFound
from dockerspawner import DockerSpawner
from labhub_progress import CREATE, PULL_END, WAIT, PullFailed, PullProgress
from labhub_spawn import (
    LAB_LABEL,
    ShareProbe,
    SpawnRefused,
    account_files,
    format_size,
    gpu_grant,
    guarantee_problem,
    held_gpus,
    image_name,
    lab_host_config,
    lab_labels,
    lab_security,
    missing_shares_notice,
    oom_notice,
)
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Float, Integer, List


class LabImageError(web.HTTPError):
    """A spawn that failed because of its image: the message is shown on the spawn page. An
    HTTPError, since the hub shows any other error of a spawn that fails within its first second
    as "Unhandled error"; ``jupyterhub_message`` is what its progress page shows."""

    def __init__(self, image: str, reason: str):
        message = (
            f"The image {image_name(image)} cannot start a Jupyter server: {reason}. "
            "Pick another image on the spawn form."
        )
        super().__init__(500, message.replace("%", "%%"))
        self.jupyterhub_message = message


class LabRefused(web.HTTPError):
    """A spawn refused because the server cannot give what the user's groups promise (their
    guarantees, their GPUs): the message says why, on the spawn page."""

    def __init__(self, reason: str):
        message = f"Your lab cannot start now: {reason}."
        super().__init__(503, message.replace("%", "%%"))
        self.jupyterhub_message = message


# Which shares are mounted, for every user's spawns (one probe a mount point at a time).
_SHARES = ShareProbe()

# Held from the count of what running labs hold to the new lab's container being created (and
# labelled with what it holds): two spawns at once cannot take the same GPU or guarantee.
_GRANTS = asyncio.Lock()


class LabSpawner(DockerSpawner):
    # DockerSpawner's executor is one thread for every spawner: a class starting at once would
    # queue each Docker call (create, the account files, each poll) behind everyone's. As many
    # threads as docker-py's connection pool holds.
    _executor = ThreadPoolExecutor(10, thread_name_prefix="docker")
    # Set per spawn by labhub_spawn.pre_spawn_hook: the account the lab's passwd names, the
    # limits (labhub_spawn.LabLimits) and what the user's groups give the lab.
    lab_account: dict | None = None
    lab_limits = None
    lab_resources: dict | None = None
    # Why the user's last lab stopped, or what it met (its memory limit): on the hub's pages.
    lab_notice: str | None = None
    _told: tuple = ()
    # The exit code of the lab's container, as poll last read it before removing it.
    _exit_code: int | None = None

    # --- No more rights than it needs: labhub_spawn.lab_security, which the engine filter requires
    lab_pids_limit = Integer(4096, config=True, help="Processes a lab may run (lab_pids_limit).")
    lab_shares = List(
        config=True,
        help="The shares as the hub sees them (settings.json's shares): a lab mounts only those "
        "mounted when it starts.",
    )
    share_wait = Float(3.0, config=True, help="Seconds a share's mount is waited for at most.")

    def lab_containers(self) -> list[dict]:
        """Every lab container of this engine (the Engine API's list, with labels and state)."""
        return self.client.containers(all=True, filters={"label": LAB_LABEL})

    def get_env(self):
        env = super().get_env()
        # As JupyterHub's own limits do: jupyter-resource-usage shows the lab's memory against it.
        for key in ("mem_limit", "cpu_limit", "mem_guarantee", "cpu_guarantee"):
            value = (self.lab_resources or {}).get(key)
            if value is not None:
                env[key.upper()] = f"{value:g}" if isinstance(value, float) else str(value)
        return env

    def get_state(self):
        state = super().get_state()
        if self.lab_notice:
            state["lab_notice"] = self.lab_notice
        return state

    def load_state(self, state):
        super().load_state(state)
        self.lab_notice = state.get("lab_notice")

    async def check_allowed(self, image):
        # The registry's list read off the event loop (labhub_spawn.RegistryImages.current).
        if hasattr(self.allowed_images, "current"):
            await self.allowed_images.current(self)
        return await super().check_allowed(image)

    async def get_command(self):
        if not self.cmd:
            config = (await self.docker("inspect_image", self.image))["Config"]
            if not config.get("Cmd"):
                raise LabImageError(self.image, "it has no command")
        return await super().get_command()

    async def create_object(self):
        self._spawn_step(CREATE, "Creating the lab's container")
        # Kept when it exits, until poll has read why (Docker's auto_remove would delete it).
        self.extra_host_config = {**self.extra_host_config, "auto_remove": False}
        # No capability, no new privileges, a process limit; labelled as the user's lab.
        self.extra_host_config.update(lab_security(self.lab_pids_limit))
        self.extra_create_kwargs = {
            **self.extra_create_kwargs,
            "labels": {LAB_LABEL: self.user.name, **self.extra_create_kwargs.get("labels", {})},
        }
        resources = self.lab_resources or {}
        # Only a lab with guarantees or GPUs depends on what the others hold: only those wait.
        counted = resources.get("gpus") is not None or any(
            resources.get(key) for key in ("mem_guarantee", "cpu_guarantee")
        )
        async with _GRANTS if counted else contextlib.nullcontext():
            if self.lab_resources is not None:
                await self._grant(counted)
            obj = await super().create_object()
        if self.lab_account:
            await asyncio.get_running_loop().run_in_executor(
                self.executor, self._write_account, obj["Id"]
            )
        return obj

    async def _grant(self, counted: bool = True) -> None:
        """The user's limits and GPUs into the container's configuration, or LabRefused."""
        resources, limits = self.lab_resources, self.lab_limits
        problem, containers = None, []
        if counted:
            loop = asyncio.get_running_loop()
            containers = await loop.run_in_executor(self.executor, self.lab_containers)
            problem = guarantee_problem(resources, containers, await self.docker("info"))
        devices, own = [], False
        if problem is None and resources["gpus"] is not None:
            try:
                devices, own = gpu_grant(resources["gpus"], limits.devices, held_gpus(containers))
            except SpawnRefused as e:
                problem = str(e)
        if problem is not None:
            self.log.warning("refused %s's lab: %s", self.user.name, problem)
            raise LabRefused(problem)
        if devices:
            self.log.info("%s's lab gets GPUs %s", self.user.name, ",".join(devices))
        if resources["cpu_limit"] is not None:
            # Given as nano CPUs: DockerSpawner's own CPU period would conflict with them.
            self.cpu_limit = None
        self.extra_host_config = {
            **self.extra_host_config,
            **lab_host_config(resources, devices, limits.shm_size),
        }
        self.extra_create_kwargs = {
            **self.extra_create_kwargs,
            "labels": lab_labels(self.user.name, resources, devices if own else []),
        }

    async def poll(self):
        """DockerSpawner's, and why a lab stopped or what killed a process in it: told once
        (the hub's log, the user's pages); a stopped lab's container is removed once read."""
        container = await self.get_object()
        if container is None:
            return 0
        state = container["State"]
        notice = oom_notice(state, container["HostConfig"].get("Memory") or None)
        if notice and self._told != (container["Id"], state["Running"]):
            self._told = (container["Id"], state["Running"])
            self.lab_notice = notice
            limit = container["HostConfig"].get("Memory")
            self.log.warning(
                "%s's lab %s hit its memory limit (%s): %s (OOMKilled, exit code %s)",
                self.user.name,
                self.object_name,
                format_size(limit) if limit else "none",
                "the kernel killed a process in it, the lab runs on"
                if state["Running"]
                else "the kernel killed its main process, the lab stopped",
                state.get("ExitCode"),
            )
        if state["Running"]:
            return None
        self._exit_code = state.get("ExitCode")
        status = "ExitCode={ExitCode}, Error='{Error}', FinishedAt={FinishedAt}".format(**state)
        if self.remove and state.get("Status") in ("exited", "dead"):
            await self.remove_object()
            self.object_id = ""
        return status

    def _write_account(self, container: str) -> None:
        texts = [self._read_file(container, path) for path in ("/etc/passwd", "/etc/group")]
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for name, text in zip(("passwd", "group"), account_files(*texts, self.lab_account)):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        self.client.put_archive(container, "/etc", archive.getvalue())

    def _read_file(self, container: str, path: str) -> str:
        try:
            stream, _ = self.client.get_archive(container, path)
        except NotFound:
            return ""
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member is not None else None
            return extracted.read().decode(errors="replace") if extracted else ""

    async def start_object(self):
        try:
            await super().start_object()
        except APIError as e:
            raise LabImageError(self.image, str(e.explanation or e)) from e

    async def stop(self, now=False):
        # Stopped by its user, an admin or the culler: what it met before is past.
        self.lab_notice = None
        await super().stop(now=now)

    async def start(self):
        self.lab_notice = None
        await self._leave_out_missing_shares()
        ip, port = await super().start()
        self._spawn_step(WAIT, "Waiting for the lab's Jupyter server")
        await self._wait_for_server(f"http://{ip}:{port}{self.server.base_url}api")
        return ip, port

    async def _leave_out_missing_shares(self) -> None:
        """The lab's shares not mounted now out of its mounts, told to its user and logged."""
        shares = [share for share in self.lab_shares if share["mountpoint"] in self.volumes]
        if not shares:
            return
        missing = await asyncio.get_running_loop().run_in_executor(
            self.executor, _SHARES.missing, shares, self.share_wait
        )
        for share in missing:
            self.log.warning(
                "%s's lab starts without share %s: nothing is mounted at %s within %g s "
                "(its server does not answer?)",
                self.user.name,
                share["name"],
                share["mountpoint"],
                self.share_wait,
            )
        if missing:
            self.lab_notice = missing_shares_notice(missing, self.volumes)
            gone = {share["mountpoint"] for share in missing}
            self.volumes = {path: v for path, v in self.volumes.items() if path not in gone}

    async def _wait_for_server(self, url: str) -> None:
        """Until the lab's server answers; fails as soon as its container has stopped."""
        client = AsyncHTTPClient()
        deadline = time.monotonic() + self.http_timeout
        # What the start itself told (shares left out), not what poll finds.
        told = self.lab_notice
        polled = 0.0
        while True:
            try:
                await client.fetch(url, request_timeout=5, follow_redirects=False)
                return
            except HTTPClientError as e:
                if e.code != 599:  # any HTTP answer: the server is up
                    return
            except OSError:  # not listening yet
                pass
            # A refused connection costs next to nothing; the container's state is an engine
            # call (through the filter): asked once a second, while the port is tried five times.
            if time.monotonic() - polled < 1:
                await asyncio.sleep(0.2)
                continue
            polled = time.monotonic()
            state = await self.poll()
            if state is not None and self.lab_notice not in (None, told):
                # Killed for memory while it started: the limit, not the image, is why.
                limit = (self.lab_resources or {}).get("mem_limit")
                raise LabRefused(
                    "it used more than its memory limit"
                    + (f" of {format_size(limit)}" if limit else "")
                    + " while it started: ask the lab's admins for a larger limit"
                )
            if state is not None:
                raise LabImageError(
                    self.image,
                    f"its container stopped with exit code {self._exit_code}"
                    if self._exit_code
                    else "its container stopped at once",
                )
            if time.monotonic() > deadline:
                raise LabImageError(
                    self.image, f"no Jupyter server answered within {self.http_timeout} s"
                )
            await asyncio.sleep(0.2)

    # --- The spawn's steps, for the spawn page (JupyterHub's progress events) ---
    _spawn_steps: list | None = None
    _pulled: str | None = None

    def _spawn_step(self, progress: int, message: str) -> None:
        if self._spawn_steps is None:
            self._spawn_steps = []
        self._spawn_steps.append({"progress": progress, "message": message})

    async def progress(self):
        """Each step of the spawn as it happens; the hub ends this when the spawn ends."""
        steps, sent = None, 0
        while True:
            if self._spawn_steps is not steps:  # a new spawn's (or the first read)
                steps, sent = self._spawn_steps, 0
            while steps and sent < len(steps):
                sent += 1
                yield steps[sent - 1]
            await asyncio.sleep(0.5)

    async def run_pre_spawn_hook(self):
        """The hook, then the lab's image pulled (when the pull policy pulls it), before the hub
        starts start's timer."""
        self._spawn_steps, self._pulled = [], None
        result = super().run_pre_spawn_hook()
        if inspect.isawaitable(result):
            await result
        if self.pull_policy.lower() not in ("always", "ifnotpresent"):
            return
        image = self.image
        if self.user_options.get("image"):
            image = await self.check_allowed(self.user_options["image"])
        if self.pull_policy.lower() == "ifnotpresent":
            try:
                await self.docker("inspect_image", image)
                self._spawn_step(PULL_END, f"The image {image_name(image)} is on the server")
                return
            except NotFound:
                pass
        await self._pull(image)
        self._pulled = image

    async def _pull(self, image: str) -> None:
        """Pull the image, its layers and bytes on the spawn page as they come in."""
        pull = PullProgress(image_name(image))
        self._spawn_step(**pull.event())
        repository, tag = image, "latest"
        if ":" in image.rsplit("/", 1)[-1]:
            repository, tag = image.rsplit(":", 1)
        loop = asyncio.get_running_loop()

        def read() -> None:
            told, step = 0.0, pull.event()
            for event in self.client.pull(repository, tag, stream=True, decode=True):
                pull.add(event)
                # A step at most each half second, as often as the spawn page reads them.
                if pull.event() != step and time.monotonic() - told >= 0.5:
                    told, step = time.monotonic(), pull.event()
                    loop.call_soon_threadsafe(functools.partial(self._spawn_step, **step))

        self.log.info("pulling %s for %s's lab", image, self.user.name)
        try:
            await loop.run_in_executor(self.executor, read)
        except (PullFailed, APIError) as e:
            raise LabImageError(image, f"it cannot be pulled: {e}") from e
        self._spawn_step(**pull.event())

    async def pull_image(self, image):
        # Pulled already, before start's timer (run_pre_spawn_hook).
        if image != self._pulled:
            await super().pull_image(image)
