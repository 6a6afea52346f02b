"""
python -m labhost engine            start this machine's Docker engine if needed
python -m labhost up [INVENTORY]    deploy the stack (to a throwaway lab server
                                    when no inventory is given) and say how to log in
python -m labhost down              remove the throwaway lab server
"""

from __future__ import annotations

import logging
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import labhost
from labhost.runner import pyinfra_env
from labhub.settings import validate

DEMO_NAME = "labhub-demo"
DEMO_DIR = labhost.PROJECT_ROOT / ".labhub" / "demo"
DEMO_USERS = ["alice", "bob"]


def pyinfra(*args: str) -> int:
    argv = [str(Path(sys.executable).with_name("pyinfra")), *args]
    return subprocess.call(argv, cwd=labhost.PROJECT_ROOT, env=pyinfra_env())


def up(inventory: str | None) -> int:
    if inventory:
        return pyinfra(inventory, "deploy.py")
    # The stand-ins build while the lab server boots and gets its own engine, and each goes into
    # that engine as soon as both are there.
    labhost.ensure_engine()
    engine_runs: Future[labhost.LabServer] = Future()
    with ThreadPoolExecutor(max_workers=1) as pool:
        images = pool.submit(labhost.load_stack_images, engine_runs)
        try:
            server = labhost.find_lab_server(DEMO_NAME, DEMO_DIR)
            if server is None:
                print(f"--> starting a throwaway lab server ({DEMO_NAME})", file=sys.stderr)
                server = labhost.start_lab_server(name=DEMO_NAME, workdir=DEMO_DIR)
            labhost.ensure_server_engine(server)
        except BaseException as e:
            engine_runs.set_exception(e)
            raise
        engine_runs.set_result(server)
        overrides = images.result()
    print(
        f"--> deploying to {server.address} (pyinfra: a few minutes the first time)",
        file=sys.stderr,
    )
    data = {
        "docker_source": "distro",
        "hub_users": DEMO_USERS,
        "hub_admins": DEMO_USERS[:1],
        "hub_bind": "0.0.0.0",
        **overrides,
    }
    settings = validate(data, server.address)
    inventory_path = server.inventory_file(data)
    status = pyinfra(str(inventory_path), "deploy.py", "-y")
    if status != 0:
        return status
    # The hub's certificate comes from the proxy's local CA (tls "internal", the default).
    root = DEMO_DIR / "local-ca-root.crt"
    root.write_text(server.exec(f"cat {settings.hub_dir}/proxy/local-ca-root.crt"))
    print(
        f"""
The lab hub is up on a throwaway lab server:

    {settings.hub_url}/

Its certificate is signed by the proxy's local CA: trust that root in your browser (or
curl --cacert {root} {settings.hub_url}/hub/health): {root}
(on the server: {settings.hub_dir}/proxy/local-ca-root.crt)

Log in as {" or ".join(DEMO_USERS)}: each first sets a password (at least
{settings.min_password_length} characters) through the invitation link the deploy wrote in
{labhost.PROJECT_ROOT / ".labhub" / "invites" / server.address}/<user>.url; {DEMO_USERS[0]} is an admin.
Inventory: {inventory_path}    SSH: ssh -i {server.key_path} {server.login_user}@{server.address}
Remove it with: ./dev down
"""
    )
    return 0


def down() -> int:
    server = labhost.find_lab_server(DEMO_NAME, DEMO_DIR)
    if server is None:
        print("no throwaway lab server is running", file=sys.stderr)
        return 0
    server.remove()
    print(f"removed {DEMO_NAME}", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="--> %(message)s")
    try:
        return run(argv)
    except labhost.LabHostError as e:
        # What this machine lacks (an engine it may not start, one that refuses lab servers),
        # in a line a person can act on.
        print(f"labhost: {e}", file=sys.stderr)
        return 1


def run(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "engine":
        labhost.ensure_engine()
        return 0
    if command == "up":
        return up(args[0] if args else None)
    if command == "down":
        return down()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
