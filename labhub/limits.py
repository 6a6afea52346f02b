"""
What a single server's size means for lab_limits, as a pure function of its CPUs and memory
(pyinfra's hardware facts): limits and guarantees no lab of a group could ever be given.
"""

from __future__ import annotations

from labhub.settings import format_cpus, format_size


def server_limit_problems(
    host: str, group_limits: dict[str, dict], cpus: int | None, memory: int | None
) -> list[str]:
    """
    Why a group's labs could never start on the server, before any change: a CPU limit above
    its CPUs (Docker refuses such a container), a guarantee above all it has (every spawn would
    be refused). ``group_limits``: ``Settings.group_limits``; ``memory`` in bytes; None: unknown.
    """
    problems = []
    for group, limits in group_limits.items():
        where = f"lab_limits.{group}"
        if cpus and limits["cpu_limit"] is not None and limits["cpu_limit"] > cpus:
            problems.append(
                f"{where}.cpu_limit: {format_cpus(limits['cpu_limit'])}, and {host} has "
                f"{format_cpus(cpus)}: Docker refuses a container more CPUs than the server has"
            )
        for key, total, unit in (
            ("cpu_guarantee", cpus, format_cpus),
            ("mem_guarantee", memory, format_size),
        ):
            if total and limits[key] is not None and limits[key] > total:
                problems.append(
                    f"{where}.{key}: {unit(limits[key])}, more than all {host} has "
                    f"({unit(total)}): no lab of the group could start"
                )
    return problems
