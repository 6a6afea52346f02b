"""
A client of a Docker registry (HTTP API v2) that reads a whole registry in one run and deletes
manifests by digest. Python standard library only (3.8+): labhub ships this file's source to the
host and runs it there with ``python3``, so one SSH round trip reads every repository, tag,
digest, creation time and size, however many tags there are. Tests and the benchmark import and
run the same code locally.

Reading:

- the catalog and every tag list are read page by page (``?n=``), following ``Link: <...>;
  rel="next"`` to the end (relative links are resolved against the registry's base URL);
- manifests are requested with the Accept types of Docker schema 2 manifests and manifest lists and
  OCI manifests and indexes, so the digest read is the one ``docker push`` printed (without them
  a 2.8 registry answers an index's tag with its linux/amd64 child);
- each distinct manifest and image config is requested once; requests go in parallel through a
  bounded pool of threads, each with its own keep-alive connection.

Errors are distinct exceptions (and distinct ``kind`` values in the JSON the command line prints):
``unreachable``, ``auth`` (401: never read as "not found"), ``deletes-disabled`` (405 with code
UNSUPPORTED), ``read-only`` (a plain 405: maintenance mode), ``not-found``, ``protocol``.

Manifests no tag points at are invisible to the API; with ``--storage`` (the registry's
filesystem storage folder, as the host sees it) the collector also lists every manifest revision
and every blob the storage holds, so that what garbage collection would free is known exactly.

Command line (how labhub runs it on the host)::

    python3 client.py collect http://127.0.0.1:5000 [--workers 8] [--page-size 100] [--probe-delete]
        [--storage /var/lib/docker/volumes/labhub_registry-data/_data]
    python3 client.py delete http://127.0.0.1:5000 --plan PLAN.json [--workers 8]

``collect`` prints one JSON document. ``delete`` reads its deletions from a file (any number of
them: nothing about them is on a command line), prints its progress a batch at a time, and ends
with one JSON line of counts, what it left alone and the error that stopped it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1_TYPES = (
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
)
IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX))

DEFAULT_WORKERS = 8
DEFAULT_PAGE_SIZE = 100
# Deletions are checked and sent this many at a time (in parallel); progress is printed after each.
DELETE_BATCH = 250
# Where the filesystem storage driver keeps repositories and blobs under its root directory.
STORAGE_V2 = ("docker", "registry", "v2")
# Image configs larger than this are not image configs worth reading for a creation time.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
# A digest no manifest has: a DELETE of it tells deletes enabled (404), disabled (405
# UNSUPPORTED) and read-only (plain 405) apart without changing anything.
PROBE_DIGEST = "sha256:" + "0" * 64
PROBE_REPOSITORY = "labhub-delete-probe"
ATTESTATION_TYPE = "attestation-manifest"


class RegistryError(Exception):
    """A registry answered what labhub cannot go on with (or did not answer)."""

    kind = "error"

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "message": self.message,
            "status": self.status,
            "code": self.code,
        }


class Unreachable(RegistryError):
    kind = "unreachable"


class AuthenticationRequired(RegistryError):
    kind = "auth"


class DeletesDisabled(RegistryError):
    kind = "deletes-disabled"


class ReadOnly(RegistryError):
    kind = "read-only"


class NotFound(RegistryError):
    kind = "not-found"


class ProtocolError(RegistryError):
    kind = "protocol"


ERROR_KINDS = {
    cls.kind: cls
    for cls in (
        RegistryError,
        Unreachable,
        AuthenticationRequired,
        DeletesDisabled,
        ReadOnly,
        NotFound,
        ProtocolError,
    )
}


def error_from_dict(data: dict) -> RegistryError:
    """The exception a JSON ``error`` object printed by the command line stands for."""
    cls = ERROR_KINDS.get(data.get("kind") or "", RegistryError)
    return cls(data.get("message") or "registry error", data.get("status"), data.get("code"))


class Response:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def error_codes(self) -> list:
        try:
            data = self.json()
        except ValueError:
            return []
        if not isinstance(data, dict):
            return []
        return [e.get("code") for e in data.get("errors") or [] if isinstance(e, dict)]


def parse_next_link(value: str | None) -> str | None:
    """The target of ``rel="next"`` in a Link header, or None."""
    if not value:
        return None
    for part in value.split(","):
        match = re.match(r"\s*<([^>]*)>\s*;(.*)$", part)
        if match and re.search(r'rel="?next"?', match.group(2)):
            return match.group(1)
    return None


def version_key(tag: str) -> tuple:
    """
    The order of tags from oldest to newest: digit runs compare as numbers (``1.10`` after
    ``1.9``), and a word sorts before a number (``latest`` names no version, so it is never
    "newer" than one). The hub's spawn form and the registry pruning both order tags by it.
    """
    parts = []
    for chunk in re.findall(r"\d+|\D+", tag):
        parts.append((1, int(chunk), "") if chunk.isdigit() else (0, 0, chunk))
    return (tuple(parts), tag)


class Registry:
    """One registry's HTTP API v2, used from many threads (a keep-alive connection per thread)."""

    def __init__(self, url: str, timeout: float = 30, workers: int = DEFAULT_WORKERS):
        parsed = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ProtocolError("%r is not an http(s) registry URL" % url)
        self.url = "%s://%s" % (parsed.scheme, parsed.netloc)
        self.timeout = timeout
        self.workers = max(1, int(workers))
        self.requests = 0
        self._count_lock = threading.Lock()
        self._local = threading.local()

    # --- HTTP -----------------------------------------------------------------------------------

    def _connection(self, scheme: str, netloc: str, fresh: bool = False):
        connections = getattr(self._local, "connections", None)
        if connections is None:
            connections = self._local.connections = {}
        key = (scheme, netloc)
        if fresh and key in connections:
            connections.pop(key).close()
        if key not in connections:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            connections[key] = cls(netloc, timeout=self.timeout)
        return connections[key]

    def request(
        self, method: str, target: str, headers: dict | None = None, redirects: int = 5
    ) -> Response:
        """One request (``target`` a path or a URL), following redirects of GET and HEAD."""
        url = urllib.parse.urljoin(self.url + "/", target)
        for _ in range(redirects + 1):
            parts = urllib.parse.urlsplit(url)
            path = parts.path + ("?" + parts.query if parts.query else "")
            response = self._send(parts.scheme, parts.netloc, method, path, headers or {})
            location = response.headers.get("location")
            if (
                response.status in (301, 302, 303, 307, 308)
                and location
                and method in ("GET", "HEAD")
            ):
                url = urllib.parse.urljoin(url, location)
                continue
            return response
        raise ProtocolError("too many redirects from %s" % url)

    def _send(self, scheme, netloc, method, path, headers) -> Response:
        with self._count_lock:
            self.requests += 1
        last_error = None
        for attempt in range(2):
            conn = self._connection(scheme, netloc, fresh=attempt > 0)
            try:
                conn.request(method, path, headers=headers)
                raw = conn.getresponse()
                body = raw.read()
                result = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, body)
                if raw.getheader("connection", "").lower() == "close":
                    conn.close()
                return result
            except (OSError, http.client.HTTPException) as e:
                # A keep-alive connection the server closed: retry once on a new one.
                last_error = e
                conn.close()
        raise Unreachable(
            "the registry at %s://%s does not answer: %s" % (scheme, netloc, last_error)
        )

    def check(self, response: Response, what: str, ok=(200,)) -> Response:
        """Return the response when its status is in ``ok``, else raise the matching error."""
        if response.status in ok:
            return response
        codes = response.error_codes()
        code = codes[0] if codes else None
        if response.status == 401:
            raise AuthenticationRequired(
                "%s: the registry at %s requires authentication (401 %s); labhub reads and "
                "prunes registries without credentials" % (what, self.url, code or "UNAUTHORIZED"),
                401,
                code,
            )
        if response.status == 405 and "UNSUPPORTED" in codes:
            raise DeletesDisabled(
                "%s: the registry at %s has deletes disabled (405 UNSUPPORTED): set "
                "storage.delete.enabled: true in its configuration" % (what, self.url),
                405,
                code,
            )
        if response.status == 405:
            raise ReadOnly(
                "%s: the registry at %s refused the request with a plain 405: it is in read-only "
                "maintenance mode (storage.maintenance.readonly)" % (what, self.url),
                405,
                code,
            )
        if response.status == 404:
            raise NotFound("%s: not found (404 %s)" % (what, code or ""), 404, code)
        body = response.body[:300].decode("utf-8", "replace")
        raise ProtocolError(
            "%s: the registry at %s answered %s: %s" % (what, self.url, response.status, body),
            response.status,
            code,
        )

    def get_json(self, target: str, what: str):
        response = self.check(self.request("GET", target, {"Accept": "application/json"}), what)
        try:
            return response.json(), response
        except ValueError:
            raise ProtocolError(
                "%s: the registry at %s answered no JSON" % (what, self.url)
            ) from None

    # --- API ------------------------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the URL is a registry API v2 that lets labhub in."""
        response = self.check(self.request("GET", "/v2/"), "GET /v2/")
        if (
            "docker-distribution-api-version" not in response.headers
            and response.body.strip() not in (b"{}", b"")
        ):
            raise ProtocolError("%s does not look like a registry API v2" % self.url)

    def paged(self, path: str, key: str, page_size: int = DEFAULT_PAGE_SIZE):
        """Every item of a paginated listing, following ``Link: <...>; rel="next"`` to its end."""
        target = "%s?n=%d" % (path, page_size)
        seen = set()
        items = []
        while target and target not in seen:
            seen.add(target)
            data, response = self.get_json(target, "GET " + path)
            page = (data or {}).get(key) or []  # "tags": null once every tag was deleted
            items.extend(page)
            target = parse_next_link(response.headers.get("link"))
            if not page:
                break
        return items

    def catalog(self, page_size: int = DEFAULT_PAGE_SIZE) -> list:
        return self.paged("/v2/_catalog", "repositories", page_size)

    def tags(self, repository: str, page_size: int = DEFAULT_PAGE_SIZE) -> list:
        """The tags of a repository; none when it has none left (or vanished meanwhile)."""
        try:
            return self.paged("/v2/%s/tags/list" % quote(repository), "tags", page_size)
        except NotFound:
            return []

    def manifest(self, repository: str, reference: str) -> tuple:
        """``(digest, media_type, body)`` of a tag or digest, asked with every manifest type."""
        what = "GET manifest %s:%s" % (repository, reference)
        response = self.check(
            self.request(
                "GET", "/v2/%s/manifests/%s" % (quote(repository), reference), {"Accept": ACCEPT}
            ),
            what,
        )
        digest = response.headers.get("docker-content-digest") or (
            "sha256:" + hashlib.sha256(response.body).hexdigest()
        )
        try:
            body = response.json()
        except ValueError:
            raise ProtocolError("%s: not a JSON manifest" % what) from None
        media_type = (body or {}).get("mediaType") or response.headers.get(
            "content-type", ""
        ).split(";")[0].strip()
        return digest, media_type, body, len(response.body)

    def tag_digest(self, repository: str, tag: str) -> str | None:
        """The digest a tag points at now (HEAD), or None when the tag is gone."""
        what = "HEAD manifest %s:%s" % (repository, tag)
        try:
            response = self.check(
                self.request(
                    "HEAD", "/v2/%s/manifests/%s" % (quote(repository), tag), {"Accept": ACCEPT}
                ),
                what,
            )
        except NotFound:
            return None
        digest = response.headers.get("docker-content-digest")
        if not digest:
            return self.manifest(repository, tag)[0]
        return digest

    def blob_json(self, repository: str, digest: str):
        response = self.check(
            self.request("GET", "/v2/%s/blobs/%s" % (quote(repository), digest)),
            "GET blob %s@%s" % (repository, digest),
        )
        try:
            return response.json()
        except ValueError:
            return None

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """DELETE a manifest by digest: True when deleted, False when it was already gone."""
        try:
            self.check(
                self.request("DELETE", "/v2/%s/manifests/%s" % (quote(repository), digest)),
                "DELETE %s@%s" % (repository, digest),
                ok=(200, 202),
            )
        except NotFound:
            return False
        return True

    def probe_delete(self) -> str:
        """``enabled``, ``disabled`` or ``read-only``: a DELETE of a digest no manifest has."""
        try:
            self.delete_manifest(PROBE_REPOSITORY, PROBE_DIGEST)
        except DeletesDisabled:
            return "disabled"
        except ReadOnly:
            return "read-only"
        return "enabled"

    def map(self, function, items: list) -> list:
        """``function`` over ``items`` in the bounded pool, results in order; errors propagate."""
        if len(items) <= 1 or self.workers == 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(function, items))


def quote(repository: str) -> str:
    return urllib.parse.quote(repository, safe="/")


# --- Reading a whole registry --------------------------------------------------------------------


def describe_manifest(media_type: str, body: dict, size: int) -> dict:
    """What a manifest references: its config and layers, or its platform manifests."""
    record = {
        "media_type": media_type,
        "manifest_size": size,
        "config": None,
        "blobs": {},
        "children": [],
        "created": None,
        "size": 0,
    }
    if media_type in INDEX_TYPES or "manifests" in body and media_type not in IMAGE_TYPES:
        record["kind"] = "index"
        for child in body.get("manifests") or []:
            platform = child.get("platform") or {}
            annotations = child.get("annotations") or {}
            record["children"].append(
                {
                    "digest": child.get("digest"),
                    "size": child.get("size") or 0,
                    "platform": "/".join(
                        p
                        for p in (
                            platform.get("os"),
                            platform.get("architecture"),
                            platform.get("variant"),
                        )
                        if p
                    ),
                    "attestation": annotations.get("vnd.docker.reference.type") == ATTESTATION_TYPE
                    or platform.get("os") == "unknown",
                }
            )
    elif media_type in SCHEMA1_TYPES or body.get("schemaVersion") == 1:
        record["kind"] = "schema1"
        history = body.get("history") or []
        if history:
            try:
                record["created"] = json.loads(history[0].get("v1Compatibility", "{}")).get(
                    "created"
                )
            except ValueError:
                pass
        for layer in body.get("fsLayers") or []:
            record["blobs"][layer.get("blobSum")] = 0
    else:
        record["kind"] = "image"
        config = body.get("config") or {}
        if config.get("digest"):
            record["config"] = {
                "digest": config["digest"],
                "size": config.get("size") or 0,
                "media_type": config.get("mediaType"),
            }
            record["blobs"][config["digest"]] = config.get("size") or 0
        for layer in body.get("layers") or []:
            if layer.get("digest"):
                record["blobs"][layer["digest"]] = layer.get("size") or 0
        record["size"] = sum(record["blobs"].values())
    return record


def read_storage(root: str) -> dict:
    """
    What a registry's filesystem storage holds: every manifest revision of every repository
    (tagged or not: plain garbage collection keeps them all, and their blobs) and the size of
    every blob. Read from the folder, without the registry: the API lists no untagged manifest.

    .. code:: python

        {"manifests": {"lab": ["sha256:9f86..."]}, "blobs": {"sha256:9f86...": 501}}
    """
    base = os.path.join(root, *STORAGE_V2)
    top = os.path.join(base, "repositories")
    manifests = {}
    for folder, subfolders, _ in os.walk(top):
        if os.path.basename(folder) != "_manifests":
            # Repository names never start with "_": these are the storage's own folders.
            subfolders[:] = [d for d in subfolders if not d.startswith("_") or d == "_manifests"]
            continue
        subfolders[:] = []
        repo = os.path.relpath(os.path.dirname(folder), top).replace(os.sep, "/")
        revisions = os.path.join(folder, "revisions")
        found = manifests.setdefault(repo, [])
        for algorithm in _listdir(revisions):
            for value in _listdir(os.path.join(revisions, algorithm)):
                # A manifest deleted through the API leaves its folder without its link.
                if os.path.isfile(os.path.join(revisions, algorithm, value, "link")):
                    found.append("%s:%s" % (algorithm, value))
        found.sort()
    blobs = {}
    store = os.path.join(base, "blobs")
    for algorithm in _listdir(store):
        for prefix in _listdir(os.path.join(store, algorithm)):
            for value in _listdir(os.path.join(store, algorithm, prefix)):
                try:
                    size = os.stat(os.path.join(store, algorithm, prefix, value, "data")).st_size
                except OSError:
                    continue  # a blob folder a collection was interrupted in: no data left
                blobs["%s:%s" % (algorithm, value)] = size
    return {"manifests": manifests, "blobs": blobs}


def _listdir(path: str) -> list:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def collect(
    url: str,
    workers: int = DEFAULT_WORKERS,
    page_size: int = DEFAULT_PAGE_SIZE,
    probe_delete: bool = False,
    timeout: float = 30,
    storage: str | None = None,
) -> dict:
    """
    Read the whole registry: every repository, every tag, the digest each tag points at, and for
    each manifest what it references, its image's creation time and its size (for an index: from
    its platform images). With ``storage`` (the registry's storage folder), also the manifests no
    tag points at (``"untagged": true``, read by digest) and every blob on disk (``"storage"``).
    Raises ``RegistryError`` when the registry cannot be read.
    """
    registry = Registry(url, timeout=timeout, workers=workers)
    registry.ping()
    on_disk = read_storage(storage) if storage else None
    repositories = registry.catalog(page_size)
    tag_lists = registry.map(lambda repo: registry.tags(repo, page_size), repositories)

    pairs = [(repo, tag) for repo, tags in zip(repositories, tag_lists) for tag in tags]
    vanished = []

    def read_tag(pair):
        try:
            return registry.manifest(*pair)
        except NotFound:
            return None  # deleted between the listing and now

    tags = {repo: {} for repo in repositories}
    manifests = {repo: {} for repo in repositories}
    for (repo, tag), result in zip(pairs, registry.map(read_tag, pairs)):
        if result is None:
            vanished.append("%s:%s" % (repo, tag))
            continue
        digest, media_type, body, size = result
        tags[repo][tag] = digest
        if digest not in manifests[repo]:
            manifests[repo][digest] = describe_manifest(media_type, body, size)

    # Manifests no tag points at, which a plain garbage collection keeps with their blobs.
    if on_disk is not None:
        for repo in on_disk["manifests"]:
            tags.setdefault(repo, {})
            manifests.setdefault(repo, {})
        untagged = [
            (repo, digest)
            for repo, digests in sorted(on_disk["manifests"].items())
            for digest in digests
            if digest not in manifests[repo]
        ]

        def read_untagged(pair):
            try:
                return registry.manifest(*pair)
            except NotFound:
                return None  # deleted meanwhile

        for (repo, digest), result in zip(untagged, registry.map(read_untagged, untagged)):
            if result is not None:
                record = manifests[repo][digest] = describe_manifest(
                    result[1], result[2], result[3]
                )
                record["untagged"] = True

    # Platform manifests of indexes (and of nested indexes), each read once.
    for _ in range(4):
        wanted = sorted(
            {
                (repo, child["digest"])
                for repo, records in manifests.items()
                for record in records.values()
                for child in record["children"]
                if child["digest"] and child["digest"] not in records
            }
        )
        if not wanted:
            break

        def read_child(pair):
            try:
                return registry.manifest(*pair)
            except NotFound:
                return None

        for (repo, digest), result in zip(wanted, registry.map(read_child, wanted)):
            if result is None:
                manifests[repo][digest] = {
                    "kind": "missing",
                    "media_type": None,
                    "manifest_size": 0,
                    "config": None,
                    "blobs": {},
                    "children": [],
                    "created": None,
                    "size": 0,
                }
            else:
                manifests[repo][digest] = describe_manifest(result[1], result[2], result[3])

    # Image configs, each distinct digest read once, for the creation time.
    configs = {}
    for repo, records in manifests.items():
        for record in records.values():
            config = record.get("config")
            if config and config["digest"] not in configs and config["size"] <= MAX_CONFIG_BYTES:
                configs[config["digest"]] = repo
    config_items = sorted(configs.items())

    def read_config(item):
        digest, repo = item
        try:
            data = registry.blob_json(repo, digest)
        except NotFound:
            return None
        return data.get("created") if isinstance(data, dict) else None

    created = dict(zip([d for d, _ in config_items], registry.map(read_config, config_items)))
    for records in manifests.values():
        for record in records.values():
            if record.get("config"):
                record["created"] = created.get(record["config"]["digest"])
    for records in manifests.values():
        for record in records.values():
            if record["kind"] == "index":
                _summarize_index(record, records)

    result = {
        "registry": registry.url,
        "repositories": tags,
        "manifests": manifests,
        "vanished": vanished,
        "requests": 0,
        "delete": registry.probe_delete() if probe_delete else None,
        "storage": {"blobs": on_disk["blobs"]} if on_disk is not None else None,
    }
    result["requests"] = registry.requests
    return result


def _summarize_index(record: dict, records: dict, depth: int = 0) -> None:
    """An index's creation time (its newest platform image) and size (its images' blobs)."""
    blobs = {}
    times = []
    for child in record["children"]:
        child_record = records.get(child["digest"]) or {}
        if child_record.get("kind") == "index" and depth < 3:
            _summarize_index(child_record, records, depth + 1)
            blobs.update(child_record.get("index_blobs") or {})
        else:
            blobs.update(child_record.get("blobs") or {})
        if child_record.get("created") and not child["attestation"]:
            times.append(child_record["created"])
    record["index_blobs"] = blobs
    record["size"] = sum(blobs.values())
    record["created"] = max(times) if times else None


# --- Deleting ------------------------------------------------------------------------------------


def delete(
    url: str,
    deletions: list,
    workers: int = DEFAULT_WORKERS,
    timeout: float = 30,
    progress=None,
    batch: int = DELETE_BATCH,
) -> dict:
    """
    Delete stale manifests by digest. ``deletions`` items: ``{"repo", "digest", "tags",
    "children"}``: the tags are every tag that pointed at the digest when the plan was made (all
    stale), the children the platform manifests of a stale index that nothing kept references.

    Just before deleting, each repository's tags are read again: a digest is deleted only when
    exactly its planned tags still point at it (a tag that moved, or a new tag on the digest,
    leaves it alone, reported as skipped); its planned tags are checked once more right before
    its DELETE. Deletions go ``batch`` at a time through the pool of ``workers``; after each
    batch ``progress(done, total, result)`` is called. An index is deleted before its platform
    manifests, so an interrupted run never leaves a tag on an incomplete index. Deletion stops
    at the first registry error, which is returned with what was deleted before it.
    """
    registry = Registry(url, timeout=timeout, workers=workers)
    result = {"registry": registry.url, "deleted": [], "skipped": [], "error": None, "requests": 0}
    by_repo = {}
    for item in deletions:
        by_repo.setdefault(item["repo"], []).append(item)
    total = len(deletions)
    done = 0
    try:
        registry.ping()
        for repo in sorted(by_repo):
            current_tags = registry.tags(repo)
            digests = registry.map(
                lambda tag, repo=repo: registry.tag_digest(repo, tag), current_tags
            )
            pointing = {}
            for tag, digest in zip(current_tags, digests):
                if digest:
                    pointing.setdefault(digest, set()).add(tag)

            def one(item, repo=repo, pointing=pointing):
                planned = set(item.get("tags") or [])
                now = pointing.get(item["digest"], set())
                reason = None
                if now - planned:
                    reason = "tag %s now points at it" % ", ".join(sorted(now - planned))
                elif planned - now:
                    reason = "tag %s moved" % ", ".join(sorted(planned - now))
                else:
                    for tag in sorted(planned):
                        if registry.tag_digest(repo, tag) != item["digest"]:
                            reason = "tag %s moved" % tag
                            break
                if reason:
                    return "skipped", dict(item, reason=reason)
                deleted = registry.delete_manifest(repo, item["digest"])
                children = []
                for child in item.get("children") or []:
                    if pointing.get(child):
                        continue  # tagged directly: not ours to delete
                    if registry.delete_manifest(repo, child):
                        children.append(child)
                return "deleted", dict(item, children_deleted=children, already_gone=not deleted)

            items = by_repo[repo]
            for start in range(0, len(items), max(1, batch)):
                chunk = items[start : start + max(1, batch)]
                for outcome, item in registry.map(one, chunk):
                    result[outcome].append(item)
                done += len(chunk)
                if progress:
                    progress(done, total, result)
    except RegistryError as e:
        result["error"] = e.as_dict()
    result["requests"] = registry.requests
    return result


def delete_summary(result: dict) -> dict:
    """What the command line prints at the end of ``delete``: counts, skips and the error."""
    deleted = result["deleted"]
    return {
        "deleted": len(deleted),
        "tags": sum(len(item.get("tags") or []) for item in deleted),
        "children_deleted": sum(len(item.get("children_deleted") or []) for item in deleted),
        "skipped": [
            {"repo": i["repo"], "digest": i["digest"], "reason": i["reason"]}
            for i in result["skipped"]
        ],
        "error": result["error"],
        "requests": result["requests"],
    }


# --- Command line --------------------------------------------------------------------------------


def _print_progress(done: int, total: int, result: dict) -> None:
    sys.stdout.write(
        "labhub registry delete: %d of %d stale manifest(s) done: %d deleted, %d "
        "left alone\n" % (done, total, len(result["deleted"]), len(result["skipped"]))
    )
    for item in result["skipped"][_print_progress.skips_shown :]:
        sys.stdout.write(
            "labhub registry delete: left %s@%s alone: %s\n"
            % (item["repo"], item["digest"], item["reason"])
        )
    _print_progress.skips_shown = len(result["skipped"])
    sys.stdout.flush()


_print_progress.skips_shown = 0


def main(argv: list) -> int:
    """Run ``collect`` or ``delete`` and print JSON (see the module's docstring); exit 1 on a
    registry error."""
    if len(argv) < 2 or argv[0] not in ("collect", "delete"):
        sys.stderr.write(__doc__)
        return 2
    action, url = argv[0], argv[1]
    options = {
        "workers": DEFAULT_WORKERS,
        "page_size": DEFAULT_PAGE_SIZE,
        "probe": False,
        "storage": None,
        "plan": None,
    }
    rest = list(argv[2:])
    while rest:
        arg = rest.pop(0)
        if arg == "--workers" and rest:
            options["workers"] = int(rest.pop(0))
        elif arg == "--page-size" and rest:
            options["page_size"] = int(rest.pop(0))
        elif arg == "--probe-delete":
            options["probe"] = True
        elif arg == "--storage" and rest:
            options["storage"] = rest.pop(0) or None
        elif arg == "--plan" and rest and action == "delete":
            options["plan"] = rest.pop(0)
        else:
            sys.stderr.write("unknown argument %r\n" % arg)
            return 2
    if action == "collect":
        try:
            output = collect(
                url,
                options["workers"],
                options["page_size"],
                options["probe"],
                storage=options["storage"],
            )
        except RegistryError as e:
            output = {"error": e.as_dict()}
    else:
        if not options["plan"]:
            sys.stderr.write("delete needs --plan FILE\n")
            return 2
        with open(options["plan"]) as f:
            plan = json.load(f)
        output = delete_summary(
            delete(url, plan.get("deletions") or [], options["workers"], progress=_print_progress)
        )
    sys.stdout.write(json.dumps(output, sort_keys=True) + "\n")
    if output.get("error"):
        sys.stderr.write("labhub registry %s: %s\n" % (action, output["error"]["message"]))
        return 1
    return 0


# How the host runs it (labhub.commands.registry_client_command).
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
