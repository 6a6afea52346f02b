"""
A stand-in of Docker's apt repository (``https://download.docker.com/linux`` cannot be reached
here), for deploying the default ``docker_source`` to lab servers with ``docker_apt_url`` pointed
at it and nothing else changed.

It is laid out like Docker's (``<url>/debian/gpg``, ``<url>/debian/dists/<codename>/stable/
binary-<arch>/``) and signed like it (InRelease, Release.gpg), and holds Docker's package names
as metapackages that depend on Debian's engine, compose v2 and buildx (``contexts/docker-apt/``).
Its key is made when its image is built, once per machine (the image is cached by tag, with a
hash of its build context), and never leaves the image. A copy of the repository signed with
another key, publishing the same key, stands in for a tampered mirror; one signed with that other
key and publishing it, for a repository whose key was rotated (or another mirror). It is served over HTTP by
a container on this machine's engine, which lab servers reach on the bridge.
"""

from __future__ import annotations

import logging
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import docker
import docker.errors

from labhost import probes
from labhost.server import LabHostError, build_on_base, ensure_engine

logger = logging.getLogger(__name__)

DOCKER_APT_REPOSITORY = "labhub-test/docker-apt"
LABEL = "org.labhub.stand-in"


def ensure_docker_apt_image(client: docker.DockerClient) -> str:
    """The stand-in repository's image, built once per machine (cached by tag)."""
    return build_on_base(client, DOCKER_APT_REPOSITORY, "docker-apt")


@dataclass
class AptRepository:
    """One running stand-in of Docker's apt repository."""

    client: docker.DockerClient
    container_id: str
    address: str
    _closed: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """What ``docker_apt_url`` is set to, as ``https://download.docker.com/linux`` is."""
        return f"http://{self.address}/linux"

    @property
    def another_key_url(self) -> str:
        """The same repository and published key, its Release signed with another key."""
        return f"http://{self.address}/another-key/linux"

    @property
    def rotated_url(self) -> str:
        """The same packages, signed with another key and publishing that key."""
        return f"http://{self.address}/rotated/linux"

    def published_key(self, distribution: str = "debian", url: str | None = None) -> bytes:
        """The key the repository at ``url`` (default ``self.url``) publishes at
        ``<url>/<distribution>/gpg``, ASCII armored."""
        with urllib.request.urlopen(f"{url or self.url}/{distribution}/gpg", timeout=10) as answer:
            return answer.read()

    @contextmanager
    def signed_with_another_key(self) -> Iterator[None]:
        """
        While in the block, ``url`` serves the Release files signed with the other key (the
        packages and the published key unchanged), as a mirror whose signing key was swapped
        would: apt's lists fetched from it before are then stale, and verify no more.
        """
        dists = "/srv/www/linux/debian/dists"
        self._exec(
            f"cp -a {dists} /srv/www/dists.signed && "
            f"cp -a /srv/www/another-key/linux/debian/dists/. {dists}/"
        )
        try:
            yield
        finally:
            self._exec(f"rm -r {dists} && mv /srv/www/dists.signed {dists}")

    def _exec(self, command: str) -> None:
        result = self.client.containers.get(self.container_id).exec_run(["sh", "-c", command])
        if result.exit_code != 0:
            raise LabHostError(f"{command!r} exited {result.exit_code}: {result.output.decode()}")

    def remove(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.client.containers.get(self.container_id).remove(force=True)
        except docker.errors.NotFound:
            pass


def start_docker_apt_repository(timeout: float = 30) -> AptRepository:
    """Serve the stand-in of Docker's apt repository and wait until it answers over HTTP."""
    client = ensure_engine()
    image = ensure_docker_apt_image(client)
    container = client.containers.run(
        image,
        name=f"labhub-docker-apt-{uuid.uuid4().hex[:8]}",
        detach=True,
        labels={LABEL: "docker-apt"},
    )
    container.reload()
    repository = AptRepository(client, container.id, probes.container_address(container.attrs))
    deadline = time.monotonic() + timeout
    while True:
        try:
            repository.published_key()
            return repository
        except OSError as e:
            if time.monotonic() > deadline:
                repository.remove()
                raise LabHostError(f"the stand-in apt repository did not answer: {e}") from e
            time.sleep(0.2)
