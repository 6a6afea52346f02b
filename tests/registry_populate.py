"""
Fill a registry with many tags fast through its HTTP API v2, and check that tags pull complete.
Standard library only: the end-to-end tests copy it (with ``registry_images``) to a lab server and
run it there against the server's loopback registry, with concurrent keep-alive connections.

    python3 registry_populate.py fill URL LAYOUT.json    # prints what it pushed, as JSON
    python3 registry_populate.py check URL REPO:TAG...   # prints the blobs and manifests missing

The layout (``layout()``, made where the test runs) gives each repository ``families`` groups of
stale images: the images of a family share one config and one layer and differ by an
annotation (distinct manifests, as rebuilds of one Dockerfile are), each image under one or more
tags; every image also has the base layer all repositories share. The ``kept`` images of a repository are newer, and also use
family 0's layer. One untagged manifest per repository uses family 1's config and layer; with
``common``, family 2's layer is the same in every repository and in the kept images of the
first. With ``indexes``, the first repository also has a stale index and a kept one (tag
``stable``) sharing a platform manifest.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from registry_images import (  # noqa: E402
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    make_image,
    make_index,
    make_layer,
    sha256,
)

ACCEPT = ", ".join(
    (
        OCI_MANIFEST,
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)


def layout(
    repos: list[str],
    stale: int,
    kept: int = 2,
    families: int = 50,
    common: bool = False,
    indexes: bool = False,
    seed: str = "",
    tags_per_image: int = 1,
) -> dict:
    """``stale`` tags a repository, ``tags_per_image`` of them on each stale manifest."""
    return {
        "repos": repos,
        "stale": stale,
        "kept": kept,
        "families": families,
        "common": common,
        "indexes": indexes,
        "seed": seed,
        "tags_per_image": tags_per_image,
    }


class Client:
    """One keep-alive connection per thread."""

    def __init__(self, url: str):
        self.netloc = urllib.parse.urlsplit(url).netloc
        self.local = threading.local()

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict, bytes]:
        for attempt in range(3):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(self.netloc, timeout=60)
            try:
                conn.request(method, path, body=body, headers=headers or {})
                response = conn.getresponse()
                data = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, data
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def push_blob(self, repo: str, blob: Blob) -> None:
        status, _, _ = self.request("HEAD", f"/v2/{repo}/blobs/{blob.digest}")
        if status == 200:
            return
        status, headers, body = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        assert status == 202, (status, body)
        location = urllib.parse.urlsplit(headers["location"])
        query = (location.query + "&" if location.query else "") + urllib.parse.urlencode(
            {"digest": blob.digest}
        )
        status, _, body = self.request(
            "PUT",
            f"{location.path}?{query}",
            blob.data,
            {"Content-Type": "application/octet-stream"},
        )
        assert status == 201, (status, body)

    def push_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> None:
        status, _, text = self.request(
            "PUT", f"/v2/{repo}/manifests/{reference}", body, {"Content-Type": media_type}
        )
        assert status == 201, (status, text)


def build(spec: dict) -> dict:
    """Every blob and manifest of a layout: ``{"blobs": [(repo, Blob)], "manifests": [(repo,
    reference, body, media_type)], "kept": [...], "stale": [...], "shared": [...],
    "family_layers": [...]}``."""
    seed = spec["seed"]
    base = make_layer(f"base {seed}".encode() + b"b" * 2048, "base")[0]
    common = make_layer(f"common {seed}".encode() + os.urandom(3000), "common")[0]
    blobs, manifests, kept, stale = [], [], [], []
    shared = {base.digest}
    family_layers = []
    for r, repo in enumerate(spec["repos"]):
        family_images = []
        for f in range(spec["families"]):
            if f == 2 and spec["common"]:
                layer = common
            else:
                layer = make_layer(
                    f"{repo} {f} {seed}".encode() + os.urandom(1000 + 37 * f), "own"
                )[0]
            image = make_image(
                f"2024-01-01T00:{f // 60:02d}:{f % 60:02d}Z",
                [base, layer],
                extra_config={"labhub.family": f"{repo}/{f}"},
            )
            family_images.append(image)
            blobs += [(repo, b) for b in image.blobs]
            if f > 2:
                family_layers.append(layer.digest)
        per_image = spec.get("tags_per_image") or 1
        images = -(-spec["stale"] // per_image)
        for i in range(images):
            family = family_images[i * spec["families"] // images]
            image = make_image(None, [base, family.layers[1]], annotations={"n": str(i)})
            body = _with_config(image.manifest, family.config)
            for j in range(i * per_image, min(spec["stale"], (i + 1) * per_image)):
                manifests.append((repo, f"1.{j}", body, OCI_MANIFEST))
                stale.append(f"{repo}:1.{j}")
        # The kept images: newer, with family 0's layer (and the common one in the first repo).
        kept_layer = make_layer(f"kept {repo} {seed}".encode() + os.urandom(2000), "kept")[0]
        layers = [base, kept_layer, family_images[0].layers[1]]
        if r == 0 and spec["common"]:
            layers.append(common)
        shared.add(family_images[0].layers[1].digest)
        for k in range(spec["kept"]):
            image = make_image("2030-01-01T00:00:00Z", layers, annotations={"n": str(k)})
            blobs += [(repo, b) for b in image.blobs]
            manifests.append((repo, f"2.{k}", image.manifest, OCI_MANIFEST))
            kept.append(f"{repo}:2.{k}")
        # An untagged manifest: family 1's config and layer stay with it.
        untagged = _with_config(
            make_image(
                None, [base, family_images[1].layers[1]], annotations={"n": "untagged"}
            ).manifest,
            family_images[1].config,
        )
        manifests.append((repo, None, untagged, OCI_MANIFEST))
        shared |= {family_images[1].layers[1].digest, family_images[1].config.digest}
        if r == 0 and spec["indexes"]:
            own = make_image("2023-01-01T00:00:00Z", f"own {seed}".encode() + os.urandom(4000))
            both = make_image(
                "2023-01-01T00:00:00Z", f"both {seed}".encode() + os.urandom(4000), arch="arm64"
            )
            newer = make_image("2023-02-01T00:00:00Z", f"new {seed}".encode() + os.urandom(4000))
            for image in (own, both, newer):
                blobs += [(repo, b) for b in image.blobs]
                manifests.append((repo, None, image.manifest, image.media_type))
            old_index, new_index = make_index([own, both]), make_index([newer, both])
            manifests.append((repo, "0.1", old_index.manifest, OCI_INDEX))
            manifests.append((repo, "stable", new_index.manifest, OCI_INDEX))
            stale.append(f"{repo}:0.1")
            kept.append(f"{repo}:stable")
            shared |= {b.digest for b in both.blobs}
            family_layers += [b.digest for b in own.blobs]
        if common:
            shared.add(common.digest)
    return {
        "blobs": blobs,
        "manifests": manifests,
        "kept": kept,
        "stale": stale,
        "shared": sorted(shared),
        "family_layers": family_layers,
    }


def _with_config(manifest: bytes, config: Blob) -> bytes:
    body = json.loads(manifest)
    body["config"] = config.descriptor()
    return json.dumps(body, indent=3).encode()


def fill(url: str, spec: dict, workers: int = 8) -> dict:
    built = build(spec)
    client = Client(url)
    unique = {(repo, blob.digest): (repo, blob) for repo, blob in built["blobs"]}
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda item: client.push_blob(*item), unique.values()))
        # Platform manifests and untagged ones first (by digest), then the tags.
        by_digest = [m for m in built["manifests"] if m[2] is not None and m[1] is None]
        list(pool.map(lambda m: client.push_manifest(m[0], _digest(m[2]), m[2], m[3]), by_digest))
        tagged = [m for m in built["manifests"] if m[1] is not None]
        list(pool.map(lambda m: client.push_manifest(*m), tagged))
    return {key: built[key] for key in ("kept", "stale", "shared", "family_layers")}


def _digest(body: bytes) -> str:
    return sha256(body)


def check(url: str, refs: list[str], workers: int = 8) -> dict:
    """What a full pull of each reference would miss: manifests and blobs that do not answer."""
    client = Client(url)

    def missing(ref: str) -> list[str]:
        repo, _, reference = ref.rpartition(":")
        status, _, body = client.request(
            "GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT}
        )
        if status != 200:
            return [f"{ref} manifest {status}"]
        manifest = json.loads(body)
        gone = []
        for child in manifest.get("manifests") or []:
            gone += _missing_child(client, repo, child["digest"])
        for blob in [manifest.get("config")] + (manifest.get("layers") or []):
            if blob:
                status, _, _ = client.request("HEAD", f"/v2/{repo}/blobs/{blob['digest']}")
                if status != 200:
                    gone.append(f"{ref} blob {blob['digest']} {status}")
        return gone

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(missing, refs))
    return {"missing": [m for result in results for m in result], "checked": len(refs)}


def _missing_child(client: Client, repo: str, digest: str) -> list[str]:
    status, _, body = client.request(
        "GET", f"/v2/{repo}/manifests/{digest}", headers={"Accept": ACCEPT}
    )
    if status != 200:
        return [f"{repo}@{digest} manifest {status}"]
    manifest = json.loads(body)
    gone = []
    for blob in [manifest.get("config")] + (manifest.get("layers") or []):
        if blob:
            status, _, _ = client.request("HEAD", f"/v2/{repo}/blobs/{blob['digest']}")
            if status != 200:
                gone.append(f"{repo}@{digest} blob {blob['digest']} {status}")
    return gone


if __name__ == "__main__":
    action, url = sys.argv[1], sys.argv[2]
    if action == "fill":
        with open(sys.argv[3]) as f:
            output = fill(url, json.load(f))
    else:
        output = check(url, sys.argv[3:])
    sys.stdout.write(json.dumps(output) + "\n")
