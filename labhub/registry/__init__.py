"""
The lab's private registry as labhub reads and prunes it: the client that reads and deletes
(``client``, standard library only, shipped to the host and into the hub image) and the pruning
policy (``policy``).
"""

from __future__ import annotations

from pathlib import Path

CLIENT_SOURCE_FILE = Path(__file__).with_name("client.py")
_SHIPPED_END = "# Everything above this line is shipped to hosts"
_HEREDOC = "LABHUB_REGISTRY_PROGRAM"


def client_source() -> str:
    """The client's source up to the line that marks the end of what is shipped."""
    source = CLIENT_SOURCE_FILE.read_text()
    return source.split(_SHIPPED_END, 1)[0]


def remote_program(argv: list[str], shell_args: str = "", always_succeed: bool = False) -> str:
    """
    A shell command that runs the client on the host with ``python3`` (its source in a quoted
    heredoc, so nothing in it is expanded) and prints what it prints. ``argv`` is embedded as a
    Python literal; ``shell_args`` (already quoted shell words, such as ``--storage "$data"``)
    are appended to it at run time. Nothing whose size grows with the registry goes on the
    command line: the deletions are read from a file. ``always_succeed`` makes the command exit
    0 whatever happens (facts must), leaving errors to the JSON it prints.
    """
    call = f"sys.exit(main({argv!r} + sys.argv[1:]))"
    program = client_source() + "\n" + call + "\n"
    assert f"\n{_HEREDOC}\n" not in program
    tail = " || true" if always_succeed else ""
    args = f" {shell_args}" if shell_args else ""
    # The heredoc ends with a line break: callers may append to the command (")" of a subshell).
    return f"python3 -{args} <<'{_HEREDOC}'{tail}\n{program}{_HEREDOC}\n"
