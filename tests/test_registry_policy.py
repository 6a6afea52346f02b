"""
The pruning policy as a pure function: ordering, pins, shared digests, indexes, the report.
(What the registry does with the result is tested against a real registry in the other
test_registry_* modules.)
"""

from __future__ import annotations

from datetime import UTC, datetime

from labhub.registry.policy import (
    InUse,
    format_report,
    in_use,
    parse_reference,
    parse_time,
    plan,
    version_key,
)
from labhub.settings import LabImage, validate
from labhub.stack import Stack, registry_major

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def snapshot(repos: dict[str, dict[str, tuple[str, str | None]]]) -> dict:
    """{repo: {tag: (digest, created)}} as the collector prints it (images of 1000 bytes)."""
    out = {"repositories": {}, "manifests": {}}
    for repo, tags in repos.items():
        out["repositories"][repo] = {tag: digest for tag, (digest, _) in tags.items()}
        out["manifests"][repo] = {
            digest: {
                "kind": "image",
                "created": created,
                "size": 1000,
                "manifest_size": 10,
                "blobs": {f"layer-{digest}": 990},
                "children": [],
            }
            for digest, created in tags.values()
        }
    return out


def decisions(p) -> dict[str, str]:
    return {f"{r.repo}:{r.tag}": ("keep: " + r.reason if r.keep else "delete") for r in p.rows}


def test_keeps_newest_by_creation_time_and_deletes_the_rest():
    snap = snapshot(
        {
            "lab": {
                "1.0": ("d0", "2025-01-01T00:00:00Z"),
                "1.1": ("d1", "2025-02-01T00:00:00Z"),
                "1.2": ("d2", "2025-03-01T00:00:00.5Z"),
                "0.9": ("d9", "2025-04-01T00:00:00Z"),  # built last, named lowest: time wins
            }
        }
    )
    p = plan(snap, 2, (), None, InUse(), NOW)
    assert decisions(p) == {
        "lab:0.9": "keep: newest 2",
        "lab:1.2": "keep: newest 2",
        "lab:1.1": "delete",
        "lab:1.0": "delete",
    }
    assert {d.digest for d in p.deletions} == {"d0", "d1"}
    assert p.freed_bytes == 2 * 1000


def test_missing_or_epoch_times_fall_back_to_version_order_never_to_deleting_everything():
    epoch = "1970-01-01T00:00:00Z"
    snap = snapshot(
        {
            "ko": {
                "v1.9.0": ("a", epoch),
                "v1.10.0": ("b", epoch),
                "v1.2.0": ("c", None),
                "v1.10.1": ("d", "0001-01-01T00:00:00Z"),
            }
        }
    )
    p = plan(snap, 2, (), None, InUse(), NOW)
    assert decisions(p) == {
        "ko:v1.10.1": "keep: newest 2 (by tag name)",
        "ko:v1.10.0": "keep: newest 2 (by tag name)",
        "ko:v1.9.0": "delete",
        "ko:v1.2.0": "delete",
    }
    # One image without a usable time makes the whole repository use the tag order.
    mixed = snapshot(
        {
            "m": {
                "2": ("x", "2025-01-01T00:00:00Z"),
                "10": ("y", epoch),
                "3": ("z", "2025-05-01T00:00:00Z"),
            }
        }
    )
    assert decisions(plan(mixed, 1, (), None, InUse(), NOW))["m:10"].startswith("keep")


def test_equal_times_are_ordered_by_version_and_stable():
    same = "2025-01-01T00:00:00Z"
    snap = snapshot({"r": {"1.9": ("a", same), "1.10": ("b", same), "1.8": ("c", same)}})
    first = decisions(plan(snap, 1, (), None, InUse(), NOW))
    assert first == {"r:1.10": "keep: newest 1", "r:1.9": "delete", "r:1.8": "delete"}
    assert all(decisions(plan(snap, 1, (), None, InUse(), NOW)) == first for _ in range(5))


def test_keep_tags_lab_images_and_containers_pin_whatever_the_policy():
    snap = snapshot(
        {
            "lab": {
                "0.1": ("d1", "2020-01-01T00:00:00Z"),
                "0.2": ("d2", "2020-02-01T00:00:00Z"),
                "0.3": ("d3", "2020-03-01T00:00:00Z"),
                "stable-2020": ("d4", "2020-04-01T00:00:00Z"),
                "0.5": ("d5", "2020-05-01T00:00:00Z"),
                "0.6": ("d6", "2021-01-01T00:00:00Z"),
            }
        }
    )
    containers = [
        {
            "name": "jupyter-alice",
            "status": "exited",
            "image": "127.0.0.1:5000/lab:0.2",
            "repo_digests": ["127.0.0.1:5000/lab@d2"],
        },
        # Created from a tag that later moved: the engine's digest counts, not the tag.
        {
            "name": "old",
            "status": "running",
            "image": "localhost:5000/lab:0.6",
            "repo_digests": ["localhost:5000/lab@d3"],
        },
        {
            "name": "elsewhere",
            "status": "running",
            "image": "quay.io/lab:0.5",
            "repo_digests": ["quay.io/lab@d5"],
        },
    ]
    used = in_use(
        [LabImage(name="lab", version="0.1")], containers, {"127.0.0.1:5000", "localhost:5000"}
    )
    p = plan(snap, 1, ("^stable-",), None, used, NOW)
    assert decisions(p) == {
        "lab:0.6": "keep: newest 1",
        "lab:0.5": "delete",
        "lab:stable-2020": "keep: keep_tags ^stable-",
        "lab:0.3": "keep: container old (running)",
        "lab:0.2": "keep: container jupyter-alice (exited)",
        "lab:0.1": "keep: lab_images (lab:0.1)",
    }
    assert [d.digest for d in p.deletions] == ["d5"]


def test_a_digest_goes_only_when_every_tag_on_it_is_stale():
    snap = snapshot(
        {
            "lab": {
                "1.0": ("old", "2020-01-01T00:00:00Z"),
                "latest": ("old", "2020-01-01T00:00:00Z"),
                "0.9": ("older", "2019-01-01T00:00:00Z"),
                "0.9-fix": ("older", "2019-01-01T00:00:00Z"),
                "2.0": ("new", "2025-01-01T00:00:00Z"),
            }
        }
    )
    p = plan(snap, 1, ("^latest$",), None, InUse(), NOW)
    assert decisions(p)["lab:1.0"] == "keep: shares digest with latest"
    assert [(d.digest, d.tags) for d in p.deletions] == [("older", ("0.9", "0.9-fix"))]


def test_older_than_days_never_deletes_younger_or_unknown_ages():
    snap = snapshot(
        {
            "r": {
                "1": ("a", "2025-05-30T00:00:00Z"),
                "2": ("b", "2025-01-01T00:00:00Z"),
                "3": ("c", None),
                "4": ("d", "2025-05-31T00:00:00Z"),
            }
        }
    )
    p = plan(snap, 1, (), 30, InUse(), NOW)
    assert decisions(p) == {
        "r:4": "keep: newest 1 (by tag name)",
        "r:3": "keep: age unknown",
        "r:2": "delete",
        "r:1": "keep: younger than 30 days",
    }


def test_a_stale_index_takes_its_platform_manifests_unless_a_kept_index_shares_them():
    snap = {
        "repositories": {"multi": {"old": "idx-old", "new": "idx-new"}, "other": {}},
        "manifests": {
            "multi": {
                "idx-old": {
                    "kind": "index",
                    "created": "2024-01-01T00:00:00Z",
                    "size": 30,
                    "manifest_size": 5,
                    "blobs": {},
                    "children": [{"digest": "amd-old"}, {"digest": "shared-arm"}],
                },
                "idx-new": {
                    "kind": "index",
                    "created": "2025-01-01T00:00:00Z",
                    "size": 30,
                    "manifest_size": 5,
                    "blobs": {},
                    "children": [{"digest": "amd-new"}, {"digest": "shared-arm"}],
                },
                "amd-old": {
                    "kind": "image",
                    "manifest_size": 7,
                    "children": [],
                    "blobs": {"cfg-old": 10, "layer-old": 100, "layer-base": 50},
                },
                "amd-new": {
                    "kind": "image",
                    "manifest_size": 7,
                    "children": [],
                    "blobs": {"cfg-new": 10, "layer-new": 100, "layer-base": 50},
                },
                "shared-arm": {
                    "kind": "image",
                    "manifest_size": 7,
                    "children": [],
                    "blobs": {"cfg-arm": 10, "layer-arm": 100},
                },
            }
        },
    }
    p = plan(snap, 1, (), None, InUse(), NOW)
    assert [(d.digest, d.children) for d in p.deletions] == [("idx-old", ("amd-old",))]
    # The old index's manifest and its amd64 image's manifest, config and own layer.
    assert p.freed_bytes == 5 + 7 + 10 + 100


def test_repositories_without_tags_are_reported_not_crashed_on():
    snap = {
        "repositories": {"empty": {}, "lab": {"1": "a"}},
        "manifests": {"empty": {}, "lab": {"a": {"kind": "image", "size": 1}}},
    }
    p = plan(snap, 3, ("^latest$",), None, InUse(), NOW)
    assert decisions(p) == {"lab:1": "keep: newest 3 (by tag name)"}
    assert "Nothing to delete." in format_report(p, apply=False)


def test_report_table_has_every_column_and_the_total():
    snap = snapshot(
        {
            "lab": {
                "1.0": ("sha256:" + "a" * 64, "2025-01-01T10:20:00Z"),
                "1.1": ("sha256:" + "b" * 64, "2025-02-01T10:20:00Z"),
            }
        }
    )
    text = format_report(plan(snap, 1, (), None, InUse(), NOW), apply=False)
    lines = text.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "DIGEST", "CREATED", "SIZE", "DECISION"]
    assert lines[2].split() == [
        "lab",
        "1.0",
        "aaaaaaaaaaaa",
        "2025-01-01",
        "10:20",
        "1.0",
        "kB",
        "delete",
    ]
    assert "keep: newest 1" in lines[1]
    assert "deleting them frees about 1.0 kB (1000 bytes)" in lines[-2]
    # Without the storage, what untagged manifests still use is unknown: said, not hidden.
    assert "storage could not be read" in lines[-1]
    assert "registry_prune_apply=true" in lines[-2]


def test_helpers():
    assert parse_reference("127.0.0.1:5000/lab/x:1.0") == ("127.0.0.1:5000", "lab/x", "1.0", None)
    assert parse_reference("localhost:5000/lab@sha256:ab") == (
        "localhost:5000",
        "lab",
        None,
        "sha256:ab",
    )
    assert parse_reference("lab/x:1") == (None, "lab/x", "1", None)
    assert parse_time("2025-01-02T03:04:05.123456789+02:00").hour == 3
    assert parse_time("1970-01-01T00:00:00Z") is None
    assert parse_time("garbage") is None
    assert sorted(["1.10", "1.9", "1.9.1", "1.2"], key=version_key) == [
        "1.2",
        "1.9",
        "1.9.1",
        "1.10",
    ]
    assert registry_major("registry:2") == 2
    assert registry_major("registry:3.0.0") == 3
    assert registry_major("docker.io/library/registry:3") == 3
    assert registry_major("labhub-test/registry:2.8-b09d6aee") == 2
    assert registry_major("localhost:5000/registry") == 2


def test_the_stack_comes_from_the_settings():
    stack = Stack.from_settings(
        validate({"hub_dir": "/srv/hub", "registry_port": 5001, "registry_image": "registry:3"})
    )
    assert stack.registry_url == "http://127.0.0.1:5001"
    assert stack.compose_file == "/srv/hub/compose.yaml"
    assert stack.registry_config_file == "/srv/hub/registry/config.yml"
    assert stack.registry_config_path == "/etc/distribution/config.yml"
    assert (stack.project, stack.hub_service, stack.registry_service) == (
        "labhub",
        "hub",
        "registry",
    )
    assert (
        Stack.from_settings(validate({})).registry_config_path == "/etc/docker/registry/config.yml"
    )
