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
  image, as soon as its container stops, or after http_timeout.

Kept apart from labhub_spawn.py, which needs no DockerSpawner to be imported.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import time

from docker.errors import APIError, NotFound
from dockerspawner import DockerSpawner
from labhub_spawn import account_files, image_name
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


class LabSpawner(DockerSpawner):
    # Set per spawn by labhub_spawn.pre_spawn_hook: the account the lab's passwd names.
    lab_account: dict | None = None

    async def get_command(self):
        if not self.cmd:
            config = (await self.docker("inspect_image", self.image))["Config"]
            if not config.get("Cmd"):
                raise LabImageError(self.image, "it has no command")
        return await super().get_command()

    async def create_object(self):
        obj = await super().create_object()
        if self.lab_account:
            await asyncio.get_running_loop().run_in_executor(
                self.executor, self._write_account, obj["Id"]
            )
        return obj

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

    async def start(self):
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
            if state is not None:
                raise LabImageError(
                    self.image,
                    "its container stopped at once"
                    if state == 0
                    else f"its container stopped ({state})",
                )
            if time.monotonic() > deadline:
                raise LabImageError(
                    self.image, f"no Jupyter server answered within {self.http_timeout} s"
                )
            await asyncio.sleep(1)
