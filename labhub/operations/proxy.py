"""
The hub's HTTPS proxy once it runs: its local CA's root handed out, and the hub answering
through it with the certificate expected. Paired with ``labhub.facts.proxy``.
"""

from __future__ import annotations

import hashlib
import shlex

from pyinfra import host
from pyinfra.api import OperationError, StringCommand, operation

from labhub import tls
from labhub.commands import command_line, compose_command
from labhub.facts.compose import ComposeLogs, HttpStatus
from labhub.facts.proxy import ProxyFile, ServedCertificate
from labhub.facts.tree import files_at
from labhub.stack import Stack


@operation()
def local_root(stack: Stack, path: str, dest: str, wait: int = 60):
    """
    Copy the root certificate of the proxy's local CA (tls "internal") out of its data volume
    to ``dest`` on the host, world-readable, for the admin to hand to users' browsers. Copied
    again only when the proxy's root changed (a new data volume).

    + stack: the compose project with the proxy's service
    + path: the root certificate inside the proxy
    + dest: where the admin finds it on the host, in a folder labhub manages (read in one
      command with the other files there, ``labhub.facts.tree.files_at``)
    + wait: seconds the proxy may take to make its CA

    **Example:**

    .. code:: python

        proxy.local_root(
            name="Hand out the local CA's root",
            stack=Stack.from_settings(settings),
            path="/data/caddy/pki/authorities/local/root.crt",
            dest="/opt/labhub/proxy/local-ca-root.crt",
        )
    """
    compose_file, project, service = stack.compose_file, stack.project, stack.proxy_service
    current = files_at(host, dest).get(dest)
    if not host.state.is_executing:
        # The proxy makes its CA when it first runs: nothing to read in a dry run.
        if current is None:
            yield StringCommand("true")
        host.log(f"the proxy's local CA root goes to {dest} once the proxy made it")
        return
    pem = host.get_fact(
        ProxyFile, compose_file=compose_file, project=project, service=service, path=path, wait=wait
    )
    if not pem:
        logs = host.get_fact(
            ComposeLogs, compose_file=compose_file, project=project, service=service
        )
        raise OperationError(
            f"the proxy made no local CA within {wait} s ({path} is missing). "
            f"Last log lines of the proxy:\n{logs}"
        )
    if (current or {}).get("sha256") != hashlib.sha256(pem.encode()).hexdigest():
        cat = compose_command(compose_file, project, "exec", "-T", service, "cat", path)
        new = f"{dest}.new"
        yield (
            f"{cat} > {shlex.quote(new)} && {command_line('chmod', '0644', new)} && "
            f"{command_line('mv', new, dest)}"
        )
    host.log(
        f"Give users' browsers the hub's root certificate: {dest} on the server "
        "(it signs the hub's certificate; keep the proxy-data volume to keep it)"
    )


@operation()
def healthy(
    url: str,
    server_name: str,
    port: int,
    address: str,
    stack: Stack,
    trust: tuple[str, ...] = (),
    obtained: str | None = None,
    obtained_wait: int = 120,
    wait: int = 120,
):
    """
    Fail the deploy with a clear message unless the hub answers 200 at ``url`` through the
    proxy, over HTTPS, with the certificate expected, so that a fallback certificate fails the
    check: one that chains to ``trust`` (curl's words: a CA file, a pinned key), or the one the
    proxy ``obtained`` (its path in the proxy). Changes nothing; checks when the deploy executes.

    + url: the hub's health URL as users open it
    + server_name, port: the name and port users open
    + address: where the host reaches the proxy
    + stack: the compose project with the proxy's service, for its logs
    + trust: curl arguments that accept only the expected certificate
    + obtained: the certificate the proxy obtains (ACME), in the proxy
    + obtained_wait: seconds the proxy may take to obtain it
    + wait: seconds the hub may take to answer through the proxy

    **Example:**

    .. code:: python

        proxy.healthy(
            name="Check the hub answers through the proxy",
            url="https://hub.lab.example.org/hub/health",
            server_name="hub.lab.example.org", port=443, address="127.0.0.1",
            stack=Stack.from_settings(settings),
            trust=("--cacert", "/opt/labhub/proxy/local-ca-root.crt"),
        )
    """
    yield from ()
    if not host.state.is_executing:
        host.noop("the check through the proxy runs when the deploy executes")
        return
    compose_file, project, service = stack.compose_file, stack.project, stack.proxy_service

    def fail(problem: str):
        served = host.get_fact(
            ServedCertificate, address=address, port=port, server_name=server_name
        )
        logs = host.get_fact(
            ComposeLogs, compose_file=compose_file, project=project, service=service
        )
        raise OperationError(
            f"the hub through the proxy: {problem}. The proxy serves "
            f"{served or 'no certificate'}.\nLast log lines of the proxy:\n{logs}"
        )

    if obtained:
        pem = host.get_fact(
            ProxyFile,
            compose_file=compose_file,
            project=project,
            service=service,
            path=obtained,
            wait=obtained_wait,
        )
        if not pem:
            fail(
                f"no certificate for {server_name} obtained within {obtained_wait} s "
                f"({obtained}; acme_wait sets how long to wait)"
            )
        # The key of the certificate the proxy obtained, and no other.
        trust = ("--insecure", "--pinnedpubkey", tls.leaf(pem.encode()).pin)
    curl_args = ("--resolve", f"{server_name}:{port}:{address}", *trust)
    status = host.get_fact(HttpStatus, url=url, wait=wait, curl_args=curl_args)
    if status != 200:
        fail(
            f"{url} answered HTTP {status} within {wait} s"
            if status
            else f"{url} did not answer with the expected certificate within {wait} s"
        )
    host.noop(f"the hub answers at {url} with the expected certificate")
