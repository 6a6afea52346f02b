"""
pyinfra facts of labhub hosts.

pyinfra 3 runs a fact's command at every ``host.get_fact``; ``read`` keeps a fact's answer for
the rest of the run, until an operation changes something on that host, so that the tasks and
operations that need the same fact (accounts, the files under ``hub_dir``...) share one command.

Facts that read several things in one command (a folder tree, mount points, services) are read
once for the whole of what labhub manages on the host, never for what one operation asks, so
that no operation takes an argument only to share a read, and none can forget it: the operations
call the fact module's own function (``tree.files_at``, ``fstab.mounts_at``,
``services.state_of``), which names the scope, derived from the host's validated settings. A
batching cache that first recorded what the run will ask would need every operation declared
before any runs (pyinfra runs an operation's body only when it executes, with ``-y``); the
scope is known from the settings alone, and reading a little more than one operation needs
costs nothing a second command would not.
"""

from __future__ import annotations

from pyinfra.api import FactBase

from labhub.pyinfra_api import changes, memo


def read(host, fact: type[FactBase], **kwargs):
    """``host.get_fact(fact, **kwargs)``, read again only once an operation changed the host."""
    cache = memo(host).setdefault("facts", {})
    key = (fact, repr(sorted(kwargs.items())))
    changed = changes(host)
    if key not in cache or cache[key][0] != changed:
        cache[key] = (changed, host.get_fact(fact, **kwargs))
    return cache[key][1]


def sections_of(output, names: tuple[str, ...]) -> dict[str, list[str]]:
    """The lines of a command that reads several things, each after its marker line (``names``,
    such as ``#passwords``); lines before the first marker are dropped."""
    found: dict[str, list[str]] = {name: [] for name in names}
    current = None
    for line in output:
        if line in found:
            current = line
        elif current is not None:
            found[current].append(line)
    return found
