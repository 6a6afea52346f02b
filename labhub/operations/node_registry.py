"""
The registry the lab nodes pull from: its login made on the hub server, the files a node needs
copied to it from the hub server without their content ever shown, and the lab images
pre-pulled on each node. Paired with ``labhub.facts.node_registry``.
"""

from __future__ import annotations

import base64
import io

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, OperationError, QuoteString, StringCommand, operation
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS
from pyinfra.facts.docker import DockerImage
from pyinfra.facts.files import File, Sha256File

from labhub.commands import reported, script_command
from labhub.facts import read
from labhub.facts.accounts import LoginUser
from labhub.facts.node_registry import RegistryLogin
from labhub.facts.registry import RegistryTag
from labhub.node_registry import LOGIN_SCRIPT
from labhub.pyinfra_api import connector_arguments
from labhub.stack import CONTEXT_HASH_LABEL


def _report_made(host, status: bool, output) -> None:
    for line in output.stdout_lines:
        host.log(f"registry login: {line}")


@operation()
def login(
    password: str,
    env: str,
    config: str,
    variable: str,
    user: str,
    image: str,
    config_before: str,
    config_after: str,
    project: str,
    service: str,
):
    """
    The login lab nodes pull from the hub server's registry with, on the hub server (root only,
    ``files/registry-login.sh``): a password generated there once, its bcrypt hash made by the
    proxy image as the proxy's environment, and the Docker client configuration that logs in with
    it. Only what is missing or stale is made; the password is never printed nor on a command
    line.

    + password: the password's file
    + env: the proxy's environment file (``variable=<hash>``)
    + config: the Docker client configuration (``config.json``)
    + variable: the environment variable of the hash
    + user: the login's user name
    + image: the proxy image, whose ``caddy hash-password`` makes the hash
    + config_before: the configuration's JSON before its auth value
    + config_after: the configuration's JSON after it
    + project: the hub's compose project
    + service: its proxy's service, restarted when the hash changed under it

    **Example:**

    .. code:: python

        node_registry.login(
            name="Make the nodes' registry login",
            password="/etc/labhub/registry/password",
            env="/etc/labhub/registry/proxy.env",
            config="/etc/labhub/registry/docker/config.json",
            variable="LABHUB_NODE_REGISTRY_HASH",
            user="labhub",
            image="caddy:2",
            config_before='{"auths": {"hub.lab:5443": {"auth": "',
            config_after='"}}}\\n',
            project="labhub",
            service="proxy",
        )
    """
    args = (password, env, config, variable, user, image, config_before, config_after)
    todo = read(
        host, RegistryLogin, **dict(zip(_LOGIN_ARGS, args)), project=project, service=service
    )
    if not todo:
        host.noop("the nodes' registry login is made")
        return
    host.log(f"registry login: to make: {', '.join(todo)}")
    yield reported(
        script_command(LOGIN_SCRIPT, "write", *args, project, service, interpreter="sh"),
        _report_made,
    )


_LOGIN_ARGS = ("password", "env", "config", "variable", "user", "image", "before", "after")


def _source_arguments(source) -> dict:
    """The connector arguments (``_sudo``...) another server of the inventory is reached with."""
    return {
        key: source.data.get(key)
        for key in CONNECTOR_ARGUMENT_KEYS
        if source.data.get(key) is not None
    }


@operation()
def copied_from(source, src: str, dest: str, mode: str = "0600", folder_mode: str = "0700"):
    """
    A root-owned copy on the host of a file of another server of the inventory (``source``),
    read there when this operation runs: a file that an earlier operation of the same deploy
    makes there (a generated login, a CA the proxy made) is copied in one run. Compared by
    SHA-256; the content goes from one server to the other through pyinfra's own memory, never
    printed (not even at ``-vvv``), never on a command line, never in a file anyone else can
    read, as ``labhub.operations.secret_files.put`` uploads.

    + source: the pyinfra host the file is read from
    + src: the file on ``source``
    + dest: the file on the host
    + mode: its mode
    + folder_mode: the mode of its folder, made when missing

    **Example:**

    .. code:: python

        node_registry.copied_from(
            name="Copy the registry login from the hub server",
            source=hub_server(host),
            src="/etc/labhub/registry/docker/config.json",
            dest="/etc/labhub/registry/docker/config.json",
        )
    """
    wanted = read(source, Sha256File, path=src)
    if wanted is None and host.state.is_executing:
        raise OperationError(f"{source.name} has no {src} to copy to {host.name}")
    current = host.get_fact(File, path=dest)
    current_sum = host.get_fact(Sha256File, path=dest) if current else None
    if (
        current
        and current_sum == wanted
        and (current["user"], current["group"], current["mode"]) == ("root", "root", int(mode))
    ):
        host.noop(f"{dest} is {source.name}'s {src}")
        return

    folder = dest.rsplit("/", 1)[0]
    yield StringCommand("install", "-d", "-m", folder_mode, QuoteString(folder))
    # Made empty with its owner and mode first: the content is never readable by others.
    yield StringCommand(
        "install", "-m", mode, "-o", "root", "-g", "root", "/dev/null", QuoteString(dest)
    )
    temp = host.get_temp_filename(dest)
    login = host.get_fact(LoginUser)
    yield StringCommand("install", "-m", "0600", "-o", QuoteString(login), "/dev/null", temp)
    source_arguments = _source_arguments(source)
    arguments = connector_arguments(host)

    def copy(state, host) -> bool:
        status, output = source.run_shell_command(
            StringCommand("base64", "-w0", QuoteString(src)),
            print_output=False,
            print_input=False,
            **source_arguments,
        )
        if not status:
            logger.error(f"{source.name}: cannot read {src}: {output.stderr}")
            return False
        content = base64.b64decode("".join(output.stdout_lines))
        return host.put_file(
            io.BytesIO(content),
            dest,
            remote_temp_filename=temp,
            print_output=False,
            print_input=False,
            **arguments,
        )

    yield FunctionCommand(copy, (), {})
    yield StringCommand("rm", "-f", temp)


@operation()
def pulled(
    image: str,
    source,
    registry: str,
    repository: str,
    tag: str,
    docker_config: str,
    content_hash: str | None = None,
):
    """
    A lab image pulled onto the host (a lab node) from the hub server's registry, so that a lab
    spawned there never waits for a pull: pulled unless the host's engine has the digest the
    registry's tag points at now (read on the hub server, ``source``, when this operation runs:
    after the hub pushed). In a dry run, an image whose build is about to change (its
    ``content_hash`` label differs) is planned too.

    + image: the image as the host pulls it, ``<host:port>/<repository>:<tag>``
    + source: the hub server (pyinfra host) whose registry has the image
    + registry: the registry as the hub server reaches it (``127.0.0.1:5000``)
    + repository: the image's repository in the registry
    + tag: its tag
    + docker_config: the Docker client configuration folder that logs in to the registry
    + content_hash: the hash the hub builds the image from (its label)

    **Example:**

    .. code:: python

        node_registry.pulled(
            name="Pre-pull hub.lab:5443/lab:1.0",
            image="hub.lab:5443/lab:1.0",
            source=hub_server(host),
            registry="127.0.0.1:5000",
            repository="lab",
            tag="1.0",
            docker_config="/etc/labhub/registry/docker",
        )
    """
    name = image.rsplit(":", 1)[0]
    remote = read(source, RegistryTag, registry=registry, repository=repository, tag=tag)
    digest = (remote or {}).get("digest")
    found = read(host, DockerImage, object_id=image)
    local = found[0] if found else {}
    labels = (local.get("Config") or {}).get("Labels") or {}
    current = digest is not None and f"{name}@{digest}" in (local.get("RepoDigests") or [])
    if (
        not host.state.is_executing
        and content_hash
        and labels.get(CONTEXT_HASH_LABEL) != (content_hash)
    ):
        current = False
    if host.state.is_executing and digest is None:
        raise OperationError(
            f"{source.name}'s registry has no {repository}:{tag} (status "
            f"{(remote or {}).get('status')}): tasks/images.py pushes it first"
        )
    if current:
        host.noop(f"{image} is the registry's {digest}")
        return
    yield StringCommand(
        "docker", "--config", QuoteString(docker_config), "pull", QuoteString(image)
    )
