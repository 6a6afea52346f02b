"""
Stand-ins for the official images the stack starts from, and loading them into a lab server.

Nothing can be pulled here, so the images the deploy builds FROM (and the registry it runs) are
made on this machine from the debootstrapped base, with the shape the production Dockerfiles rely
on, and moved into the lab server's engine before a deploy. Their versions are the tags of the
production defaults (``group_data/all.py``), so a stand-in follows a default that moves. Each tag
also carries a hash of its build context, so editing a stand-in's Dockerfile rebuilds it.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import runpy
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import docker

from labhost.runner import run_pyinfra
from labhost.server import (
    BASE_IMAGE,
    CONTEXTS,
    LABEL,
    LOGIN_USER,
    PROJECT_ROOT,
    LabServer,
    build_image,
    context_tag,
    copy_volume,
    ensure_base_image,
    ensure_engine,
    ensure_labhost_image,
    has_image,
    machine_lock,
    start_lab_server,
)

logger = logging.getLogger(__name__)

DEFAULTS_FILE = PROJECT_ROOT / "group_data" / "all.py"
CA_BUNDLE = Path(os.environ.get("LABHUB_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
# The JupyterLab and the jupyterhub-singleuser that the official base-notebook at the
# lab_base_image default's tag ships; they are not in the image's name, so they move by hand with
# that default. The hub's JupyterHub may be newer: labs run what their image has.
JUPYTERLAB_VERSION = "4.3.4"
LAB_JUPYTERHUB_VERSION = "5.2.1"


@cache
def defaults() -> dict:
    """The production defaults, read from the file the deploy reads them from."""
    return runpy.run_path(str(DEFAULTS_FILE))


def image_tag(reference: str) -> str:
    """The tag of an image reference: ``quay.io/jupyterhub/jupyterhub:5.2.1`` -> ``5.2.1``."""
    name = reference.split("@", 1)[0].rsplit("/", 1)[-1]
    if ":" not in name:
        return "latest"
    return name.rsplit(":", 1)[1]


@dataclass(frozen=True)
class StandIn:
    """One stand-in image: its build context under ``contexts/``, repository, and the setting
    whose default image it stands in for (its tag is the stand-in's version)."""

    folder: str
    repository: str
    setting: str | None
    # Another version than the setting's default (an older hub to upgrade from).
    pinned: str | None = None

    @property
    def version(self) -> str:
        if self.pinned:
            return self.pinned
        # The shared python layer stands in for no image: it is Debian's release.
        return image_tag(defaults()[self.setting]) if self.setting else "trixie"

    def buildargs(self) -> tuple[tuple[str, str], ...]:
        if self.folder == "jupyterhub":
            return (("JUPYTERHUB_VERSION", self.version),)
        if self.folder == "lab-base":
            return (
                ("JUPYTERHUB_VERSION", LAB_JUPYTERHUB_VERSION),
                ("JUPYTERLAB_VERSION", JUPYTERLAB_VERSION),
            )
        return ()

    def tag(self) -> str:
        return context_tag(
            self.repository,
            self.version,
            CONTEXTS / self.folder,
            (("BASE_IMAGE", self.base_tag()), *self.buildargs()),
        )

    def base_tag(self) -> str:
        """What it is built FROM: the python layer, or the debootstrapped base."""
        return PYTHON_LAYER.tag() if self.folder in ("jupyterhub", "lab-base") else BASE_IMAGE


# About how long each stand-in takes to build from nothing, at once with the others, on this
# project's 2-core build machines (README, "./dev up"): the estimate told before they build.
FIRST_BUILD_SECONDS = {"python": 25, "registry": 30, "caddy": 30, "jupyterhub": 45, "lab-base": 90}

# Not a stand-in of a production image: the layer the Python ones share.
PYTHON_LAYER = StandIn("python", "labhub-test/python", None)
STAND_INS = (
    StandIn("registry", "labhub-test/registry", "registry_image"),
    StandIn("jupyterhub", "labhub-test/jupyterhub", "hub_base_image"),
    StandIn("lab-base", "labhub-test/base-notebook", "lab_base_image"),
    StandIn("caddy", "labhub-test/caddy", "proxy_image"),
)
# The JupyterHub before the default's major version: what an upgrade starts from.
PREVIOUS_HUB = StandIn("jupyterhub", "labhub-test/jupyterhub", "hub_base_image", pinned="5.2.1")


def build_stand_in(client: docker.DockerClient, image: StandIn) -> str:
    """Build a stand-in once per machine (cached by tag), its base first."""
    tag = image.tag()
    if has_image(client, tag):
        return tag
    base = image.base_tag()
    if base == BASE_IMAGE:
        ensure_base_image(client)
    else:
        build_stand_in(client, PYTHON_LAYER)
    # pip in the builds trusts this machine's CA bundle, copied into the context.
    with tempfile.TemporaryDirectory(prefix="labhub-image-") as context:
        shutil.copytree(CONTEXTS / image.folder, context, dirs_exist_ok=True)
        shutil.copy(CA_BUNDLE, Path(context) / "ca-bundle.crt")
        build_image(client, Path(context), tag, BASE_IMAGE=base, **dict(image.buildargs()))
    return tag


def build_stand_ins(
    client: docker.DockerClient,
    images: tuple[StandIn, ...],
    built: Callable[..., None] | None = None,
) -> dict[StandIn, str]:
    """
    Build these stand-ins (cached by tag), each as soon as what it is built FROM is there: those
    on the debootstrapped base at once, the python layer's two once it is built. Most of a build
    is waiting on Debian's mirror and PyPI, so builds at once take little more than the longest.
    ``built`` is called with the tags of those built before, at once, then with each one's tag as
    soon as it is built (in its build's thread). Returns each image's tag.
    """
    wanted = {image: image.tag() for image in images}
    missing = [image for image, tag in wanted.items() if not has_image(client, tag)]
    if built and len(missing) < len(wanted):
        built(*(tag for image, tag in wanted.items() if image not in missing))
    if not missing:
        return wanted
    if PYTHON_LAYER not in missing and not has_image(client, PYTHON_LAYER.tag()):
        if any(image.base_tag() != BASE_IMAGE for image in missing):
            missing.insert(0, PYTHON_LAYER)
    # Built at once: about as long as the longest chain (the python layer, then one on it).
    first = FIRST_BUILD_SECONDS["python"] if PYTHON_LAYER in missing else 0
    estimate = max(
        FIRST_BUILD_SECONDS.get(image.folder, 60) + (first if image.base_tag() != BASE_IMAGE else 0)
        for image in missing
    )
    logger.info(
        "building %d stand-in images at once: %s (about %s)",
        len(missing),
        ", ".join(image.repository.split("/")[-1] for image in missing),
        f"{estimate} s" if estimate < 90 else f"{estimate / 60:.1f} min",
    )
    ensure_base_image(client)
    with ThreadPoolExecutor(max_workers=len(missing)) as pool:
        python = pool.submit(build_stand_in, client, PYTHON_LAYER)
        builds = [
            pool.submit(
                _build_after,
                python if image.base_tag() != BASE_IMAGE else None,
                client,
                image,
                built,
            )
            for image in missing
            if image is not PYTHON_LAYER
        ]
        for build in [python, *builds]:
            build.result()
    return wanted


def _build_after(
    first: Future | None,
    client: docker.DockerClient,
    image: StandIn,
    built: Callable[..., None] | None,
) -> str:
    if first is not None:
        first.result()
    tag = build_stand_in(client, image)
    if built:
        built(tag)
    return tag


def prepare_images(
    client: docker.DockerClient, built: Callable[..., None] | None = None
) -> dict[str, str]:
    """
    Build the stand-ins of the official registry, JupyterHub, Jupyter base and Caddy images (once per
    machine, cached by tag; ``built`` as for ``build_stand_ins``) and return the setting
    overrides that point a deploy at them, with this machine's CA bundle for the deploy's own
    image builds (pip needs it here).
    """
    tags = build_stand_ins(client, STAND_INS, built)
    return {"build_ca_bundle": str(CA_BUNDLE), **{i.setting: tags[i] for i in STAND_INS}}


def ensure_server_engine(server: LabServer) -> None:
    """
    The lab server's own Docker engine, installed by the project's docker task (Debian's packages)
    when it is missing: images can only be loaded into a running engine. In production the engine
    pulls the official images itself.
    """
    if server.exec("command -v docker || true").strip():
        return
    logger.info("installing the lab server's Docker engine (tasks/docker.py, distro packages)")
    inventory = server.inventory_file(
        {"docker_source": "distro"}, path=server.workdir / "engine-inventory.py"
    )
    run_pyinfra(inventory, "tasks/docker.py").check()


ENGINE_REPOSITORY = "labhub/labhost-engine"
# What decides the packages the docker task installs (Debian's) and how it sets up the engine:
# an edit to them (or to how engine_image makes the image) makes a new engine image. Any other
# change the docker task would make, the deploy on each server makes anyway (it runs the task
# again, and finds it done or does it).
ENGINE_TASK_FILES = ("tasks/docker.py", "labhub/docker_source.py")


def engine_image() -> str:
    """
    The lab server image with the Docker engine installed by the project's docker task (Debian's
    packages), as ``ensure_server_engine`` installs it on each server: made once per machine (a
    lab server booted, the task run, the server stopped and committed), so that the ~40 s of
    installing the engine is not paid again by every lab server of the tests that deploy the
    stack. It keeps the apt lists the task updated, with their date: a deploy's ``cache_time``
    updates them again once they are a day old, as on a server whose admin installed the engine.
    """
    client = ensure_engine()
    base = client.images.get(ensure_labhost_image(client)).id
    digest = hashlib.sha256(base.encode() + inspect.getsource(engine_image).encode())
    for name in ENGINE_TASK_FILES:
        digest.update((PROJECT_ROOT / name).read_bytes())
    tag = f"{ENGINE_REPOSITORY}:trixie-{digest.hexdigest()[:8]}"
    with machine_lock(tag):
        if has_image(client, tag):
            return tag
        logger.info("making %s: a lab server with the docker task's engine (about 1 min)", tag)
        server = start_lab_server("labhost-engine")
        try:
            ensure_server_engine(server)
            server.exec(f"rm -f /home/{LOGIN_USER}/.ssh/authorized_keys")
            container = server.container
            # systemd stops the engine first; the engine's own folder is the server's volume,
            # never in the image: each server starts with an empty engine.
            container.stop(timeout=60)
            repository, version = tag.split(":")
            container.commit(repository, version, changes=[f"LABEL {LABEL}=image"])
        finally:
            server.remove()
    return tag


STAND_INS_VOLUME = "labhost-stand-ins"
# Written last into the volume: one a killed run left half copied is made again.
COMPLETE = "labhost-complete"


def stand_ins_volume() -> str:
    """
    An engine volume of this machine holding a stopped engine of ``engine_image`` with the
    stand-ins loaded, as ``load_stack_images`` leaves a server's: made once per machine, and
    copied into each new server's engine volume that asks for it (``start_lab_server``'s
    ``stand_ins``), a few seconds instead of the ~40 s of loading ~1 GB of images into every
    engine. Its name hashes the engine image and the stand-ins' tags, so either changing makes a
    new one. The engine's own ID is left out: each engine that starts from it writes its own.
    """
    client = ensure_engine()
    engine = engine_image()
    tags = prepare_images(client)
    digest = hashlib.sha256(engine.encode() + inspect.getsource(stand_ins_volume).encode())
    for image in STAND_INS:
        digest.update(tags[image.setting].encode())
    name = f"{STAND_INS_VOLUME}-{digest.hexdigest()[:8]}"
    with machine_lock(name):
        if name in _COMPLETE_VOLUMES or _complete_volume(client, name):
            _COMPLETE_VOLUMES.add(name)
            return name
        logger.info("making %s: an engine with the stand-ins loaded (about 1 min)", name)
        server = start_lab_server(STAND_INS_VOLUME, engine=True)
        try:
            load_stack_images(server)
            server.exec(
                "systemctl stop docker.socket docker.service containerd.service && "
                f"rm -f /var/lib/docker/engine-id && touch /var/lib/docker/{COMPLETE}"
            )
            server.container.stop(timeout=60)
            try:
                client.volumes.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
            client.volumes.create(name, labels={LABEL: "stand-ins"})
            copy_volume(client, server.volume, name)
        finally:
            server.remove()
        _COMPLETE_VOLUMES.add(name)
    return name


# The volumes this process found or made whole.
_COMPLETE_VOLUMES: set[str] = set()


def _complete_volume(client: docker.DockerClient, name: str) -> bool:
    """Whether the volume is there with everything copied into it."""
    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        return False
    found = client.containers.run(
        ensure_labhost_image(client),
        ["sh", "-c", f"test -e /v/{COMPLETE} && echo yes || true"],
        remove=True,
        volumes={name: {"bind": "/v", "mode": "ro"}},
        labels={LABEL: "check"},
    )
    return found.strip() == b"yes"


def load_stack_images(server: LabServer | Future[LabServer]) -> dict[str, str]:
    """
    Move the stand-in images into the lab server's engine (installing the engine first when
    needed); returns the same setting overrides as ``prepare_images``. A server still starting
    (a future, done once its engine runs) gets each stand-in as soon as it is built, while the
    others still build: ``./dev up`` from nothing waits for the last one's load only.
    """
    if isinstance(server, LabServer):
        ensure_server_engine(server)
        ready: Future[LabServer] = Future()
        ready.set_result(server)
    else:
        ready = server
    # Loads at once: each keeps about one core of the server's engine busy.
    return prepare_images(ensure_engine(), lambda *tags: ready.result().load_images(*tags))


def load_previous_hub(server: LabServer) -> str:
    """The stand-in of the JupyterHub before the default's, in the lab server's engine (to
    upgrade from); its tag, for hub_base_image."""
    tag = build_stand_in(ensure_engine(), PREVIOUS_HUB)
    server.load_images(tag)
    return tag
