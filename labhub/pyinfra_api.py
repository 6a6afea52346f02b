"""
Every use labhub makes of pyinfra beyond its documented API for deploy code (operations, facts,
``host.get_fact``, ``host.noop``, ``host.data``...), in one place. pyinfra is pinned to one minor
version (``pyproject.toml``) and ``tests/test_pyinfra_api.py`` runs each function here against a
real pyinfra ``State``, so that a pyinfra release that changes one of them fails a fast test, not a
deploy.

What is public API is used as such: ``State.inventory.get_host`` (not ``ContextObject``'s
``_get_module``) turns pyinfra's ``host`` proxy into the ``Host`` itself, and a dictionary of the
run's hosts (not an attribute set on ``Host``) holds what labhub keeps per host.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from pyinfra.api import Host
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS

_MEMOS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def real_host(host) -> Host:
    """
    The ``Host`` itself, when given pyinfra's ``host`` (a proxy of whichever host is current, in
    this greenlet), for keeping something per host or handing the host to pyinfra's own sets.
    The proxy compares and hashes as the current host, so a set or dictionary that kept it would
    find another host once the current one changes. Public API: the inventory's host by name.
    """
    return host.state.inventory.get_host(host.name)


def memo(host) -> dict[str, Any]:
    """
    A dictionary kept for this host for the rest of the run (the host's validated settings, the
    facts already read), gone with the host. pyinfra has no place for a deploy's own per-host
    state; an attribute set on ``Host`` could meet one pyinfra adds.
    """
    return _MEMOS.setdefault(real_host(host), {})


def changes(host) -> int:
    """
    How many operations have changed something on the host so far in this run. One that failed
    with its error ignored (a share that does not mount) is taken to have changed nothing.

    No public API counts them: an operation's ``OperationMeta`` (``did_change()``) is handed only
    to the deploy code that called it, and the per-host results (``State.get_results_for_host``)
    count successes, changed or not. So this reads ``State.ops`` (each host's operations by hash)
    and each one's ``operation_meta``.
    """
    ops = host.state.ops.get(real_host(host)) or {}
    return sum(
        1
        for data in ops.values()
        if data.operation_meta.is_complete() and data.operation_meta.did_change()
    )


def mark_failed(host) -> None:
    """
    Mark the host failed without failing an operation, so that pyinfra exits non-zero and lists
    it under ``failed_hosts`` in its ``--json`` results, and goes on with the run.

    The public ``State.fail_hosts`` also takes the host out of the active hosts and raises "No
    hosts remaining!" when it was the last one, so that pyinfra prints no results: this adds the
    host to ``State.failed_hosts`` alone.
    """
    host.state.failed_hosts.add(real_host(host))


def connector_arguments(host) -> dict[str, Any]:
    """
    The connector arguments (``_sudo``, ``_sudo_user``, ``_env``...) of the operation whose
    commands are being made now, for a command that labhub runs itself from a
    ``FunctionCommand`` (which pyinfra runs without them). Empty outside an operation.

    pyinfra hands them to no public API: this reads ``Host.current_op_global_arguments``, which
    pyinfra sets while an operation's generator runs (its own facts and ``files`` operations read
    it), and keeps the keys of ``CONNECTOR_ARGUMENT_KEYS``.
    """
    arguments = host.current_op_global_arguments or {}
    return {key: value for key, value in arguments.items() if key in CONNECTOR_ARGUMENT_KEYS}


def after_inventory_loaded(state, callback: Callable[[Any], None]) -> None:
    """
    Have ``callback(inventory)`` called as soon as pyinfra's CLI has loaded the inventory, before
    it connects to any host: the settings are validated there, so that a typo is reported even
    when the server is down.

    pyinfra has no hook at that point: ``config.py`` runs before the inventory is loaded, and
    ``State.init``, which the CLI calls with the loaded inventory, resets the callbacks a config
    file could register. So this wraps ``init`` of that one state object.
    """
    init = state.init

    def init_then_callback(inventory, config, **kwargs):
        init(inventory, config, **kwargs)
        callback(inventory)

    state.init = init_then_callback


# Per state: how many quiet reads run now (greenlets of several hosts at once), and the
# verbosity to restore once the last one ends.
_QUIET: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def quiet_fact(host, fact, **kwargs) -> Any:
    """
    ``host.get_fact(fact, **kwargs)`` without the fact's output printed, whatever the verbosity:
    for a fact that reads a secret (a join token). pyinfra prints every fact's output at
    ``-vvv`` (``State.print_fact_output``) and has no way to keep one fact's to itself, so this
    turns that off for the read; the connector takes the flag when the command starts, so reads
    of other hosts meanwhile print less, never more.
    """
    state = host.state
    depth, saved = _QUIET.get(state, (0, state.print_fact_output))
    _QUIET[state] = (depth + 1, saved)
    state.print_fact_output = False
    try:
        return host.get_fact(fact, **kwargs)
    finally:
        depth, saved = _QUIET[state]
        if depth == 1:
            del _QUIET[state]
            state.print_fact_output = saved
        else:
            _QUIET[state] = (depth - 1, saved)


def is_active(host) -> bool:
    """
    Whether the host takes part in this run (connected, within ``--limit``, not failed), so
    that another host's operation may read its facts. Public API has no such question: this
    reads ``State.active_hosts``, the set pyinfra keeps of them.
    """
    return real_host(host) in host.state.active_hosts
