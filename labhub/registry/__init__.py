"""
The lab's private registry as labhub reads and prunes it: the client that reads and deletes
(``client``, standard library only, shipped to the host and into the hub image) and the pruning
policy (``policy``).
"""

from __future__ import annotations

import json
from pathlib import Path

CLIENT_SOURCE_FILE = Path(__file__).with_name("client.py")
_SHIPPED_END = "# Everything above this line is shipped to hosts"
_HEREDOC = "LABHUB_REGISTRY_PROGRAM"


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
