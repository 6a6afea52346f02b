"""
A caching proxy of Debian's mirror for the image builds on this machine: each build's apt
(``http_proxy``, a build arg Docker passes to every RUN without the Dockerfile declaring it, and
leaves out of the image's history) fetches through it, so what several images install (python3,
ca-certificates, curl, and the mirror's indexes each build reads) is downloaded once. Packages
(``.deb``, named by their version) and indexes by hash never change: they are kept on disk
(``.labhub/apt-cache``) for the next build from nothing; the rest (``InRelease``) is kept for
this process's builds only, so a newer release is seen by the next run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

logger = logging.getLogger(__name__)

CACHE = Path(__file__).resolve().parent.parent / ".labhub" / "apt-cache"
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()
# This process's copies of what may change (InRelease): url -> file.
_RUN = Path(tempfile.mkdtemp(prefix="labhub-apt-run-"))


def _immutable(url: str) -> bool:
    return url.endswith((".deb", ".udeb")) or "/by-hash/" in url


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # apt keeps its connection and pipelines its requests

    def do_GET(self) -> None:
        url = self.path
        if not url.startswith("http://"):
            self.send_error(400, "only plain-HTTP mirrors are proxied")
            return
        key = hashlib.sha256(url.encode()).hexdigest()
        path = (CACHE if _immutable(url) else _RUN) / key
        with _LOCKS_LOCK:
            lock = _LOCKS.setdefault(key, threading.Lock())
        with lock:  # two builds asking for one package at once: fetched once
            if not path.exists():
                try:
                    _fetch(url, path)
                except urllib.error.HTTPError as e:  # apt falls back on a missing index
                    self.send_error(e.code, e.reason)
                    return
                except OSError as e:
                    self.send_error(502, str(e))
                    return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()
        with path.open("rb") as body:
            shutil.copyfileobj(body, self.wfile)

    def log_message(self, format: str, *args) -> None:
        logger.debug("apt cache: " + format, *args)


def _fetch(url: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Straight to the mirror, whatever proxy this process's environment names.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with (
        opener.open(url, timeout=60) as answer,
        tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as part,
    ):
        shutil.copyfileobj(answer, part)
    os.replace(part.name, path)


@cache
def apt_proxy() -> str:
    """The proxy's URL as builds on the host's network reach it, started once a process."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="apt cache", daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"
