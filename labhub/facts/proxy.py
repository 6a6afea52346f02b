"""
Facts about the hub's HTTPS proxy: the certificates in its data volume, and the certificate it
serves. Paired with ``labhub.operations.proxy``.
"""

from __future__ import annotations

from pyinfra.api import FactBase

from labhub.commands import compose_command, served_certificate_command, shell, wait_command


class ProxyFile(FactBase[str]):
    """
    A file in the proxy container (a certificate Caddy obtained, its local CA's root), waiting up
    to ``wait`` seconds for it to appear: Caddy obtains certificates once it runs. Empty when it
    did not appear.

    .. code:: python

        "-----BEGIN CERTIFICATE-----\\nMIIB..."
    """

    default = str
    requires_command = "docker"

    def command(
        self, compose_file: str, project: str, service: str, path: str, wait: int = 0
    ) -> str:
        read = compose_command(compose_file, project, "exec", "-T", service, "cat", path)
        return shell(f"{wait_command(wait, read)} 2>/dev/null", "true")

    def process(self, output) -> str:
        return "\n".join(output) + "\n" if output else ""


class ServedCertificate(FactBase[str]):
    """
    Who the certificate that ``address:port`` serves for ``name`` is for and from (for error
    messages): openssl's subject, issuer and end date lines; empty when nothing answered TLS.

    .. code:: python

        "subject=CN = hub.lab.example.org\\nissuer=CN = Caddy Local Authority\\nnotAfter=..."
    """

    default = str
    requires_command = "openssl"

    def command(self, address: str, port: int, server_name: str) -> str:
        return f"{served_certificate_command(f'{address}:{int(port)}', server_name)} || true"

    def process(self, output) -> str:
        return "\n".join(output)
