"""
The engine filter: the one service of the hub's stack that holds the Docker engine's socket. The
hub reaches the engine only through it (DOCKER_HOST), on a network of their own that labs are
not on, and with its login (the netrc file both containers mount, root only); each request is
judged by labhub_engine.refusal and forwarded as it is, or refused with 403 and the reason, which
the filter's log names too (``docker compose logs engine``).

    python3 -m labhub_engine_filter
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import netrc
import os
from pathlib import Path

import aiohttp
from aiohttp import web
from labhub_engine import Policy, Request, redacted, refusal, target_kind

SOCKET = os.environ.get("LABHUB_ENGINE_SOCKET", "/var/run/docker.sock")
LOGIN_FILE = os.environ.get("NETRC", "/etc/labhub-engine/netrc")
# The name the hub reaches the filter by (the compose service), its netrc machine.
MACHINE = os.environ.get("LABHUB_ENGINE_NAME", "engine")
PORT = int(os.environ.get("LABHUB_ENGINE_PORT", "2375"))
SETTINGS_DIR = Path(os.environ.get("LABHUB_CONFIG_DIR", "/etc/labhub"))
# Request and answer headers never forwarded (the hop's own, and the hub's login).
HOP_HEADERS = frozenset(
    {"authorization", "host", "content-length", "transfer-encoding", "connection", "keep-alive"}
)
INSPECT = {
    "container": "/containers/{}/json",
    "service": "/services/{}",
    "config": "/configs/{}",
}

log = logging.getLogger("labhub.engine")


def expected_login() -> str:
    login, _, password = netrc.netrc(LOGIN_FILE).authenticators(MACHINE)
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def policy() -> Policy:
    """The settings and accounts as the hub reads them, read per request (an account the
    deploy adds needs no restart)."""
    return Policy(
        json.loads((SETTINGS_DIR / "settings.json").read_text()),
        json.loads((SETTINGS_DIR / "accounts.json").read_text()),
    )


async def labels(engine: aiohttp.ClientSession, kind: str, name: str) -> dict | None:
    """The labels of the container, service or config a request names; None when it is gone."""
    async with engine.get("http://engine" + INSPECT[kind].format(name)) as answer:
        if answer.status == 404:
            return None
        found = await answer.json()
    spec = found.get("Config") if kind == "container" else found.get("Spec")
    return (spec or {}).get("Labels") or {}


async def handle(request: web.Request) -> web.StreamResponse:
    login = request.app["login"]
    if not hmac.compare_digest(request.headers.get("Authorization", ""), login):
        log.warning("refused %s %s: no login", request.method, request.path)
        return web.json_response({"message": "labhub engine filter: login required"}, status=401)
    data = await request.read()
    body = None
    if data and request.content_type == "application/json":
        try:
            body = json.loads(data)
        except ValueError:
            return web.json_response({"message": "labhub engine filter: bad JSON"}, status=400)
    asked = Request(request.method, request.raw_path.split("?", 1)[0], dict(request.query), body)
    engine = request.app["engine"]
    target = None
    kind = target_kind(asked)
    if kind is not None:
        name = _named(asked.path)
        target = await labels(engine, kind, name)
        if target is None:
            return web.json_response({"message": f"No such {kind}: {name}"}, status=404)
    reason = refusal(asked, policy(), target)
    if reason is not None:
        log.warning("refused %s %s: %s", request.method, asked.path, reason)
        return web.json_response({"message": f"labhub engine filter: {reason}"}, status=403)
    if asked.path.endswith(("/containers/create", "/services/create")) and body is not None:
        log.info("%s %s: %s", request.method, asked.path, json.dumps(redacted(body)))
    else:
        log.info("%s %s", request.method, asked.path)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
    async with engine.request(
        request.method, "http://engine" + request.raw_path, data=data or None, headers=headers
    ) as answer:
        response = web.StreamResponse(
            status=answer.status,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS},
        )
        await response.prepare(request)
        # Streamed as it comes: pulls report progress, waits answer when the container stops.
        async for chunk in answer.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


def _named(path: str) -> str:
    """The container, service or config a path names (``/v1.45/containers/ID/start``)."""
    parts = path.strip("/").split("/")
    if parts[0].startswith("v") and parts[0][1:2].isdigit():
        parts = parts[1:]
    return parts[1]


async def engine_session(app: web.Application):
    app["engine"] = aiohttp.ClientSession(
        connector=aiohttp.UnixConnector(path=SOCKET),
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=False,
    )
    yield
    await app["engine"].close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = web.Application(client_max_size=64 * 1024**2)
    app["login"] = expected_login()
    app.cleanup_ctx.append(engine_session)
    app.router.add_route("*", "/{path:.*}", handle)
    web.run_app(app, port=PORT, access_log=None, print=None)


if __name__ == "__main__":
    main()
