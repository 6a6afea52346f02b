"""
The hub's certificate as the proxy serves it: what the ``files`` mode's certificate and key are
checked against before any change, and the pin the health check expects the proxy to serve.
Pure functions of PEM bytes, the same in a dry run and a real one.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID


class CertificateProblem(ValueError):
    """A certificate or key the proxy could not serve for the hub, in the admin's words."""


@dataclass(frozen=True)
class Certificate:
    """The leaf of a PEM chain, as the checks and the health check need it."""

    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    public_key: bytes  # DER SubjectPublicKeyInfo
    # The subject's CN, which browsers ignore: named when the certificate has no names.
    common_name: str | None = None
    # The public keys of the chain's other certificates, to tell a chain in the wrong order.
    chain_keys: tuple[bytes, ...] = ()

    def days_left(self, now: datetime | None = None) -> int:
        return (self.not_after - (now or datetime.now(UTC))).days

    @property
    def pin(self) -> str:
        """The public key pin of the leaf, as curl's ``--pinnedpubkey`` takes it."""
        return "sha256//" + base64.b64encode(hashlib.sha256(self.public_key).digest()).decode()

    def covers(self, name: str) -> bool:
        """Whether a TLS client opening ``name`` accepts this certificate's names."""
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            address = None
        for entry in self.names:
            if address is not None:
                if entry == str(address):
                    return True
            elif entry.startswith("*."):
                # A wildcard stands for exactly one leftmost label.
                head, _, rest = name.partition(".")
                if head and rest.lower() == entry[2:].lower():
                    return True
            elif entry.lower() == name.lower():
                return True
        return False


def _spki(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def leaf(pem: bytes) -> Certificate:
    """The first certificate of a PEM chain (the server's own; the rest are intermediates)."""
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise CertificateProblem(
            "is not a PEM certificate chain (no readable BEGIN CERTIFICATE block)"
        ) from None
    cert = chain[0]
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        names = tuple(san.get_values_for_type(x509.DNSName)) + tuple(
            str(a) for a in san.get_values_for_type(x509.IPAddress)
        )
    except x509.ExtensionNotFound:
        # Browsers ignore the subject's CN; a certificate without names covers nothing.
        names = ()
    return Certificate(
        names,
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
        _spki(cert.public_key()),
        str(common_names[0].value) if common_names else None,
        tuple(_spki(c.public_key()) for c in chain[1:]),
    )


def key_public_bytes(pem: bytes) -> bytes:
    """The public half of a PEM private key, to compare with a certificate's."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise CertificateProblem(
            "is encrypted: the proxy needs the key without a passphrase "
            "(openssl pkey -in KEY -out KEY.plain)"
        ) from None
    except ValueError:
        raise CertificateProblem("is not a PEM private key") from None
    return _spki(key.public_key())


def served_problems(
    cert: Certificate, key_public: bytes, name: str, now: datetime | None = None
) -> list[str]:
    """What keeps a certificate and key from serving ``name`` now (empty: nothing)."""
    now = now or datetime.now(UTC)
    problems = []
    if cert.public_key != key_public and key_public in cert.chain_keys:
        position = cert.chain_keys.index(key_public) + 2
        problems.append(
            f"tls_cert: the chain is in the wrong order: the key is for its "
            f"certificate number {position}; put the hub's own certificate first, "
            "then the intermediates"
        )
        return problems
    if cert.public_key != key_public:
        problems.append("tls_key: does not match tls_cert (the key is for another certificate)")
    if not cert.names:
        cn = f" only the subject CN {cert.common_name!r}," if cert.common_name else ""
        problems.append(
            f"tls_cert: has no subjectAltName names,{cn} which browsers ignore: "
            f"have it reissued with subjectAltName DNS:{name}"
        )
    elif not cert.covers(name):
        problems.append(f"tls_cert: is for {', '.join(cert.names)}, not for hub_domain {name!r}")
    if cert.not_after <= now:
        problems.append(f"tls_cert: expired on {cert.not_after:%Y-%m-%d}: renew it")
    elif cert.not_before > now:
        problems.append(f"tls_cert: is valid only from {cert.not_before:%Y-%m-%d %H:%M} UTC")
    return problems
