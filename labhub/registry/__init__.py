"""
The lab's private registry as labhub prunes it: the client that reads and deletes (``client``,
standard library only, shipped to the host), the pruning policy (``policy``), and where the
hub stack runs the registry (this module: the one place that names the compose file, service,
config path and data path).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from labhub.settings import Settings

CLIENT_SOURCE_FILE = Path(__file__).with_name("client.py")
_SHIPPED_END = "# Everything above this line is shipped to hosts"
_HEREDOC = "LABHUB_REGISTRY_PROGRAM"

# The hub stack's compose project (see templates/compose.yaml.j2 and labhub/hub.py).
COMPOSE_PROJECT = "labhub"
REGISTRY_SERVICE = "registry"
# Where the registry image keeps its data (the stack mounts a named volume there).
DATA_PATH = "/var/lib/registry"
# Where each registry major version reads its configuration from.
CONFIG_PATHS = {
    2: "/etc/docker/registry/config.yml",
    3: "/etc/distribution/config.yml",
}


def registry_major(image: str) -> int:
    """
    The distribution major version of a registry image by its tag: ``registry:3.0.0`` -> 3;
    anything else (``registry:2``, ``registry:2.8.3``, a digest, a stand-in) -> 2.
    """
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    match = re.match(r"v?(\d+)", tag)
    return 3 if match and int(match.group(1)) == 3 else 2


@dataclass(frozen=True)
class RegistryStack:
    """The registry service of the hub's compose project on a host."""

    url: str
    compose_file: str
    project: str
    service: str
    config_file: str
    config_path: str
    data_path: str
    major: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryStack:
        major = registry_major(settings.registry_image)
        return cls(
            url=f"http://{settings.registry_address}",
            compose_file=f"{settings.hub_dir}/compose.yaml",
            project=COMPOSE_PROJECT,
            service=REGISTRY_SERVICE,
            config_file=f"{settings.hub_dir}/registry/config.yml",
            config_path=CONFIG_PATHS[major],
            data_path=DATA_PATH,
            major=major,
        )

    def compose(self, *args: str) -> str:
        """A ``docker compose`` command line for this project, every word quoted."""
        words = ["docker", "compose", "-f", self.compose_file, "-p", self.project, *args]
        return " ".join(shlex.quote(w) for w in words)


def client_source() -> str:
    """The client's source up to the line that marks the end of what is shipped."""
    source = CLIENT_SOURCE_FILE.read_text()
    return source.split(_SHIPPED_END, 1)[0]


def remote_program(argv: list[str], plan: dict | None = None, always_succeed: bool = False) -> str:
    """
    A shell command that runs the client on the host with ``python3`` (its source in a quoted
    heredoc, so nothing in it is expanded) and prints its JSON. ``plan`` (for ``delete``) is
    embedded as a Python literal rather than passed as an argument, which has a size limit.
    ``always_succeed`` makes the command exit 0 whatever happens (facts must), leaving errors to
    the JSON it prints.
    """
    call = f"sys.exit(main({argv!r}, json.loads({json.dumps(plan)!r})))" if plan is not None \
        else f"sys.exit(main({argv!r}))"
    program = client_source() + "\n" + call + "\n"
    assert f"\n{_HEREDOC}\n" not in program
    tail = " || true" if always_succeed else ""
    # The heredoc ends with a line break: callers may append to the command (")" of a subshell).
    return f"python3 - <<'{_HEREDOC}'{tail}\n{program}{_HEREDOC}\n"
