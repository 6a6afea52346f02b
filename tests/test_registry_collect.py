"""
Reading a real registry (Debian's docker-registry 2.8 on loopback) with the collector the
``RegistryContents`` fact ships to hosts: pagination, digests, creation times and sizes, errors.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from registry_server import LocalRegistry, make_image, make_index

from labhub.facts.registry import RegistryContents
from labhub.registry import client


@pytest.fixture
def registry():
    with LocalRegistry() as reg:
        yield reg


def test_more_than_100_repositories_and_100_tags_are_all_seen(registry):
    shared = make_image("2025-01-01T00:00:00Z", b"shared")
    for i in range(105):
        registry.push_image(f"team/repo{i:03d}", "1.0", shared)
    for i in range(130):
        registry.push_image(
            "many", f"v{i}", make_image(f"2025-01-01T00:00:{i % 60:02d}Z", f"many{i}".encode())
        )
    snap = client.collect(registry.url)
    assert len(snap["repositories"]) == 106
    assert all(
        snap["repositories"][f"team/repo{i:03d}"] == {"1.0": shared.digest} for i in range(105)
    )
    assert sorted(snap["repositories"]["many"]) == sorted(f"v{i}" for i in range(130))
    # The catalog really was read page by page (Link: ...; rel="next"), 100 at a time.
    log = registry.log_path.read_text()
    assert "/v2/_catalog?last=" in log
    # A manifest per tag and a config per distinct image, plus listings: no per-tag fan-out.
    tags = 105 + 130
    assert snap["requests"] <= tags + 1 + 130 + 1 + 2 + 106 + 1


def test_pages_of_any_size_are_followed_to_the_end(registry):
    for i in range(7):
        registry.push_image(f"r{i}", "t", make_image(None, f"{i}".encode()))
    snap = client.collect(registry.url, page_size=2)
    assert sorted(snap["repositories"]) == [f"r{i}" for i in range(7)]


def test_digest_created_and_size_of_images_and_indexes(registry):
    docker_image = make_image("2025-03-04T05:06:07.123456789Z", [b"a" * 1000, b"b" * 10], oci=False)
    registry.push_image("lab", "1.0", docker_image)
    amd = make_image("2025-01-01T00:00:00Z", b"amd" * 100)
    arm = make_image("2025-02-01T00:00:00Z", b"arm" * 100, arch="arm64")
    index = make_index([amd, arm])
    registry.push_index("multi", "v1", index)
    snap = client.collect(registry.url)
    assert snap["repositories"]["lab"] == {"1.0": docker_image.digest}
    # The index's own digest (what docker push printed), not its linux/amd64 child's.
    assert snap["repositories"]["multi"] == {"v1": index.digest}
    record = snap["manifests"]["lab"][docker_image.digest]
    assert record["created"] == "2025-03-04T05:06:07.123456789Z"
    assert record["size"] == docker_image.unique_bytes
    idx = snap["manifests"]["multi"][index.digest]
    assert idx["kind"] == "index"
    assert [c["digest"] for c in idx["children"]] == [amd.digest, arm.digest]
    assert idx["created"] == "2025-02-01T00:00:00Z"
    assert idx["size"] == amd.unique_bytes + arm.unique_bytes


def test_repository_left_without_tags(registry):
    image = make_image("2025-01-01T00:00:00Z", b"x")
    registry.push_image("gone", "1", image)
    registry.push_image("lab", "1", make_image("2025-01-01T00:00:00Z", b"y"))
    assert client.Registry(registry.url).delete_manifest("gone", image.digest)
    raw = registry.session.get(f"{registry.url}/v2/gone/tags/list")
    assert "gone" in registry.catalog()
    assert raw.status_code == 200 and raw.json()["tags"] is None
    snap = client.collect(registry.url)
    assert snap["repositories"]["gone"] == {}
    assert list(snap["repositories"]["lab"]) == ["1"]


def test_the_shipped_program_runs_with_python3_from_a_shell(registry):
    registry.push_image("lab", "1", make_image("2025-01-01T00:00:00Z", b"y"))
    command = RegistryContents().command(registry.url, probe_delete=True)
    # As the fact runs it: inside a subshell that pyinfra closes right after the heredoc.
    result = subprocess.run(
        ["sh", "-c", f"( {command})"],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PATH": os.environ["PATH"]},
    )
    assert result.returncode == 0, result.stderr
    shipped = json.loads(result.stdout)
    local = client.collect(registry.url, probe_delete=True)
    shipped.pop("requests"), local.pop("requests")
    assert shipped == local
    assert shipped["delete"] == "enabled"


def test_delete_probe_tells_enabled_disabled_and_read_only_apart():
    with (
        LocalRegistry(delete=False) as disabled,
        LocalRegistry(read_only=True) as read_only,
        LocalRegistry() as enabled,
    ):
        before = enabled.files()
        assert client.collect(enabled.url, probe_delete=True)["delete"] == "enabled"
        assert client.collect(disabled.url, probe_delete=True)["delete"] == "disabled"
        assert client.collect(read_only.url, probe_delete=True)["delete"] == "read-only"
        assert enabled.files() == before and enabled.catalog() == []


def test_errors_are_distinct():
    with LocalRegistry() as reg:
        url = reg.url
    with pytest.raises(client.Unreachable, match="does not answer"):
        client.collect(url)
    # The real server with its "silly" auth: 401 to any request without credentials.
    with LocalRegistry() as reg:
        reg.stop()
        reg.config.write_text(
            reg.config.read_text() + "auth:\n  silly:\n    realm: test\n    service: test\n"
        )
        reg.process = None
        reg_url = reg.url
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(reg.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            import time

            import requests

            for _ in range(100):
                try:
                    if requests.get(reg_url + "/v2/", timeout=1).status_code == 401:
                        break
                except requests.ConnectionError:
                    time.sleep(0.05)
            with pytest.raises(client.AuthenticationRequired, match="401"):
                client.collect(reg_url)
            output = subprocess.run(
                ["python3", str(client.__file__), "collect", reg_url],
                capture_output=True,
                text=True,
            )
            assert json.loads(output.stdout)["error"]["kind"] == "auth"
            assert output.returncode == 1
        finally:
            proc.terminate()
            proc.wait()


def test_link_header_parsing():
    assert (
        client.parse_next_link('</v2/_catalog?last=b&n=2>; rel="next"') == "/v2/_catalog?last=b&n=2"
    )
    assert client.parse_next_link('<http://x/a>; rel="prev", </b>; rel=next') == "/b"
    assert client.parse_next_link(None) is None
