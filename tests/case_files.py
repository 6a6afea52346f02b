"""
Table-driven cases kept as JSON files, one case a file (as pyinfra's tests/operations/*/ keep
theirs): ``tests/cases/<kind>/<case>.json``. A setting naming a file on the admin's machine is
written as ``{cert}``, ``{key}``, ``{ca}`` or ``{credentials}``: the tests make those files (a
certificate and key for hub.lab.example.org, valid for 90 days, the certificate also as a CA, a
CIFS credentials file) and put their paths there.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CASES = Path(__file__).parent / "cases"
DOMAIN = "hub.lab.example.org"
# Readable by their owner alone, or the settings refuse them (as ssh refuses a key).
SECRETS = ("key", "credentials")


def cases(kind: str) -> list:
    """Each case of ``tests/cases/<kind>/``, as a pytest parameter named by its file."""
    paths = sorted((CASES / kind).glob("*.json"))
    assert paths, f"no cases in {CASES / kind}"
    return [pytest.param(json.loads(path.read_text()), id=path.stem) for path in paths]


def admin_files(folder: Path) -> dict[str, str]:
    """The files settings name, made in ``folder``: their paths by label."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    contents = {
        "cert": cert.public_bytes(serialization.Encoding.PEM),
        "key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }
    contents["ca"] = contents["cert"]
    contents["credentials"] = b"username=lab\npassword=s3cret-pw\n"
    paths = {}
    for label, content in contents.items():
        (folder / f"{label}.pem").write_bytes(content)
        if label in SECRETS:
            (folder / f"{label}.pem").chmod(0o600)
        paths[label] = str(folder / f"{label}.pem")
    return paths


def resolve(value, files: dict[str, str]):
    """``value`` with each ``{label}`` string of ``files`` made that file's path."""
    if isinstance(value, dict):
        return {k: resolve(v, files) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, files) for v in value]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return files.get(value[1:-1], value)
    return value
