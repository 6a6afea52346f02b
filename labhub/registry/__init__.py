"""
The lab's private registry as labhub prunes it: the client that reads and deletes (``client``,
standard library only, shipped to the host), the pruning policy (``policy``), and where the
hub stack runs the registry (``RegistryStack``, from the names in ``labhub.hub``).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from labhub import hub
from labhub.hub import REGISTRY_DATA_PATH, registry_major
from labhub.settings import Settings

CLIENT_SOURCE_FILE = Path(__file__).with_name("client.py")
_SHIPPED_END = "# Everything above this line is shipped to hosts"
_HEREDOC = "LABHUB_REGISTRY_PROGRAM"

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
        return cls(
            url=f"http://{settings.registry_address}",
            compose_file=hub.compose_file(settings),
            project=hub.PROJECT,
            service=hub.REGISTRY_SERVICE,
            config_file=hub.remote_path(settings, hub.REGISTRY_CONFIG_FILE),
            config_path=hub.registry_config_path(settings),
            data_path=REGISTRY_DATA_PATH,
            major=registry_major(settings.registry_image),
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
