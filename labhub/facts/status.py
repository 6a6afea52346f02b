"""
What ``tasks/status.py`` reports that the deploy's own facts do not hold, read in one command:
the hub's and the registry's answers and versions, the containers of the hub's compose project
and of the labs, which hub users have set a password, and disk usage.
"""

from __future__ import annotations

import json
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
from labhub.facts.registry import registry_data_command

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
        # No password file yet: nobody has logged in.
        passwords = (
            f"import dbm; path = {passwords_path!r}; "
            "keys = dbm.open(path, 'r').keys() if dbm.whichdb(path) is not None else []; "
            "print('\\n'.join(sorted(k.decode() for k in keys)))"
        )
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
        sections: dict[str, list[str]] = {name: [] for name in _SECTIONS}
        current = None
        for line in output:
            if line in _SECTIONS:
                current = line
            elif current is not None:
                sections[current].append(line)
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
        }
