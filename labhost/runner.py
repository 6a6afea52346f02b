"""
The pyinfra CLI of this environment, run as an admin runs it (from the project root, with an
inventory file), with its ``--json`` results at hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from labhost.server import PROJECT_ROOT, LabHostError


def write_secret(path: Path, content: str | bytes) -> Path:
    """Write a secret file (credentials, a password, a key) as an admin keeps one, readable by
    its owner alone: labhub refuses secret files others can read, as ssh does keys."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


# Every verbosity pyinfra has at once: -vvv prints what -v and -vv print and more, --debug what
# pyinfra itself does (each command, each upload).
LOUDEST = ("-vvv", "--debug")


def secret_parts(path: Path) -> list[str]:
    """What must never be seen of a secret file: each of its lines that holds secret material
    (a key's body lines, a ``password=`` value, a password file's line), not a PEM header."""
    parts = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("-----"):
            continue
        key, sep, value = line.partition("=")
        parts.append(value if sep and key in ("password", "pass") else line)
    return [part for part in parts if len(part) >= 8]


@dataclass
class PyinfraRun:
    """One ``pyinfra`` CLI run: exit code, output and the JSON results pyinfra printed."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict:
        start = self.stdout.find("{")
        if start < 0:
            raise LabHostError(f"pyinfra printed no JSON:\n{self.stdout}\n{self.stderr[-3000:]}")
        return json.loads(self.stdout[start:])

    @property
    def changed(self) -> int:
        """How many operations changed something (``results.totals.success`` of ``--json``)."""
        return self.result["results"]["totals"]["success"]

    @property
    def changed_operations(self) -> list[str]:
        return [op["name"] for op in self.result["results"]["operations"] if op["success"]]

    @property
    def planned_changes(self) -> list[str]:
        """Names of the operations a ``--dry`` run would (or might) change."""
        return [
            op["name"]
            for op in self.result["plan"]
            if op["hosts_with_change"] or op["hosts_with_conditional_change"]
        ]

    def check(self) -> PyinfraRun:
        if self.returncode != 0:
            raise LabHostError(
                f"{' '.join(self.argv)} exited {self.returncode}:\n"
                f"{self.stderr[-6000:]}\n{self.stdout[-2000:]}"
            )
        return self


def pyinfra_argv(
    inventory: Path,
    *deploy: str,
    data: dict | None = None,
    dry: bool = False,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The pyinfra CLI command line an admin would type (with ``--json`` results)."""
    argv = [str(Path(sys.executable).with_name("pyinfra")), str(inventory), *deploy, "--json"]
    argv += ["--dry"] if dry else ["-y"]
    for key, value in (data or {}).items():
        argv += ["--data", f"{key}={json.dumps(value)}"]
    return argv + list(extra)


def pyinfra_env() -> dict[str, str]:
    """The CLI's environment: this checkout's labhub imported first, even where the environment's
    editable install is of another checkout (a git worktree sharing its virtualenv)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), path]))}


def run_pyinfra(
    inventory: Path,
    *deploy: str,
    data: dict | None = None,
    dry: bool = False,
    extra: tuple[str, ...] = (),
    cwd: Path | None = None,
    timeout: float = 1800,
) -> PyinfraRun:
    """Run the pyinfra CLI of this environment (as an admin would) with ``--json`` results."""
    argv = pyinfra_argv(inventory, *deploy, data=data, dry=dry, extra=extra)
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(cwd or PROJECT_ROOT),
        env=pyinfra_env(),
    )
    return PyinfraRun(argv, proc.returncode, proc.stdout, proc.stderr)


def start_pyinfra(
    inventory: Path, *deploy: str, data: dict | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """Start the pyinfra CLI as ``run_pyinfra`` runs it, without waiting: its output (text,
    line by line) is read as it comes, and the run can be killed as an admin's terminal dies."""
    return subprocess.Popen(
        pyinfra_argv(inventory, *deploy, data=data),
        text=True,
        bufsize=1,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(cwd or PROJECT_ROOT),
        env=pyinfra_env(),
    )
