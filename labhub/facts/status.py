"""
What ``tasks/status.py`` reports that the deploy's own facts do not hold, read in one command:
the hub's and the registry's answers and versions, the containers of the hub's compose project
and of the labs (with lab nodes, the swarm's labs), which hub users have set a password, and
disk usage.
"""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime

from pyinfra.api import FactBase

from labhub.commands import (
    command_line,
    container_command,
    http_wait_command,
    served_certificate_command,
    shell,
)
from labhub.facts import sections_of
from labhub.facts.logins import passwords_script
from labhub.facts.registry import registry_data_command
from labhub.facts.swarm import swarm_labs, swarm_labs_command

_SECTIONS = (
    "#http",
    "#api",
    "#containers",
    "#passwords",
    "#docker-root",
    "#registry-data",
    "#df",
    "#du",
    "#certificate",
    "#swarm-labs",
)


class LabStatus(FactBase[dict]):
    """
    .. code:: python

        {
            "http": {"hub": 200, "registry": 200},
            "hub_version": "5.2.1",
            "containers": {"labhub-hub-1": {"state": "running", "started": "2026-11-30T10:00:00Z",
                                            "image": "labhub/hub:2b9d0c3e1f4a",
                                            "service": "hub", "mounts": {...}}},
            "passwords": ["alice"],          # None: the hub's password file could not be read
            "docker_root": "/var/lib/docker",
            "df": {"/home": {"size": 10737418240, "used": 1073741824, "avail": 9663676416}},
            "du": {"/home/jupyter-alice": 31457280},
            "certificate_expires": "2027-03-01T12:00:00+00:00",  # None: none served, or no TLS
            # With lab nodes (labhub.facts.swarm.SwarmLabs): the swarm's labs, on any node.
            "swarm_labs": [{"user": "bob", "service": "jupyter-bob", "node": "gpu1", ...}],
        }

    ``df`` (bytes) is given for each of ``df_paths`` that exists, Docker's data folder (also
    given as ``docker_root``) and the registry's data (the source of its container's
    ``registry_data`` mount, also given as ``registry_data``); ``du`` (bytes) for each of
    ``du_paths`` that exists and the registry's data. ``passwords`` are the names in
    FirstUseAuthenticator's file (``passwords_path`` in the hub's container).
    """

    default = dict

    def command(
        self,
        hub_url: str,
        registry_url: str,
        project: str,
        hub_service: str,
        registry_service: str,
        registry_data: str,
        passwords_path: str,
        df_paths: list[str],
        du_paths: list[str],
        hub_curl_args: tuple[str, ...] = (),
        tls_address: str | None = None,
        tls_name: str | None = None,
    ) -> str:
        quote = shlex.quote
        container = (
            "{{.Name}}\t{{.State.Status}}\t{{.State.StartedAt}}\t{{.Config.Image}}\t"
            '{{index .Config.Labels "com.docker.compose.service"}}'
        )
        passwords = passwords_script(passwords_path)
        # Asked once: the status says how they answer now.
        answers = http_wait_command(
            {hub_url + "/hub/health": hub_curl_args, registry_url + "/v2/": ()}, 0
        )
        lines = [
            "echo '#http'",
            answers,
            "echo '#api'",
            command_line("curl", *hub_curl_args, "-s", "--max-time", "5", hub_url + "/hub/api")
            + "; echo",
            "echo '#containers'",
            'ids=$(docker ps -aq 2>/dev/null); [ -z "$ids" ] || '
            f"docker inspect --format {quote(container)} $ids",
            "echo '#passwords'",
            f'hub=$({container_command(project, hub_service)}); [ -z "$hub" ] || '
            f'docker exec "$hub" python3 -c {quote(passwords)} 2>/dev/null '
            "|| echo '#unreadable'",
            registry_data_command(project, registry_service, registry_data),
            "echo '#docker-root'",
            "root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null); echo \"$root\"",
            "echo '#registry-data'",
            'echo "$data"',
            "echo '#df'",
            f'for p in {" ".join(quote(p) for p in df_paths)} "$root" "$data"; do '
            '[ -n "$p" ] && [ -e "$p" ] && df -P -B1 "$p" | tail -n 1 | '
            'while read -r fs size used avail pct mnt; do echo "$size $used $avail $p"; done; '
            "done",
            "echo '#du'",
            f'for p in {" ".join(quote(p) for p in du_paths)} "$data"; do '
            '[ -n "$p" ] && [ -e "$p" ] && du -sb "$p" 2>/dev/null; done',
            # With lab nodes: the labs are the swarm's services (their tasks on any node).
            "echo '#swarm-labs'",
            swarm_labs_command(),
            "echo '#certificate'",
            *(
                [served_certificate_command(tls_address, tls_name, ("-enddate",))]
                if tls_address and tls_name
                else []
            ),
            "true",
        ]
        return shell(*lines)

    def process(self, output) -> dict:
        sections = sections_of(output, _SECTIONS)
        http = {}
        for line in sections["#http"]:
            code, _, url = line.partition(" ")
            http["hub" if url.endswith("/hub/health") else "registry"] = (
                int(code) if code.isdigit() else 0
            )
        try:
            hub_version = json.loads("".join(sections["#api"]) or "{}").get("version")
        except ValueError:
            hub_version = None
        containers = {}
        for line in sections["#containers"]:
            parts = line.split("\t")
            if len(parts) == 5:
                name, state, started, image, service = parts
                containers[name.lstrip("/")] = {
                    "state": state,
                    "started": started,
                    "image": image,
                    "service": service or None,
                }
        passwords: list[str] | None = [p for p in sections["#passwords"] if p]
        if "#unreadable" in sections["#passwords"] or not any(
            c["service"] == "hub" and c["state"] == "running" for c in containers.values()
        ):
            passwords = None
        df = {}
        for line in sections["#df"]:
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[0].isdigit():
                df[parts[3]] = {
                    "size": int(parts[0]),
                    "used": int(parts[1]),
                    "avail": int(parts[2]),
                }
        du = {}
        for line in sections["#du"]:
            size, _, path = line.partition("\t")
            if size.isdigit():
                du[path] = int(size)
        # openssl's "notAfter=Mar  1 12:00:00 2027 GMT": when the served certificate expires.
        certificate = None
        for line in sections["#certificate"]:
            if line.startswith("notAfter="):
                certificate = (
                    datetime.strptime(line.split("=", 1)[1].strip(), "%b %d %H:%M:%S %Y %Z")
                    .replace(tzinfo=UTC)
                    .isoformat()
                )
        root = (sections["#docker-root"] or [""])[0].strip() or None
        data = (sections["#registry-data"] or [""])[0].strip() or None
        return {
            "certificate_expires": certificate,
            "http": http,
            "hub_version": hub_version,
            "containers": containers,
            "passwords": passwords,
            "docker_root": root,
            "registry_data": data,
            "df": df,
            "du": du,
            "swarm_labs": swarm_labs(sections["#swarm-labs"]),
        }


_BACKUP_SECTIONS = (
    "#service",
    "#timer",
    "#elapses",
    "#snapshots",
    "#restic-exit",
    "#restic-errors",
)
# A repository that does not answer within this many seconds counts as not reached.
RESTIC_TIMEOUT = 120


def _restic_time(value: str) -> str:
    """restic's time (nanoseconds, the host's offset) as an ISO time in UTC."""
    match = re.fullmatch(r"(.+?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", value)
    if not match:
        return value
    base, fraction, offset = match.groups()
    stamp = datetime.fromisoformat(
        base + (fraction or "")[:7] + ("+00:00" if offset == "Z" else offset)
    )
    return stamp.astimezone(UTC).isoformat()


class BackupStatus(FactBase[dict]):
    """
    The backups, as ``tasks/status.py`` reads them on a server with ``backup_repository``: the
    backup service's last run, the timer, the schedule's next elapses (UTC) and the repository's
    latest labhub snapshot, asked through the backup program (root only).

    .. code:: python

        {
            "installed": True,                 # False: the backup program is not there
            "service": {"result": "success", "exit_status": 0,
                        "exited": "Wed 2026-12-02 00:00:41 UTC"},   # "" exited: never ran
            "timer": {"active": "active", "last_trigger": "Wed 2026-12-02 00:00:00 UTC"},
            "elapses": ["2026-12-03T00:00:00+00:00", "2026-12-04T00:00:00+00:00"],
            "repository": {"reached": True, "error": None},
            "snapshot": {"id": "4e1f9a7c", "time": "2026-12-02T00:00:02.123456+00:00",
                         "size": 73400320},   # None: no snapshot; size None: restic did not say
        }
    """

    default = dict

    def command(
        self, program: str, service: str, timer: str, schedule: str | None, iterations: int = 5
    ) -> str:
        quote = shlex.quote
        snapshots = command_line(
            "timeout", str(RESTIC_TIMEOUT), program, "restic", "--no-lock", "snapshots",
            "--json", "--latest", "1", "--tag", "labhub",
        )  # fmt: skip
        lines = [
            "echo '#service'",
            f"systemctl show -p Result -p ExecMainStatus -p ExecMainExitTimestamp {quote(service)}",
            "echo '#timer'",
            f"systemctl show -p ActiveState -p LastTriggerUSec {quote(timer)}",
            "echo '#elapses'",
            *(
                [
                    f"TZ=UTC systemd-analyze calendar --iterations={iterations} -- "
                    f"{quote(schedule)} 2>/dev/null | "
                    "sed -n 's/^ *\\(Next elapse\\|Iter[a-z.]* #[0-9]*\\): //p'"
                ]
                if schedule
                else []
            ),
            f"if [ -x {quote(program)} ]; then",
            'errors=$(mktemp); echo "#snapshots"',
            f'{snapshots} 2>"$errors"; code=$?; echo',
            'echo "#restic-exit"; echo "$code"',
            'echo "#restic-errors"; tail -n 3 "$errors"; rm -f "$errors"',
            "fi",
            "true",
        ]
        return shell(*lines)

    def process(self, output) -> dict:
        sections = sections_of(output, _BACKUP_SECTIONS)
        properties = {
            key: value
            for line in sections["#service"] + sections["#timer"]
            for key, _, value in [line.partition("=")]
        }
        status = properties.get("ExecMainStatus", "")
        elapses = []
        for line in sections["#elapses"]:
            # "Thu 2026-12-03 00:00:00 UTC", after "Next elapse:", and "Iteration #2:" (systemd
            # 257; "Iter. #2:" before)
            parts = line.split()
            if len(parts) == 4 and parts[3] == "UTC":
                elapses.append(datetime.fromisoformat(f"{parts[1]}T{parts[2]}+00:00").isoformat())
        installed = any(line == "#restic-exit" for line in output)
        code = (sections["#restic-exit"] or [""])[0].strip()
        snapshot = None
        reached = installed and code == "0"
        if reached:
            try:
                listed = json.loads("".join(sections["#snapshots"]) or "[]")
            except ValueError:
                listed = []
            latest = max(listed, key=lambda s: _restic_time(s["time"]), default=None)
            if latest is not None:
                size = (latest.get("summary") or {}).get("total_bytes_processed")
                snapshot = {
                    "id": latest.get("short_id") or latest["id"][:8],
                    "time": _restic_time(latest["time"]),
                    "size": size,
                }
        error = None
        if installed and not reached:
            said = [line.strip() for line in sections["#restic-errors"] if line.strip()]
            error = (
                f"no answer within {RESTIC_TIMEOUT} s"
                if code == "124"
                else "; ".join(said) or f"restic exited {code}"
            )
        return {
            "installed": installed,
            "service": {
                "result": properties.get("Result", ""),
                "exit_status": int(status) if status.isdigit() else None,
                "exited": properties.get("ExecMainExitTimestamp", ""),
            },
            "timer": {
                "active": properties.get("ActiveState", ""),
                "last_trigger": properties.get("LastTriggerUSec", ""),
            },
            "elapses": elapses,
            "repository": {"reached": reached, "error": error},
            "snapshot": snapshot,
        }
