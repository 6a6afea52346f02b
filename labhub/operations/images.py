"""
Build images on the host and push them to a registry, each only when something changed.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import OperationError, StringCommand, operation
from pyinfra.api.command import QuoteString

from labhub.facts.docker_images import DockerImage, RegistryTag

CONTEXT_HASH_LABEL = "org.labhub.context-hash"


@operation()
def built(image: str, context: str, content_hash: str, build_args: dict[str, str] | None = None):
    """
    Build an image on the host from a build context there, unless the image already carries the
    context's content hash (a label the build sets).

    + image: tag to build, ``repository:tag``
    + context: build context folder on the host (with its Dockerfile)
    + content_hash: hash of everything the build reads, computed by the caller
    + build_args: ``--build-arg`` values

    **Example:**

    .. code:: python

        images.built(
            name="Build the lab image",
            image="127.0.0.1:5000/lab:1.0",
            context="/opt/labhub/build/lab-1.0",
            content_hash="9f86d081...",
            build_args={"BASE_IMAGE": "quay.io/jupyter/base-notebook:2025-01-20"},
        )
    """
    current = host.get_fact(DockerImage, image=image)
    if current is not None and current["labels"].get(CONTEXT_HASH_LABEL) == content_hash:
        host.noop(f"image {image} is built from this context")
        return

    args: list = ["docker", "build", "--tag", QuoteString(image),
                  "--label", QuoteString(f"{CONTEXT_HASH_LABEL}={content_hash}")]
    for key, value in (build_args or {}).items():
        args += ["--build-arg", QuoteString(f"{key}={value}")]
    args.append(QuoteString(context))
    yield StringCommand(*args)


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
    if not image.startswith(prefix) or ":" not in image[len(prefix):]:
        raise OperationError(f"{image} is not an image of registry {registry} with a tag")
    repository, tag = image[len(prefix):].rsplit(":", 1)

    local = host.get_fact(DockerImage, image=image)
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
        and (content_hash is None or local["labels"].get(CONTEXT_HASH_LABEL) == content_hash)
        and remote is not None
        and remote["digest"] is not None
        and f"{prefix}{repository}@{remote['digest']}" in local["repo_digests"]
    )
    if current:
        host.noop(f"registry {registry} has {repository}:{tag} as this image")
        return

    yield StringCommand("docker", "push", QuoteString(image))
