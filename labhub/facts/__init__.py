"""
pyinfra facts of labhub hosts.

pyinfra 3 runs a fact's command at every ``host.get_fact``; ``read`` keeps a fact's answer for
the rest of the run, until an operation changes something on that host, so that the tasks and
operations that need the same fact (accounts, the files under ``hub_dir``...) share one command.
"""

from __future__ import annotations

import weakref

from pyinfra.api import FactBase
from pyinfra.context import ContextObject

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def real_host(host):
    """The ``Host`` itself, when given pyinfra's ``host`` (a proxy of the current host)."""
    return host._get_module() if isinstance(host, ContextObject) else host


def _changes(host) -> int:
    """How many operations have changed something on the host so far in this run. One that
    failed with its error ignored (a share that does not mount) is taken to have changed
    nothing."""
    ops = host.state.ops.get(host) or {}
    return sum(1 for data in ops.values()
               if data.operation_meta.is_complete() and data.operation_meta.did_change())


def read(host, fact: type[FactBase], **kwargs):
    """``host.get_fact(fact, **kwargs)``, read again only once an operation changed the host."""
    cache = _CACHE.setdefault(real_host(host), {})
    key = (fact, repr(sorted(kwargs.items())))
    changes = _changes(host)
    if key not in cache or cache[key][0] != changes:
        cache[key] = (changes, host.get_fact(fact, **kwargs))
    return cache[key][1]
