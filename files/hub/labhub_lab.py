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
  while the lab runs is told the same way.

Kept apart from labhub_spawn.py, which needs no DockerSpawner to be imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

from docker.errors import APIError, NotFound
from dockerspawner import DockerSpawner
from labhub_spawn import (
    LAB_LABEL,
    SpawnRefused,
    account_files,
    format_size,
    gpu_grant,
    guarantee_problem,
    held_gpus,
    image_name,
    lab_host_config,
    lab_labels,
    oom_notice,
)
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError


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
        # Kept when it exits, until poll has read why (Docker's auto_remove would delete it).
        self.extra_host_config = {**self.extra_host_config, "auto_remove": False}
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
        ip, port = await super().start()
        await self._wait_for_server(f"http://{ip}:{port}{self.server.base_url}api")
        return ip, port

    async def _wait_for_server(self, url: str) -> None:
        """Until the lab's server answers; fails as soon as its container has stopped."""
        client = AsyncHTTPClient()
        deadline = time.monotonic() + self.http_timeout
        while True:
            try:
                await client.fetch(url, request_timeout=5, follow_redirects=False)
                return
            except HTTPClientError as e:
                if e.code != 599:  # any HTTP answer: the server is up
                    return
            except OSError:  # not listening yet
                pass
            state = await self.poll()
            if state is not None and self.lab_notice:
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
            await asyncio.sleep(1)
