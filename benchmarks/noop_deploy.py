"""
How long a no-change run of ``deploy.py`` takes against a lab server, beside a one-command pyinfra
run against the same server (``exec -- true``: the cost of connecting, sudo and one command), and
how many commands the no-change run sends.

A fresh lab server (``labhost``) gets the whole deploy once, with the hub users, shares and lab
image of the end-to-end tests; then the no-change run (``deploy.py``), its dry run with
``--diff``, and the one-command run are timed in turn ROUNDS times. Commands are counted from
pyinfra's ``--debug`` log: each shell command it runs and each file it uploads.

    .venv/bin/python benchmarks/noop_deploy.py [--rounds 5] [--keep NAME]

``--keep NAME`` reuses (and leaves running) the lab server NAME, deployed by an earlier run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from scenario import deploy_data  # noqa: E402

import labhost  # noqa: E402
from labhost.runner import pyinfra_env  # noqa: E402

PYINFRA = str(Path(sys.executable).with_name("pyinfra"))


def run(inventory: Path, *args: str) -> tuple[float, int, str]:
    """One pyinfra CLI run: seconds, commands sent (shell commands and uploads), stderr."""
    argv = [PYINFRA, "--debug", str(inventory), *args]
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=pyinfra_env())
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    sent = [
        line
        for line in proc.stderr.splitlines()
        if "Running command on" in line or "Attempting upload of" in line
    ]
    return seconds, len(sent), proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", metavar="NAME", help="reuse and keep the lab server NAME")
    parser.add_argument(
        "--show", action="store_true", help="print the commands the no-change run sends"
    )
    args = parser.parse_args()

    if args.keep:
        workdir = ROOT / ".labhub" / args.keep
        server = labhost.find_lab_server(args.keep, workdir)
        fresh = server is None
        if fresh:
            server = labhost.start_lab_server(name=args.keep, workdir=workdir)
    else:
        server, fresh = labhost.start_lab_server(), True
    try:
        data = deploy_data(
            Path(tempfile.mkdtemp(prefix="labhub-bench-")), labhost.load_stack_images(server)
        )
        inventory = server.inventory_file(data)
        if fresh:
            start = time.monotonic()
            labhost.run_pyinfra(inventory, "deploy.py").check()
            print(f"first deploy: {time.monotonic() - start:.1f} s")
        check = labhost.run_pyinfra(inventory, "deploy.py").check()
        if check.changed:
            raise SystemExit(f"the deploy is not settled: {check.changed_operations} changed")

        noop, dry, one = [], [], []
        for _ in range(args.rounds):
            seconds, noop_sent, log = run(inventory, "deploy.py", "-y")
            noop.append(seconds)
            seconds, dry_sent, _ = run(inventory, "deploy.py", "--dry", "--diff")
            dry.append(seconds)
            seconds, one_sent, _ = run(inventory, "exec", "-y", "--", "true")
            one.append(seconds)
        if args.show:
            for line in log.splitlines():
                if "Running command on" in line or "Attempting upload of" in line:
                    print(line[:300])
    finally:
        if not args.keep:
            server.remove()

    base = statistics.median(one)
    print(
        f"one-command run (exec -- true): median {base:.2f} s of {args.rounds}, "
        f"{one_sent} command(s)"
    )
    for label, times, sent in (
        ("no-change run of deploy.py", noop, noop_sent),
        ("dry run of deploy.py with --diff", dry, dry_sent),
    ):
        median = statistics.median(times)
        print(
            f"{label}: median {median:.2f} s of {args.rounds}, {sent} commands sent, "
            f"{median / base:.1f} x the one-command run"
        )
    print(
        json.dumps(
            {
                "one_command_s": base,
                "noop_s": statistics.median(noop),
                "dry_s": statistics.median(dry),
                "noop_commands": noop_sent,
                "dry_commands": dry_sent,
                "one_command_commands": one_sent,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
