"""
The hub server's registry as the lab nodes reach it, as pure functions of the settings: the name
they pull lab images by, the proxy's site that serves it to them alone (TLS with the hub's
certificate, a login, only the nodes' addresses), where the login's files are, what a node
trusts the certificate by, and which images each node pre-pulls. The same answers in a dry run
and a real one.

The login is generated on the hub server and never leaves the lab's servers (``tasks/hub.py``
makes it, ``tasks/node_images.py`` copies it to the nodes), in root-only files under
``SECRETS_DIR``::

    password               the login's password (generated once; delete it to make a new one)
    proxy.env              its bcrypt hash, as the proxy's environment (LOGIN_HASH_VARIABLE),
                           sourced by the proxy's command
    docker/config.json     the Docker client configuration that logs in with it (``auths``):
                           on the hub server the hub container's (``HUB_DOCKER_CONFIG``), on
                           each node the one its pre-pulls run with (``DOCKER_CONFIG``)

A node's own ``/root/.docker/config.json`` (an admin's logins) is never touched: swarm tasks get
their registry login from the service the hub creates, and labhub's own pulls name their own
configuration.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from labhub.settings import ROOT, LabImage, Settings, url_host

# The login's user name (the password is what is secret).
USER = "labhub"
SECRETS_DIR = "/etc/labhub/registry"
PASSWORD_FILE = f"{SECRETS_DIR}/password"
PROXY_ENV_FILE = f"{SECRETS_DIR}/proxy.env"
DOCKER_CONFIG = f"{SECRETS_DIR}/docker"
DOCKER_CONFIG_FILE = f"{DOCKER_CONFIG}/config.json"
# Where the proxy container reads proxy.env.
PROXY_ENV_PATH = "/etc/caddy/labhub-registry-login.env"
# The variable of proxy.env that holds the login's hash; Caddy reads it as {env.NAME}.
LOGIN_HASH_VARIABLE = "LABHUB_NODE_REGISTRY_HASH"
# Where the hub container finds the login (docker-py reads ~/.docker/config.json; the hub runs
# as root): mounted read-only, so that services it creates carry the registry login.
HUB_DOCKER_CONFIG = "/root/.docker"
# Makes the files above on the hub server, or says which are missing or stale.
LOGIN_SCRIPT = ROOT / "files" / "registry-login.sh"
# The Docker engine's trust for one registry: certs.d/<host:port>/ca.crt.
CERTS_DIR = "/etc/docker/certs.d"
# The realm the registry's login is asked with (what a refused client is told).
REALM = "labhub registry"


def address(settings: Settings) -> str:
    """The registry as the nodes address it (``hub.example.org:5443``): the hub's name, which
    its certificate is for, and node_registry_port. Lab images on the nodes are
    ``<address>/<name>:<version>``."""
    return f"{url_host(settings.hub_domain)}:{settings.node_registry_port}"


def image(settings: Settings, lab: LabImage) -> str:
    """A lab image as the nodes pull it."""
    return f"{address(settings)}/{lab.ref}"


def node_images(settings: Settings, node: str) -> list[LabImage]:
    """
    The lab images the lab node ``node`` (its inventory name) pre-pulls, so that a spawn there
    never waits for a pull: those its labs may run. Every lab image for now, on every node;
    placement by group (which nodes a group's labs may run on) narrows it here, and only here.
    """
    return list(settings.lab_images)


def certificate_authority(settings: Settings) -> str | None:
    """
    What a node's engine trusts the registry's certificate by (its ``ca.crt``): ``"internal"``
    (the proxy's local CA root, on the hub server once the proxy made it), ``"files"`` (the
    lab's chain, tls_cert) or None (tls "acme": a public CA, which the nodes' system trusts).
    """
    return {"internal": "internal", "files": "files"}.get(settings.tls)


def ca_file(settings: Settings) -> str:
    """Where a node's engine reads the registry's CA."""
    return f"{CERTS_DIR}/{address(settings)}/ca.crt"


def docker_config_parts(settings: Settings) -> tuple[str, str]:
    """
    The Docker client configuration that logs in to the nodes' registry, as the JSON text before
    and after its ``auth`` value, quotes included (the value, base64 of ``user:password``, is made
    on the hub server by LOGIN_SCRIPT; its alphabet needs no escaping): the JSON is dumped here,
    never pasted.
    """
    marker = "LABHUB-AUTH"
    text = json.dumps({"auths": {address(settings): {"auth": marker}}}, indent=2)
    before, after = text.split(marker)
    return before, after + "\n"


def proxy_server(settings: Settings, node_addresses: Sequence[str], upstream: str) -> dict:
    """
    The proxy's server (Caddy JSON) of the registry for the nodes, on node_registry_port with the
    hub's certificate: a client outside ``node_addresses`` is refused (403) before it is asked to
    log in, one without the login gets 401, and the nodes' requests go to the registry
    (``upstream``). Its access log names each request's user and address.
    """
    domain = settings.hub_domain
    ranges = sorted(set(node_addresses))
    return {
        "listen": [f":{settings.node_registry_port}"],
        "protocols": ["h1", "h2"],
        # Any name: the certificate is the hub's (by SNI, or the default below).
        "routes": [
            {
                # An empty list would match nobody: "not" of it refuses all.
                "match": [{"not": [{"remote_ip": {"ranges": ranges}}]}] if ranges else [],
                "handle": [{"handler": "static_response", "status_code": 403}],
                "terminal": True,
            },
            {
                "handle": [
                    # Docker clients expect it on every answer, the 401 too.
                    {
                        "handler": "headers",
                        "response": {"set": {"Docker-Distribution-Api-Version": ["registry/2.0"]}},
                    },
                    {
                        "handler": "authentication",
                        "providers": {
                            "http_basic": {
                                "accounts": [
                                    {"username": USER, "password": f"{{env.{LOGIN_HASH_VARIABLE}}}"}
                                ],
                                "realm": REALM,
                                # bcrypt once per login, not once per blob request.
                                "hash_cache": {},
                            }
                        },
                    },
                    {"handler": "reverse_proxy", "upstreams": [{"dial": upstream}]},
                ],
            },
        ],
        "automatic_https": {"disable_redirects": True},
        "tls_connection_policies": [{"default_sni": domain}],
        # Access logs (the proxy's output): who pulled what, from where.
        "logs": {},
    }


def ca_source_file(settings: Settings) -> Path | None:
    """The lab's chain on the admin's machine, with tls "files" (what the nodes trust)."""
    return Path(settings.tls_cert) if settings.tls == "files" else None
