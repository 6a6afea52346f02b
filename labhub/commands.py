"""
Every shell snippet the deploy sends, built one way: words quoted by shlex (``command_line``), the
compose command line, one wait ("until it answers or the time is up"), one lookup each for a
compose service's container, a container's mount and a served certificate, and one way to run
a shipped script with its arguments. Facts and operations build their commands from these.

The wait and the lookups are shell functions (``FUNCTIONS``), so that a shipped script (its
procedure too long for a string) uses the same ones: ``shell`` puts them before a command's
lines, and ``script_command`` before a shell script's text.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyinfra import host
from pyinfra.api import FunctionCommand, StringCommand
from pyinfra.api.util import print_host_combined_output

from labhub.pyinfra_api import connector_arguments
from labhub.registry import CLIENT_SOURCE_FILE


@dataclass(frozen=True)
class Expanded:
    """A word the shell expands when the command runs (a variable, a command's output),
    double-quoted so that it stays one word."""

    text: str


def variable(name: str) -> Expanded:
    """``"$name"``."""
    assert name.isidentifier()
    return Expanded(f'"${name}"')


def output_of(snippet: str) -> Expanded:
    """``"$(snippet)"``: what a command prints, as one word."""
    return Expanded(f'"$({snippet})"')


Word = str | Expanded


def command_line(*words: Word) -> str:
    """A command line: each word quoted (``Expanded`` ones expand when it runs)."""
    return " ".join(
        word.text if isinstance(word, Expanded) else shlex.quote(word) for word in words
    )


def compose_command(compose_file: str, project: str, *args: Word) -> str:
    """A ``docker compose`` command line for a project: the one way labhub runs compose."""
    return command_line("docker", "compose", "-f", compose_file, "-p", project, *args)


# POSIX sh (dash on the host, bash for bash scripts); their variables are prefixed with labhub_,
# the names being global in sh.
FUNCTIONS = r"""# labhub's shell functions (labhub/commands.py)
# labhub_wait [--while ALIVE] SECONDS COMMAND [ARG...]: runs COMMAND once a second until it
# succeeds; fails (1) once SECONDS have passed, or (2) as soon as the command ALIVE fails.
labhub_wait() {
    labhub_alive=true
    if [ "$1" = --while ]; then labhub_alive=$2; shift 2; fi
    labhub_end=$(($(date +%s) + $1)); shift
    until "$@"; do
        "$labhub_alive" || return 2
        [ "$(date +%s)" -lt "$labhub_end" ] || return 1
        sleep 1
    done
}
# labhub_ask [--in CONTAINER] URL [CURL_ARG...]: asks URL with curl, from the host or inside
# CONTAINER (a port the host does not reach); adds "STATUS URL" to $labhub_asked (000: no
# answer). Succeeds on a 200.
labhub_ask() {
    labhub_inside= labhub_in=
    if [ "$1" = --in ]; then labhub_inside=1 labhub_in=$2; shift 2; fi
    labhub_url=$1; shift
    set -- curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$labhub_url"
    if [ -n "$labhub_inside" ]; then set -- docker exec "$labhub_in" "$@"; fi
    labhub_code=$("$@" 2>/dev/null)
    labhub_asked="${labhub_asked-}${labhub_code:-000} $labhub_url
"
    [ "$labhub_code" = 200 ]
}
# labhub_container PROJECT SERVICE: the id of the compose service's container (not of a one-off
# `compose run`); nothing when there is none.
labhub_container() {
    docker ps --all --quiet --filter "label=com.docker.compose.project=$1" \
        --filter "label=com.docker.compose.service=$2" \
        --filter label=com.docker.compose.oneoff=False 2>/dev/null | head -n 1
}
# labhub_mount CONTAINER OUT FIELD VALUE: the OUT (Source, Destination) of the container's mount
# whose FIELD is VALUE (in a Go raw string: any path without a backquote); nothing when none.
labhub_mount() {
    docker container inspect --format \
        "{{range .Mounts}}{{if eq .$3 \`$4\`}}{{.$2}}{{end}}{{end}}" "$1" 2>/dev/null
}
"""


def shell(*lines: str) -> str:
    """A command of ``lines`` that may use ``FUNCTIONS``."""
    return FUNCTIONS + "\n".join(lines) + "\n"


def wait_command(seconds: int, snippet: str, alive: str | None = None) -> str:
    """
    Shell (for ``shell``): ``snippet`` (a simple command) run once a second until it succeeds,
    for up to ``seconds``; with ``alive`` (a command), no longer once that fails. Its status: 0
    when it succeeded, 1 when the time was up, 2 when ``alive`` failed. The one wait of labhub.
    """
    condition = f"--while {shlex.quote(alive)} " if alive else ""
    return f"labhub_wait {condition}{int(seconds)} {snippet}"


def http_wait_command(
    urls: Mapping[str, Sequence[str]] | Sequence[str], wait: int, container: Word | None = None
) -> str:
    """
    Shell (for ``shell``): asks every URL (``{url: curl arguments}``: a CA to trust, a pinned
    key, a name to resolve) until they all answer 200, again each second for up to ``wait``
    seconds (0: once), from the host or inside ``container``. Prints ``STATUS URL`` lines of
    the last round (``000``: no answer, or not with a certificate its arguments accept); its
    status is 0 when all answered 200.
    """
    if not isinstance(urls, Mapping):
        urls = {url: () for url in urls}
    inside = ("--in", container) if container is not None else ()
    asks = "".join(
        f"{command_line('labhub_ask', *inside, url, *args)} || labhub_all=1; "
        for url, args in urls.items()
    )
    return (
        f'labhub_round() {{ labhub_asked=; labhub_all=0; {asks}return "$labhub_all"; }}\n'
        f"{wait_command(wait, 'labhub_round')}; labhub_waited=$?\n"
        'printf %s "$labhub_asked"; [ "$labhub_waited" = 0 ]'
    )


def container_command(project: str, service: str) -> str:
    """Shell (for ``shell``): prints the id of a compose service's container (not of a one-off
    ``compose run``), nothing when it has none."""
    return command_line("labhub_container", project, service)


def mount_command(
    container: Word, value: str, field: str = "Destination", out: str = "Source"
) -> str:
    """Shell (for ``shell``): prints the ``out`` of the container's mount whose ``field`` is
    ``value`` (by default: where on the host the folder mounted at ``value`` is)."""
    return command_line("labhub_mount", container, out, field, value)


def served_certificate_command(
    address: str, server_name: str, fields: Sequence[str] = ("-subject", "-issuer", "-enddate")
) -> str:
    """Shell: openssl's ``fields`` lines (``-enddate``: ``notAfter=...``) of the certificate
    ``address`` (``host:port``) serves for ``server_name``; nothing when nothing answered TLS."""
    connect = command_line("openssl", "s_client", "-connect", address, "-servername", server_name)
    return (
        f"{connect} </dev/null 2>/dev/null | "
        f"{command_line('openssl', 'x509', '-noout', *fields)} 2>/dev/null"
    )


# Ends a script's text; no line of a script is this.
_SCRIPT_END = "LABHUB_SCRIPT"
_SHELLS = ("sh", "bash")


def script_command(path: Path, *args: Word, interpreter: str = "bash") -> str:
    """
    Shell: runs a shipped script (a file of labhub's) with ``args``, quoted. Its text goes in a
    quoted heredoc on file descriptor 3, which ``interpreter`` reads as ``/dev/fd/3``: nothing
    in it is expanded, no program started on the host gets it as an argument (the one command
    line the host's shell gets is the bound: one argument holds at most 128 kB, and the
    registry client's is about 35 kB), and the script's own standard input stays free (a child
    reading it would otherwise eat the rest of a shell script). A shell script runs after
    ``FUNCTIONS``. The command ends with a line break: more lines may follow.
    """
    text = path.read_text()
    if interpreter in _SHELLS:
        text = FUNCTIONS + text
    assert _SCRIPT_END not in text.splitlines()
    return (
        f"{command_line(interpreter, '/dev/fd/3', *args)} 3<<'{_SCRIPT_END}'\n"
        f"{text.rstrip()}\n{_SCRIPT_END}\n"
    )


def registry_client_command(*args: Word) -> str:
    """Shell: labhub's registry client (``labhub/registry/client.py``) run on the host with
    ``python3`` and ``args`` (its command line)."""
    return script_command(CLIENT_SOURCE_FILE, *args, interpreter="python3")


def reported(command: str, report: Callable, live: bool = False) -> FunctionCommand:
    """
    A shell command run by pyinfra as a ``FunctionCommand`` that hands the host, its success and
    its output to ``report(host, status, output)`` once it ran (to tell the admin what happened
    in labhub's own words). Called inside an operation: it runs with that operation's connector
    arguments (``_sudo``...), and a failure's output is printed as pyinfra prints a failed
    command's. With ``live``, its output is printed line by line as it comes (progress of a
    long command), whatever the verbosity.
    """
    arguments = connector_arguments(host)

    def run(state, host) -> bool:
        printed = live or state.print_output
        status, output = host.run_shell_command(
            StringCommand(command), print_output=printed, **arguments
        )
        if not status and not printed:
            print_host_combined_output(host, output)
        report(host, status, output)
        return status

    return FunctionCommand(run, (), {})
