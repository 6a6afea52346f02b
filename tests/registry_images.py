"""
Real images to push into a registry through its HTTP API v2, standard library only (it also runs
on lab servers, which have python3 and nothing else): gzipped tar layers, image configs with a
creation time, Docker schema 2 and OCI manifests, OCI indexes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.data)

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


def make_layer(content: bytes, name: str = "payload", media_type: str = OCI_LAYER) -> tuple:
    """A real gzipped tar layer holding one file; returns the blob and its diff id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return Blob(gzip.compress(tar_bytes, mtime=0), media_type), sha256(tar_bytes)


@dataclass
class Image:
    """A single-platform image: layers, a config with a creation time, a manifest."""

    layers: list[Blob]
    config: Blob
    manifest: bytes
    media_type: str
    platform: dict = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> list[Blob]:
        return [self.config, *self.layers]

    @property
    def unique_bytes(self) -> int:
        return sum(len(b.data) for b in self.blobs)


def make_image(
    created: str | None,
    payload: bytes | list[bytes] | list[Blob],
    arch: str = "amd64",
    oci: bool = True,
    extra_config: dict | None = None,
    annotations: dict | None = None,
) -> Image:
    """An image of real gzipped tar layers (``payload``: their files' contents, or layers made
    before, to share them); ``annotations`` tell images of the same layers and config apart."""
    payloads = payload if isinstance(payload, list) else [payload]
    layer_type = OCI_LAYER if oci else DOCKER_LAYER
    layers, diff_ids = [], []
    for i, data in enumerate(payloads):
        if isinstance(data, Blob):
            blob, diff_id = data, sha256(gzip.decompress(data.data))
        else:
            blob, diff_id = make_layer(data, f"file{i}", layer_type)
        layers.append(blob)
        diff_ids.append(diff_id)
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/file0"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        **(extra_config or {}),
    }
    if created is not None:
        config["created"] = created
    config_blob = Blob(
        json.dumps(config, sort_keys=True).encode(), OCI_CONFIG if oci else DOCKER_CONFIG
    )
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config_blob.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = annotations
    return Image(
        layers,
        config_blob,
        json.dumps(manifest, indent=3).encode(),
        media_type,
        {"architecture": arch, "os": "linux"},
    )


@dataclass
class Index:
    images: list[Image]
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def make_index(images: list[Image]) -> Index:
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": image.media_type,
                "digest": image.digest,
                "size": len(image.manifest),
                "platform": image.platform,
            }
            for image in images
        ],
    }
    return Index(images, json.dumps(body, indent=3).encode())
