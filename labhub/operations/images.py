"""
Build images on the host and push them to a registry, each only when something changed. Paired
with ``labhub.facts.images``; reads pyinfra's ``DockerImage`` fact.
"""

from __future__ import annotations

from pathlib import Path

from pyinfra import host
from pyinfra.api import OperationError, StringCommand, operation
from pyinfra.api.command import QuoteString
from pyinfra.facts.docker import DockerImage
from pyinfra.operations import docker

from labhub.commands import reported, script_command
from labhub.facts import read
from labhub.facts.registry import RegistryTag
from labhub.operations import tree
from labhub.stack import (
    BUILD_SUPPORT,
    BUILT_AS_LABEL,
    CONTEXT_HASH_LABEL,
    ROOT,
    STATE_DIR,
    context_files,
)

# The IDs of the images labhub built on this host, one a line.
BUILT_IMAGES_FILE = f"{STATE_DIR}/built-images"


def _inspect(image: str) -> dict | None:
    """``docker image inspect`` of an image of the host's engine, None when it has none."""
    found = read(host, DockerImage, object_id=image)
    return found[0] if found else None


def _content_hash(inspect: dict | None) -> str | None:
    labels = ((inspect or {}).get("Config") or {}).get("Labels") or {}
    return labels.get(CONTEXT_HASH_LABEL)


@operation()
def context(src: str, dest: str, support: dict[str, bytes]):
    """
    A build context on the host: a local folder's files at ``dest`` (files it no longer has are
    removed), and labhub's build support files in ``dest/labhub-build/``. What is on the host is
    read in one command with the rest of its managed folder (``labhub.operations.tree``), and
    only the files that differ are uploaded.

    + src: the build folder on the admin's machine
    + dest: the build folder on the host
    + support: ``{file name: content}`` of the support files

    **Example:**

    .. code:: python

        images.context(
            name="Upload the build context of the lab image",
            src="files/lab",
            dest="/opt/labhub/build/lab-lab-1.0",
            support={"ca.crt": b""},
        )
    """
    files, modes = {}, {}
    for path in context_files(Path(src)):
        remote = f"{dest}/{path.relative_to(src).as_posix()}"
        files[remote] = path.read_bytes()
        modes[remote] = "0755" if path.stat().st_mode & 0o111 else "0644"
    for support_file, content in support.items():
        files[f"{dest}/{BUILD_SUPPORT}/{support_file}"] = content
    commands = list(
        tree.changes(files, [dest, f"{dest}/{BUILD_SUPPORT}"], modes=modes, delete_under=dest)
    )
    if not commands:
        host.noop(f"{dest} holds the build context {src}")
    yield from commands


# Run by ``built`` after a build: which images are old is only known then.
PRUNE_SCRIPT = ROOT / "files" / "prune-builds.sh"


def _report_pruned(host, status: bool, output) -> None:
    for line in output.stdout_lines:
        host.log(line)


@operation()
def built(
    image: str,
    context: str,
    content_hash: str,
    build_args: dict[str, str] | None = None,
    built_as: str | None = None,
):
    """
    Build an image on the host from a build context there (pyinfra's ``docker.build``), unless
    the image already carries the context's content hash (a label the build sets): a tag alone
    says nothing of what it was built from.

    After a build, older builds of the same ``built_as`` are removed: the new one and the one
    before it (the rollback target) stay, and so does any image a container uses, running or
    stopped. Only images with the ``built_as`` label whose ID a build recorded on the host are
    looked at (labels are inherited by images built FROM them), so nothing labhub did not build
    is touched.

    + image: tag to build, ``repository:tag``
    + context: build context folder on the host (with its Dockerfile)
    + content_hash: hash of everything the build reads, computed by the caller
    + build_args: ``--build-arg`` values
    + built_as: what the build is (default: ``image``): the builds older ones are removed among

    **Example:**

    .. code:: python

        images.built(
            name="Build the lab image",
            image="127.0.0.1:5000/lab:1.0",
            context="/opt/labhub/build/lab-lab-1.0",
            content_hash="9f86d081...",
            build_args={"BASE_IMAGE": "quay.io/jupyter/base-notebook:2025-01-20"},
        )
    """
    if _content_hash(_inspect(image)) == content_hash:
        host.noop(f"image {image} is built from this context")
        return
    yield from docker.build._inner(
        path=context,
        tags=[image],
        build_args=build_args,
        labels={CONTEXT_HASH_LABEL: content_hash, BUILT_AS_LABEL: built_as or image},
        force=True,
    )
    # Labels are inherited by images built FROM this one: the ID is what says labhub built it.
    yield StringCommand("mkdir", "-p", STATE_DIR)
    yield StringCommand(
        "docker",
        "image",
        "inspect",
        "--format",
        QuoteString("{{.Id}}"),
        QuoteString(image),
        ">>",
        BUILT_IMAGES_FILE,
    )
    yield reported(
        script_command(
            PRUNE_SCRIPT,
            f"{BUILT_AS_LABEL}={built_as or image}",
            image,
            BUILT_IMAGES_FILE,
            interpreter="sh",
        ),
        _report_pruned,
    )


@operation()
def pushed(image: str, registry: str, content_hash: str | None = None):
    """
    Push an image of the host's engine to a registry unless the registry's tag is this image.

    + image: ``<registry>/<repository>:<tag>``, an image of the host's engine
    + registry: the registry's ``host:port``, as the host's engine addresses it
    + content_hash: the context hash the image is built from (see ``built``): an image not built
      from it yet will be, and then pushed (what a dry run shows after a planned build)

    **Example:**

    .. code:: python

        images.pushed(
            name="Push the lab image",
            image="127.0.0.1:5000/lab:1.0",
            registry="127.0.0.1:5000",
            content_hash="9f86d081...",
        )
    """
    prefix = f"{registry}/"
    if not image.startswith(prefix) or ":" not in image[len(prefix) :]:
        raise OperationError(f"{image} is not an image of registry {registry} with a tag")
    repository, tag = image[len(prefix) :].rsplit(":", 1)

    local = _inspect(image)
    remote = host.get_fact(RegistryTag, registry=registry, repository=repository, tag=tag)
    if host.state.is_executing:
        if local is None:
            raise OperationError(f"no image {image} on the host to push")
        if remote is None or remote["status"] == 0:
            raise OperationError(
                f"the registry at http://{registry} does not answer: it runs in the hub's "
                "compose project (tasks/hub.py)"
            )
    current = (
        local is not None
        and (content_hash is None or _content_hash(local) == content_hash)
        and remote is not None
        and remote["digest"] is not None
        and f"{prefix}{repository}@{remote['digest']}" in (local.get("RepoDigests") or [])
    )
    if current:
        host.noop(f"registry {registry} has {repository}:{tag} as this image")
        return

    yield StringCommand("docker", "push", QuoteString(image))
