"""
The hub's HTTPS proxy as pure functions of the settings: its configuration in Caddy's own JSON
(``hub_dir/proxy/caddy.json``), the files it reads beside it, one hash of both (the label that
recreates the proxy when either changes), and where Caddy keeps what it makes in its data
volume. The same answers in a dry run and a real one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from labhub import node_registry
from labhub.settings import Settings
from labhub.stack import PROXY_CONFIG_DIR, PROXY_DATA_PATH, REGISTRY_INTERNAL_PORT, Stack

# The root certificate of Caddy's local CA (tls "internal"), in its data volume.
LOCAL_ROOT = f"{PROXY_DATA_PATH}/caddy/pki/authorities/local/root.crt"
# How long browsers remember to use HTTPS only (HSTS): one year.
HSTS_MAX_AGE = 365 * 24 * 3600
# What the proxy compresses (zstd, else gzip): pages, scripts, styles, JSON, SVG. Not event
# streams (the spawn's progress), which must reach the browser as they come.
COMPRESSED_TYPES = (
    "text/html*",
    "text/css*",
    "text/plain*",
    "text/javascript*",
    "application/javascript*",
    "application/json*",
    "image/svg+xml*",
)
# JupyterLab's static files named by their content's hash (webpack's 20 hex digits), under a
# lab's static/lab/ and its extensions' static/: a new JupyterLab names its files anew, so a
# browser may keep them. A lab's pages, its API and its other files keep the lab's own headers
# (no-cache), and so does everything of the hub's.
HASHED_LAB_FILE = r"^/user/[^/]+/(?:[^/]+/)?(?:static/lab|lab/extensions/.+/static)/(?:.+/)?[^/]*[0-9a-f]{20}[^/]*$"
KEPT = f"public, max-age={365 * 24 * 3600}, immutable"


def config(settings: Settings, node_addresses: Sequence[str] = ()) -> dict:
    """
    The proxy's configuration, in Caddy's native JSON: the hub at ``hub_domain`` over HTTPS
    (websockets included), HSTS, text compressed, JupyterLab's hashed files kept by browsers
    (``HASHED_LAB_FILE``), HTTP redirected to HTTPS, and a certificate from the one
    source ``tls`` names. Only that source: with a directory or files given, Caddy never falls
    back to another CA or to a self-signed certificate. With lab nodes, also the registry for
    them alone (``labhub.node_registry.proxy_server``; ``node_addresses``: theirs, as the hub
    server sees them), with the same certificate.
    """
    stack = Stack.from_settings(settings)
    domain = settings.hub_domain
    port = "" if settings.https_port == 443 else f":{settings.https_port}"
    folder = f"{PROXY_CONFIG_DIR}/"
    if settings.tls == "files":
        # Caddy leaves a name alone when a loaded certificate covers it.
        tls_app = {
            "certificates": {
                "load_files": [{"certificate": folder + "cert.pem", "key": folder + "key.pem"}]
            }
        }
    else:
        issuer: dict = {"module": "internal"}
        if settings.tls == "acme":
            issuer = {"module": "acme", "ca": settings.acme_directory, "email": settings.acme_email}
            if settings.acme_ca_root:
                issuer["trusted_roots_pem_files"] = [folder + "acme-ca-root.pem"]
        tls_app = {"automation": {"policies": [{"subjects": [domain], "issuers": [issuer]}]}}
    hub = {
        "listen": [f":{settings.https_port}"],
        # Only TCP is published: no HTTP/3 (UDP) to advertise.
        "protocols": ["h1", "h2"],
        "routes": [
            {
                "match": [{"host": [domain]}],
                "handle": [
                    {
                        "handler": "headers",
                        "response": {
                            "set": {"Strict-Transport-Security": [f"max-age={HSTS_MAX_AGE}"]}
                        },
                    },
                    {
                        "handler": "encode",
                        "encodings": {"zstd": {}, "gzip": {}},
                        "prefer": ["zstd", "gzip"],
                        "match": {"headers": {"Content-Type": list(COMPRESSED_TYPES)}},
                    },
                    {
                        "handler": "subroute",
                        "routes": [
                            {
                                "match": [{"path_regexp": {"pattern": HASHED_LAB_FILE}}],
                                "handle": [
                                    {
                                        "handler": "headers",
                                        "response": {
                                            "set": {"Cache-Control": [KEPT]},
                                            "deferred": True,
                                            "require": {"status_code": [200, 304]},
                                        },
                                    }
                                ],
                            }
                        ],
                    },
                    # Sets X-Forwarded-* itself, dropping any a client sent.
                    {
                        "handler": "reverse_proxy",
                        "upstreams": [{"dial": f"{stack.hub_service}:{stack.hub.port}"}],
                    },
                ],
                "terminal": True,
            }
        ],
        # Caddy's own redirect leaves out a port other than 443: the one below keeps it.
        "automatic_https": {"disable_redirects": True},
        # Clients opening an IP address send no server name: they get the hub's certificate.
        "tls_connection_policies": [{"default_sni": domain}],
    }
    redirect = {
        "listen": [f":{settings.http_port}"],
        "protocols": ["h1"],
        "routes": [
            {
                "handle": [
                    {
                        "handler": "static_response",
                        "status_code": 308,
                        "headers": {
                            "Location": [f"https://{{http.request.host}}{port}{{http.request.uri}}"]
                        },
                    }
                ]
            }
        ],
    }
    servers = {"hub": hub, "redirect": redirect}
    if settings.with_lab_nodes:
        servers["registry"] = node_registry.proxy_server(
            settings, node_addresses, f"{stack.registry_service}:{REGISTRY_INTERNAL_PORT}"
        )
    return {
        # Changes come as a new container (compose recreates it), never through the admin API.
        "admin": {"disabled": True},
        "apps": {
            "http": {
                "http_port": settings.http_port,
                "https_port": settings.https_port,
                "servers": servers,
            },
            "tls": tls_app,
            # The local CA stays in the proxy's volume; nothing is added to the container's trust.
            "pki": {"certificate_authorities": {"local": {"install_trust": False}}},
        },
    }


def config_text(settings: Settings, node_addresses: Sequence[str] = ()) -> str:
    """``caddy.json`` as the deploy writes it; empty with tls "off", which runs no proxy."""
    if settings.tls == "off":
        return ""
    return json.dumps(config(settings, node_addresses), indent=2, sort_keys=True) + "\n"


def obtained_certificate(settings: Settings) -> str:
    """Where in the proxy Caddy keeps the certificate it obtained for hub_domain (tls "acme"
    and "internal"): its storage names the issuer by the directory's host and path, with
    characters outside [a-z0-9_.@-] dropped and ":" made "-"."""
    if settings.tls == "internal":
        issuer = "local"
    else:
        url = urlsplit(settings.acme_directory)
        issuer = url.netloc + (
            "-" + url.path.replace("/", "-").strip("-") if url.path.strip("/") else ""
        )
        issuer = re.sub(r"[^\w@.-]", "", issuer.lower().replace(":", "-"))
    domain = settings.hub_domain
    return f"{PROXY_DATA_PATH}/caddy/certificates/{issuer}/{domain}/{domain}.crt"


def files(settings: Settings) -> dict[str, bytes]:
    """The files the proxy reads besides its configuration, by name in the proxy folder:
    the certificate and key (tls "files"), the ACME directory's CA (tls "acme")."""
    if settings.tls == "files":
        return {
            "cert.pem": Path(settings.tls_cert).read_bytes(),
            "key.pem": Path(settings.tls_key).read_bytes(),
        }
    if settings.tls == "acme" and settings.acme_ca_root:
        return {"acme-ca-root.pem": Path(settings.acme_ca_root).read_bytes()}
    return {}


def digest(text: str, files: dict[str, bytes]) -> str:
    """One hash of the proxy's configuration and files: a new certificate recreates the proxy
    as a new configuration does. (A hash, so no secret is put in the label.)"""
    hashed = hashlib.sha256(text.encode())
    for name in sorted(files):
        hashed.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return hashed.hexdigest()
