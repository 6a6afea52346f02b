"""
What labhub relies on in pyinfra beyond its deploy API (``labhub.pyinfra_api``), and the run's
shared fact reads built on it, checked on a real pyinfra ``State`` with an ``@fake`` host: the
operations really run (pyinfra's own ``run_ops``), and the fake connector records every command
they and their facts send. A pyinfra release that changes what the adapter reads fails here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyinfra
import pytest
from pyinfra.api import Config, FunctionCommand, Inventory, OperationError, State, operation, output
from pyinfra.api.connect import connect_all
from pyinfra.api.operation import add_op
from pyinfra.api.operations import run_ops
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_host, ctx_state
from pyinfra.operations import server

from labhub.facts.swarm import SwarmJoinToken
from labhub.facts.tree import FileTree
from labhub.operations import fstab, secret_files, services, tree
from labhub.pyinfra_api import (
    after_inventory_loaded,
    changes,
    connector_arguments,
    mark_failed,
    memo,
    quiet_fact,
    real_host,
)
from labhub.settings import get_settings

HUB_DIR = "/opt/labhub"


def lab(responses: dict | None = None, names=("lab",), **data) -> tuple[State, list]:
    """A state of ``@fake`` hosts, connected and ready for operations, as ``pyinfra -y`` runs
    them: an operation's body runs when it executes, not when it is added."""
    host_data = {
        "fake_delay": 0,
        "fake_delay_jitter": 0,
        "fake_responses": responses or {},
        "hub_domain": "lab.test",
        **data,
    }
    inventory = Inventory(([(f"@fake/{name}", dict(host_data)) for name in names], {}))
    state = State(inventory, Config(), check_for_changes=False)
    connect_all(state)
    state.set_stage(StateStage.Prepare)
    return state, [inventory.get_host(f"@fake/{name}") for name in names]


def add(state: State, op, **kwargs):
    """The operation added for every host; its ``OperationMeta`` of the first."""
    return next(iter(add_op(state, op, **kwargs).values()))


def run(state: State) -> None:
    state.set_stage(StateStage.Execute)
    run_ops(state)


def sent(host, part: str) -> list[str]:
    return [command for command in host.connector.executed_commands if part in command]


@operation()
def probe(seen: list, what):
    """Records ``what(host)`` when it runs; changes nothing."""
    seen.append(what(pyinfra.host))
    pyinfra.host.noop("probed")
    yield from ()


@operation()
def fails_host():
    yield from ()
    mark_failed(pyinfra.host)


def test_real_host_is_the_host_behind_pyinfras_proxy():
    state, (one, two) = lab(names=("one", "two"))
    with ctx_state.use(state), ctx_host.use(one):
        assert real_host(pyinfra.host) is one
        kept = memo(pyinfra.host)
    # The proxy now stands for another host: what was kept for the first stays with it.
    with ctx_state.use(state), ctx_host.use(two):
        assert real_host(pyinfra.host) is two
        assert memo(pyinfra.host) is not kept
    assert memo(one) is kept


def test_changes_counts_the_operations_that_changed_the_host():
    state, (host,) = lab({"false": {"success": False}})
    seen: list[int] = []
    add(state, probe, seen=seen, what=changes)
    add(state, server.shell, commands=["true"])
    add(state, probe, seen=seen, what=changes)
    add(state, server.shell, commands=["false"], _ignore_errors=True)
    add(state, probe, seen=seen, what=changes)
    assert changes(host) == 0
    run(state)
    # The failed one (its error ignored) and the probes changed nothing.
    assert seen == [0, 1, 1]
    assert changes(host) == 1


def test_a_host_marked_failed_fails_the_run_and_the_run_goes_on():
    state, (one, two) = lab(names=("one", "two"))
    add(state, fails_host, host=one)
    after = add(state, server.shell, commands=["echo after"])
    run(state)
    assert state.failed_hosts == {one}
    # Still active: its next operations run, and pyinfra prints its results.
    assert one in state.active_hosts
    assert after.did_change()
    assert sent(one, "echo after") and sent(two, "echo after")


def test_connector_arguments_are_the_operations_own():
    state, (host,) = lab()
    seen: list[dict] = []
    add(
        state,
        probe,
        seen=seen,
        what=connector_arguments,
        _sudo=True,
        _sudo_user="alice",
        _ignore_errors=True,
    )
    run(state)
    assert seen[0]["_sudo"] is True and seen[0]["_sudo_user"] == "alice"
    # Not a connector's: kept by pyinfra for the operation itself.
    assert "_ignore_errors" not in seen[0]
    with ctx_state.use(state), ctx_host.use(host):
        assert connector_arguments(pyinfra.host) == {}


def test_settings_are_validated_once_per_host():
    state, (one, two) = lab(names=("one", "two"))
    two.data.https_port = 8443
    with ctx_state.use(state), ctx_host.use(one):
        settings = get_settings(pyinfra.host)
    assert get_settings(one) is settings
    assert get_settings(two).https_port == 8443 != settings.https_port


def tree_lines(*entries: str) -> list[str]:
    return [*(f"d 755 root root {path}" for path in entries), "--labhub-tree-hashes--"]


def test_operations_on_different_paths_under_hub_dir_share_one_read():
    state, (host,) = lab(
        {f"find {HUB_DIR} ": tree_lines(HUB_DIR, f"{HUB_DIR}/hub", f"{HUB_DIR}/build")}
    )
    counted = []
    get_fact = host.get_fact
    host.get_fact = lambda fact, *a, **k: counted.append(fact) or get_fact(fact, *a, **k)
    hub = add(state, tree.written, files={}, folders=[f"{HUB_DIR}/hub"])
    build = add(state, tree.written, files={}, folders=[f"{HUB_DIR}/build"])
    absent = add(state, tree.absent, paths=[f"{HUB_DIR}/proxy/key.pem"])
    run(state)
    assert not (hub.did_change() or build.did_change() or absent.did_change())
    assert counted == [FileTree]
    assert len(sent(host, "find ")) == 1


def test_a_secret_file_is_read_with_its_folder(tmp_path: Path):
    key = tmp_path / "leem.cred"
    key.write_bytes(b"password=not-a-real-one\n")
    dest = "/etc/labhub/credentials/leem"
    state, (host,) = lab(
        {
            "find /etc/labhub ": [
                *tree_lines("/etc/labhub")[:-1],
                "d 700 root root /etc/labhub/credentials",
                f"f 600 root root {dest}",
                "--labhub-tree-hashes--",
                f"{hashlib.sha256(key.read_bytes()).hexdigest()}  {dest}",
            ]
        }
    )
    folder = add(
        state, tree.written, files={}, folders=["/etc/labhub/credentials"], folder_mode="0700"
    )
    secret = add(state, secret_files.put, src=str(key), dest=dest)
    run(state)
    assert not (folder.did_change() or secret.did_change())
    assert host.connector.executed_commands == sent(host, "find /etc/labhub ")
    assert len(host.connector.executed_commands) == 1


def test_a_change_reads_the_tree_again():
    state, (host,) = lab({f"find {HUB_DIR} ": tree_lines(HUB_DIR)})
    made = add(state, tree.written, files={}, folders=[f"{HUB_DIR}/hub"])
    add(state, tree.written, files={}, folders=[HUB_DIR])
    run(state)
    assert made.did_change()
    assert len(sent(host, "find ")) == 2


def test_a_path_outside_labhubs_folders_is_refused():
    state, (host,) = lab()
    add(state, tree.written, files={"/etc/motd": "hi\n"})
    with pytest.raises(
        OperationError,
        match=r"/etc/motd is not under a folder labhub manages "
        r"\(/opt/labhub, /etc/labhub\)",
    ):
        run(state)
    assert not host.connector.executed_commands


def test_two_services_share_one_read():
    states = [
        f"Id={name}.service\nSubState=running\nUnitFileState=enabled\n"
        for name in ("containerd", "docker")
    ]
    state, (host,) = lab({"systemctl show": "\n".join(states).splitlines()})
    ops = [add(state, services.running, service=name) for name in ("docker", "containerd")]
    run(state)
    assert not any(op.did_change() for op in ops)
    assert len(sent(host, "systemctl show")) == 1


def test_two_shares_mount_points_share_one_read(tmp_path: Path):
    credentials = tmp_path / "cred"
    credentials.write_text("username=lab\npassword=not-a-real-one\n")
    credentials.chmod(0o600)
    shares = [
        {
            "name": name,
            "source": f"//files.lab/{name}",
            "mountpoint": f"/mnt/{name}",
            "mode": "ro",
            "credentials": str(credentials),
        }
        for name in ("leem", "data")
    ]
    state, (host,) = lab({"findmnt": ["@ y /mnt/data", "@ y /mnt/leem"]}, shares=shares)
    ops = [add(state, fstab.mount_point, path=f"/mnt/{name}") for name in ("leem", "data")]
    run(state)
    assert not any(op.did_change() for op in ops)
    assert len(sent(host, "findmnt")) == 1


def test_a_function_command_is_still_run_with_state_and_host():
    # labhub.commands.reported hands FunctionCommand a function of (state, host).
    state, (host,) = lab()
    seen = []

    @operation()
    def call():
        yield FunctionCommand(lambda state, host: seen.append(host) or True, (), {})

    add(state, call)
    run(state)
    assert seen == [host]


def test_a_callback_runs_once_the_inventory_is_loaded_before_any_connection():
    # As the CLI does: the state made first (config.py runs then), init'ed with the inventory.
    state = State(check_for_changes=False)
    seen = []
    after_inventory_loaded(
        state,
        lambda inventory: seen.append(
            (
                sorted(host.name for host in inventory),
                state.initialised,
                [host.connected for host in inventory],
            )
        ),
    )
    inventory = Inventory((["@fake/lab"], {}))
    state.init(inventory, Config())
    assert seen == [(["@fake/lab"], True, [False])]


def test_a_quiet_fact_is_not_printed_even_at_the_most_verbose(monkeypatch):
    printed: list[str] = []
    monkeypatch.setattr(output, "_echo", lambda message=None, **kwargs: printed.append(message))
    token = "SWMTKN-1-not-a-real-token"
    state, (host,) = lab({"join-token": token})
    # pyinfra -vvv: every fact's output is printed.
    state.print_fact_output = True
    with ctx_state.use(state), ctx_host.use(host):
        assert host.get_fact(SwarmJoinToken) == token
        assert any(token in line for line in printed)
        printed.clear()
        assert quiet_fact(host, SwarmJoinToken) == token
        assert not any(token in line for line in printed)
    assert state.print_fact_output is True
