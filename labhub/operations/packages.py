"""
Debian packages installed, read from the run's one ``dpkg -l``. pyinfra's ``apt.packages`` reads
the package list again at each call, and with ``update`` and ``cache_time`` the apt cache's age
too, even when every package is installed.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt

from labhub.facts import read


@operation()
def installed(packages: list[str], update: bool = False, cache_time: int | None = None):
    """
    Packages installed (never upgraded): nothing is run when they all are; otherwise pyinfra's
    ``apt.packages`` installs the missing ones, updating the lists first as it is told.

    + packages: package names
    + update: update the apt lists before installing
    + cache_time: with ``update``, only when they are older than this many seconds

    **Example:**

    .. code:: python

        packages.installed(name="Install curl", packages=["curl"], update=True,
                           cache_time=24 * 3600)
    """
    missing = [package for package in packages if package not in read(host, DebPackages)]
    if not missing:
        host.noop(f"{', '.join(packages)} installed")
        return
    yield from apt.packages._inner(packages=packages, update=update, cache_time=cache_time)
