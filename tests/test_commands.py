"""
The shell the deploy sends (``labhub.commands``), run under ``/bin/sh`` (and bash for bash
scripts) against stand-ins of ``curl``, ``docker``, ``openssl``, ``date`` and ``sleep`` on
``PATH`` that record their arguments and answer as each test says; time passes only when the
stand-in ``sleep`` is called.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labhub import commands
from labhub.commands import (
    command_line,
    compose_command,
    container_command,
    http_wait_command,
    mount_command,
    output_of,
    script_command,
    served_certificate_command,
    shell,
    variable,
    wait_command,
)
from labhub.facts.compose import HttpStatus, HttpStatuses
from labhub.facts.proxy import ProxyFile, ServedCertificate
from labhub.facts.registry import RegistryPruneState
from labhub.facts.status import LabStatus
from labhub.operations.hub_database import UPGRADE_SCRIPT
from labhub.settings import ROOT

# Answers by rules: the first rule whose words are all in its arguments answers, with its
# next answer (the last one again once they are used up). An answer: [stdout, exit status].
STUB = r"""#!PYTHON -S
import json, os, re, sys
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
folder = os.environ["STUBS"]
with open(os.path.join(folder, "calls.jsonl"), "a") as log:
    log.write(json.dumps([name, *args]) + "\n")
if name in ("date", "sleep"):
    clock = os.path.join(folder, "clock")
    now = int(open(clock).read()) if os.path.exists(clock) else 1000
    if name == "sleep":
        open(clock, "w").write(str(now + int(args[0])))
    else:
        print(now)
    sys.exit(0)
rules = json.load(open(os.path.join(folder, "rules.json"))).get(name, [])
for number, (words, answers) in enumerate(rules):
    if all(any(word in arg for arg in args) for word in words):
        counter = os.path.join(folder, f"{name}-{number}.count")
        count = int(open(counter).read()) if os.path.exists(counter) else 0
        open(counter, "w").write(str(count + 1))
        out, status = answers[min(count, len(answers) - 1)]
        if out == "MOUNTS":
            # docker container inspect's template of labhub_mount, run on the configured mounts.
            template = args[args.index("--format") + 1]
            match = re.search(r"eq \.(\w+) `(.*)`\}\}\{\{\.(\w+)\}\}", template, re.S)
            field, value, wanted = match.groups()
            mounts = json.load(open(os.path.join(folder, "mounts.json")))
            out = "".join(m[wanted] for m in mounts if m[field] == value) + "\n"
        sys.stdout.write(out)
        sys.exit(status)
sys.exit(0)
"""


class Host:
    """A folder of stand-in programs, and what they were called with."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.bin = folder / "bin"
        self.bin.mkdir()
        for name in ("curl", "docker", "openssl", "date", "sleep"):
            path = self.bin / name
            path.write_text(STUB.replace("PYTHON", sys.executable, 1))
            path.chmod(0o755)
        self.answer()

    def answer(self, mounts: list[dict] | None = None, **rules: list) -> None:
        (self.folder / "rules.json").write_text(json.dumps(rules))
        (self.folder / "mounts.json").write_text(json.dumps(mounts or []))

    def run(self, script: str, shell_program: str = "/bin/sh") -> subprocess.CompletedProcess:
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "STUBS": str(self.folder)}
        return subprocess.run(
            [shell_program, "-c", script],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )

    def calls(self, name: str) -> list[list[str]]:
        log = self.folder / "calls.jsonl"
        lines = log.read_text().splitlines() if log.exists() else []
        return [call[1:] for call in map(json.loads, lines) if call[0] == name]

    def slept(self) -> int:
        return sum(int(call[0]) for call in self.calls("sleep"))


@pytest.fixture
def host(tmp_path) -> Host:
    return Host(tmp_path)


# Words that break a command line pasted together.
ODD = ["two words", "it's", 'say "hi"', "$HOME", "`id`", "$(id)", "a\nb", "back\\slash", "-n", ""]


@pytest.mark.parametrize("shell_program", ["/bin/sh", "/bin/bash"])
def test_command_line_keeps_every_word_as_it_is(host, shell_program):
    result = host.run(command_line("printf", "[%s]\n", *ODD), shell_program)
    assert result.stdout == "".join(f"[{word}]\n" for word in ODD)


def test_expanded_words_expand_when_the_command_runs(host):
    printed = command_line("printf", "[%s]", variable("x"), output_of("echo $x"))
    result = host.run(f"x='a b'; {printed}")
    assert result.stdout == "[a b][a b]"


def test_compose_command_names_the_file_and_project(host):
    host.run(compose_command("/opt/my lab/compose.yaml", "lab's", "up", "--detach"))
    assert host.calls("docker") == [
        ["compose", "-f", "/opt/my lab/compose.yaml", "-p", "lab's", "up", "--detach"]
    ]


def curl_url(call: list[str]) -> str:
    return call[-1]


def test_wait_succeeds_once_curl_answers_200_on_the_third_try(host):
    host.answer(curl=[[[], [["000", 7], ["503", 0], ["200", 0]]]])
    result = host.run(shell(http_wait_command(["http://127.0.0.1:8000/hub/health"], 60)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "200 http://127.0.0.1:8000/hub/health\n"
    assert len(host.calls("curl")) == 3 and host.slept() == 2


def test_wait_gives_up_once_the_time_is_up(host):
    host.answer(curl=[[[], [["000", 7]]]])
    result = host.run(shell(http_wait_command(["http://127.0.0.1:5000/v2/"], 5)))
    assert result.returncode == 1
    assert result.stdout == "000 http://127.0.0.1:5000/v2/\n"
    assert host.slept() == 5 and len(host.calls("curl")) == 6


def test_no_wait_asks_once(host):
    host.answer(curl=[[[], [["503", 0]]]])
    result = host.run(shell(http_wait_command(["http://a/"], 0)))
    assert (result.returncode, result.stdout, host.slept()) == (1, "503 http://a/\n", 0)


def test_wait_asks_every_url_with_its_own_curl_arguments_until_all_answer(host):
    hub, registry = "https://hub.lab.test/hub/health", "http://127.0.0.1:5000/v2/"
    host.answer(curl=[[[hub], [["200", 0]]], [[registry], [["000", 7], ["200", 0]]]])
    trust = ("--resolve", "hub.lab.test:443:127.0.0.1", "--cacert", "/opt/my lab/ca $1.crt")
    result = host.run(shell(http_wait_command({hub: trust, registry: ()}, 30)))
    assert result.returncode == 0
    assert result.stdout == f"200 {hub}\n200 {registry}\n"
    calls = host.calls("curl")
    assert [curl_url(call) for call in calls] == [hub, registry, hub, registry]
    assert all(call[-1 - len(trust) : -1] == list(trust) for call in calls if call[-1] == hub)
    assert all("--cacert" not in call for call in calls if call[-1] == registry)


def test_wait_inside_a_container(host):
    url = "http://127.0.0.1:8000/hub/health"
    host.answer(docker=[[["ps"], [["c0ffee\n", 0]]], [["exec"], [["000", 7], ["200", 0]]]])
    inside = output_of(container_command("my lab", "hub"))
    result = host.run(shell(http_wait_command([url], 10, container=inside)))
    assert result.returncode == 0 and result.stdout == f"200 {url}\n"
    execs = [call for call in host.calls("docker") if call[0] == "exec"]
    assert len(execs) == 2
    assert execs[0][:3] == ["exec", "c0ffee", "curl"] and execs[0][-1] == url
    assert host.calls("curl") == []


def test_wait_stops_as_soon_as_what_it_waits_for_is_gone(host):
    result = host.run(shell(f"alive() {{ return 1; }}; {wait_command(60, 'false', alive='alive')}"))
    assert result.returncode == 2 and host.slept() == 0


CONTAINER_FILTERS = [
    "label=com.docker.compose.project=it's $lab",
    "label=com.docker.compose.service=the hub",
    "label=com.docker.compose.oneoff=False",
]


@pytest.mark.parametrize("listed, found", [("4a1\n9b2\n", "4a1\n"), ("", "")])
def test_container_lookup(host, listed, found):
    host.answer(docker=[[["ps"], [[listed, 0]]]])
    result = host.run(shell(container_command("it's $lab", "the hub")))
    assert result.stdout == found
    (call,) = host.calls("docker")
    assert call[:3] == ["ps", "--all", "--quiet"]
    assert [call[i + 1] for i, word in enumerate(call) if word == "--filter"] == CONTAINER_FILTERS


MOUNTS = [
    {
        "Source": "/var/lib/docker/volumes/labhub_hub-data/_data",
        "Destination": "/srv/jupyterhub/data",
    },
    {"Source": "/opt/my lab/registry/config.yml", "Destination": "/etc/docker/registry/config.yml"},
    {"Source": '/srv/it\'s "$odd"', "Destination": "/data"},
]


@pytest.mark.parametrize(
    "value, field, out, found",
    [
        (
            "/srv/jupyterhub/data",
            "Destination",
            "Source",
            "/var/lib/docker/volumes/labhub_hub-data/_data",
        ),
        (
            "/opt/my lab/registry/config.yml",
            "Source",
            "Destination",
            "/etc/docker/registry/config.yml",
        ),
        ("/data", "Destination", "Source", '/srv/it\'s "$odd"'),
        ("/nowhere", "Destination", "Source", ""),
    ],
)
def test_mount_lookup(host, value, field, out, found):
    host.answer(docker=[[["container", "inspect"], [["MOUNTS", 0]]]], mounts=MOUNTS)
    result = host.run(shell(f"cid=abc; {mount_command(variable('cid'), value, field, out)}"))
    assert result.stdout.strip("\n") == found
    assert host.calls("docker")[0][-1] == "abc"


def test_served_certificate(host):
    host.answer(
        openssl=[
            [["s_client"], [["-----BEGIN CERTIFICATE-----\n", 0]]],
            [["x509"], [["subject=CN = hub.lab.test\nnotAfter=Mar  1 2027\n", 0]]],
        ]
    )
    result = host.run(served_certificate_command("127.0.0.1:443", "hub.lab.test"))
    assert result.stdout.startswith("subject=CN = hub.lab.test\n")
    # The two ends of a pipe: either may start first.
    s_client, x509 = sorted(host.calls("openssl"))
    assert s_client == ["s_client", "-connect", "127.0.0.1:443", "-servername", "hub.lab.test"]
    assert x509 == ["x509", "-noout", "-subject", "-issuer", "-enddate"]


@pytest.mark.parametrize(
    "interpreter, source",
    [
        ("sh", 'printf "[%s]\\n" "$@"\ncat >/dev/null\necho after\n'),
        ("bash", 'printf "[%s]\\n" "$@"\ncat >/dev/null\necho after\n'),
        (
            sys.executable,
            'import sys\nsys.stdin.read()\nprint("".join(f"[{a}]\\n" for a in '
            'sys.argv[1:]), end="")\nprint("after")\n',
        ),
    ],
)
def test_a_shipped_script_gets_its_arguments_and_its_own_standard_input(
    host, tmp_path, interpreter, source
):
    script = tmp_path / "script"
    script.write_text(source)
    # A child reading standard input does not eat the rest of the script.
    result = host.run(f"( {script_command(script, *ODD, interpreter=interpreter)}); echo next")
    assert result.stdout == "".join(f"[{word}]\n" for word in ODD) + "after\nnext\n"


def test_shell_scripts_have_labhubs_functions(host, tmp_path):
    script = tmp_path / "script.sh"
    script.write_text('labhub_wait 3 false; echo "waited $?"\n')
    result = host.run(script_command(script, interpreter="sh"))
    assert result.stdout == "waited 1\n" and host.slept() == 3


def test_the_registry_client_runs_from_its_heredoc(host):
    result = host.run(commands.registry_client_command("help", "it's"))
    assert result.returncode == 2 and "Command line" in result.stderr


# The facts' commands, as pyinfra runs them (inside a subshell), and what they make of it.


def test_http_statuses_fact(host):
    host.answer(curl=[[["http://a/"], [["200", 0]]], [["http://b/"], [["000", 7]]]])
    fact = HttpStatuses()
    result = host.run(f"( {fact.command(['http://a/', 'http://b/'], wait=2)});")
    assert result.returncode == 0
    assert fact.process(result.stdout.splitlines()) == {"http://a/": 200, "http://b/": 0}


def test_http_status_fact(host):
    host.answer(curl=[[[], [["000", 7], ["200", 0]]]])
    fact = HttpStatus()
    result = host.run(f"( {fact.command('https://hub/', wait=5, curl_args=('--cacert', 'x'))});")
    assert fact.process(result.stdout.splitlines()) == 200
    assert host.calls("curl")[0][-3:] == ["--cacert", "x", "https://hub/"]


def test_proxy_file_fact_waits_for_the_file(host):
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    host.answer(docker=[[["exec"], [["", 1], ["", 1], [pem, 0]]]])
    fact = ProxyFile()
    command = fact.command("/opt/lab/compose.yaml", "labhub", "proxy", "/data/root.crt", wait=10)
    result = host.run(f"( {command});")
    assert result.returncode == 0
    assert fact.process(result.stdout.splitlines()) == pem and host.slept() == 2
    assert host.calls("docker")[0][-5:] == ["exec", "-T", "proxy", "cat", "/data/root.crt"]


def test_proxy_file_fact_is_empty_when_the_file_never_appears(host):
    host.answer(docker=[[["exec"], [["", 1]]]])
    fact = ProxyFile()
    result = host.run(f"( {fact.command('/c.yaml', 'labhub', 'proxy', '/x', wait=3)});")
    assert result.returncode == 0 and fact.process(result.stdout.splitlines()) == ""


def test_served_certificate_fact_when_nothing_answers(host):
    host.answer(openssl=[[[], [["", 1]]]])
    result = host.run(f"( {ServedCertificate().command('127.0.0.1', 443, 'hub.lab.test')});")
    assert result.returncode == 0 and result.stdout == ""


def test_registry_prune_state_fact(host, tmp_path):
    (tmp_path / "prune-pending").write_text("collecting")
    host.answer(
        docker=[
            [["ps"], [["r1\n", 0]]],
            [["r1"], [["registry exited\n", 0]]],
            [["inspect"], [["", 1]]],
        ]
    )
    fact = RegistryPruneState()
    result = host.run(f"( {fact.command(str(tmp_path), 'labhub', 'registry')});")
    assert fact.process(result.stdout.splitlines()) == {
        "locked": None,
        "pending": "collecting",
        "collector": None,
        "registry": "exited",
        # Stopped for a collection that did not finish.
        "interrupted": True,
        # No plan left: nothing its deletions could have left behind.
        "leftovers": [],
    }


def test_lab_status_fact(host, tmp_path):
    registry_data = tmp_path / "registry data"
    registry_data.mkdir()
    host.answer(
        curl=[
            [["/hub/health"], [["200", 0]]],
            [["/v2/"], [["000", 7]]],
            [["/hub/api"], [['{"version": "5.2.1"}', 0]]],
        ],
        docker=[
            [["--filter"], [["h1\n", 0]]],
            [
                ["StartedAt"],
                [["/labhub-hub-1\trunning\t2026-11-30T10:00:00Z\tlabhub/hub:abc\thub\n", 0]],
            ],
            [["ps"], [["h1\n", 0]]],
            [["python3"], [["alice\n", 0]]],
            [["Mounts"], [["MOUNTS", 0]]],
            [["DockerRootDir"], [["/nonexistent/docker\n", 0]]],
        ],
        mounts=[{"Source": str(registry_data), "Destination": "/var/lib/registry"}],
    )
    fact = LabStatus()
    command = fact.command(
        "http://127.0.0.1:8000",
        "http://127.0.0.1:5000",
        "labhub",
        "hub",
        "registry",
        "/var/lib/registry",
        "/srv/jupyterhub/data/passwords.dbm",
        [],
        [],
        hub_curl_args=("--insecure",),
    )
    result = host.run(f"( {command});")
    found = fact.process(result.stdout.splitlines())
    assert found["http"] == {"hub": 200, "registry": 0}
    assert found["hub_version"] == "5.2.1" and found["passwords"] == ["alice"]
    assert found["registry_data"] == str(registry_data)
    assert str(registry_data) in found["df"] and str(registry_data) in found["du"]
    health = [call for call in host.calls("curl") if call[-1].endswith("/hub/health")]
    assert health and health[0][-2] == "--insecure"


# The hub upgrade (files/hub-upgrade.sh) run the one way, with bash, against a stand-in docker.


def upgrade(host: Host, folder: Path, health: list, state: str) -> subprocess.CompletedProcess:
    host.answer(
        docker=[
            [["ps"], [["h1\n", 0]]],
            [["Mounts"], [["MOUNTS", 0]]],
            [["exec"], health],
            [["RestartCount"], [[f"{state}\n", 0]]],
        ],
        mounts=[{"Source": str(folder), "Destination": "/srv/jupyterhub/data"}],
    )
    return host.run(
        script_command(
            UPGRADE_SCRIPT,
            "/opt/my lab/compose.yaml",
            "labhub",
            "hub",
            "labhub/hub:old",
            "labhub/hub:new",
            "/srv/jupyterhub/data",
            "jupyterhub.sqlite",
            "/usr/local/lib/labhub/jupyterhub_config.py",
            "http://127.0.0.1:8000/hub/health",
            "3",
            str(folder / "hub dir"),
            str(folder / "previous"),
            str(folder / "state" / "hub-rolled-back"),
        )
    )


@pytest.fixture
def hub_folder(tmp_path) -> Path:
    folder = tmp_path / "hub data"
    folder.mkdir()
    (folder / "jupyterhub.sqlite").write_text("the database")
    # The stack's files as this run wrote them, and as hub_database.files_kept kept them before.
    for name, text in (("hub dir", "new"), ("previous", "old")):
        (folder / name / "hub").mkdir(parents=True)
        (folder / name / "compose.yaml").write_text(f"image: labhub/hub:{text}\n")
        (folder / name / "hub" / "settings.json").write_text(f'{{"{text}": true}}\n')
    return folder


def test_hub_upgrade_waits_for_the_new_hub(host, hub_folder):
    result = upgrade(host, hub_folder, [["000", 7], ["000", 7], ["200", 0]], "running 0")
    assert result.returncode == 0, result.stderr
    assert "labhub: the hub runs its new image" in result.stderr
    assert (hub_folder / "jupyterhub.sqlite.before-upgrade").read_text() == "the database"
    # Nothing kept for a way back any more, and no mark.
    assert not (hub_folder / "previous").exists()
    assert not (hub_folder / "state" / "hub-rolled-back").exists()
    assert (hub_folder / "hub dir" / "compose.yaml").read_text() == "image: labhub/hub:new\n"
    execs = [call for call in host.calls("docker") if call[0] == "exec"]
    assert len(execs) == 3 and execs[0][:3] == ["exec", "h1", "curl"]
    assert execs[0][-1] == "http://127.0.0.1:8000/hub/health"


def test_hub_upgrade_rolls_back_a_hub_that_stopped(host, hub_folder):
    result = upgrade(host, hub_folder, [["000", 7]], "restarting 1")
    assert result.returncode == 1
    assert (
        "labhub: the hub upgrade failed: the new hub stopped (state: restarting 1)" in result.stderr
    )
    assert "the rollback to labhub/hub:old failed too: the previous hub stopped" in result.stderr
    assert host.slept() == 0
    # The files from before the run are back, and the mark says what happened.
    assert (hub_folder / "hub dir" / "compose.yaml").read_text() == "image: labhub/hub:old\n"
    assert (hub_folder / "hub dir" / "hub" / "settings.json").read_text() == '{"old": true}\n'
    mark = (hub_folder / "state" / "hub-rolled-back").read_text().splitlines()
    assert mark[1:] == [
        "previous=labhub/hub:old",
        "failed=labhub/hub:new",
        "reason=the new hub stopped (state: restarting 1)",
        "outcome=rollback failed",
    ]
    # The test's host has a clock of its own.
    assert mark[0].startswith("at=")


def test_hub_upgrade_says_when_the_hub_did_not_answer_in_time(host, hub_folder):
    result = upgrade(host, hub_folder, [["000", 7]], "running 0")
    assert "the new hub did not answer within 3 s" in result.stderr
    assert host.slept() == 6  # the new hub's wait, then the rollback's


# The deploy's shell has one loop that waits.


def test_one_wait_loop_in_the_deploys_shell():
    loop = re.compile(r"\buntil\b.*;\s*do\b|\bwhile\s+:")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("labhub", "files", "tasks")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file() and path.suffix in ("", ".py", ".sh")
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if loop.search(line)
    ]
    assert len(found) == 1 and found[0].startswith("labhub/commands.py:"), found
