"""
Pruning a real registry (Debian's docker-registry 2.8 on loopback): the policy's deletions applied
with the client the operation ships, then the real garbage collector with the registry stopped,
then the registry restarted (as ``registry.garbage_collect`` does on the host with compose).
The task itself runs through the pyinfra CLI against ``@local`` for the report-only run and the
refusals; the full task over SSH with compose is in test_registry_e2e.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest
import registry_populate
from registry_server import LocalRegistry, make_image, make_index

from labhost.runner import pyinfra_env
from labhub.facts.registry import PRUNE_PENDING, PRUNE_PLAN, RegistryPruneState
from labhub.operations.registry import delete_command
from labhub.registry import client, policy
from labhub.settings import LabImage

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def payload(name: str, size: int = 64 * 1024) -> bytes:
    """Incompressible layer content, so layer bytes dominate what pruning frees."""
    return name.encode() + os.urandom(size)


def prune(reg: LocalRegistry, keep_last: int = 1, keep_tags=(), lab_images=(), containers=()):
    snap = client.collect(reg.url, probe_delete=True)
    used = policy.in_use(lab_images, containers, policy.registry_hosts(reg.address))
    plan = policy.plan(snap, keep_last, keep_tags, None, used)
    result = client.delete(reg.url, [d.as_dict() for d in plan.deletions])
    assert result["error"] is None, result
    reg.garbage_collect()
    return plan, result


def run_task(reg: LocalRegistry, *extra: str, data: dict | None = None):
    argv = [
        str(Path(sys.executable).with_name("pyinfra")),
        "@local",
        "tasks/registry_prune.py",
        "--json",
        "-y",
        "--data",
        f"registry_port={reg.port}",
        # @local is this machine: the hub would be at localhost.
        "--data",
        "hub_domain=localhost",
    ]
    for key, value in (data or {}).items():
        argv += ["--data", f"{key}={json.dumps(value)}"]
    argv += list(extra)
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, timeout=300, env=pyinfra_env()
    )


def pulls(reg: LocalRegistry, ref: str, all_platforms: bool = False) -> bool:
    result = reg.skopeo_pull(ref, all_platforms)
    return result.returncode == 0


def test_two_tags_on_one_digest_one_stale_one_kept_the_digest_survives():
    with LocalRegistry() as reg:
        old = make_image("2024-01-01T00:00:00Z", payload("old"))
        reg.push_image("lab", "0.9", old)
        reg.tag("lab", "stable", old.digest)
        reg.push_image("lab", "1.0", make_image("2025-01-01T00:00:00Z", payload("new")))
        plan, result = prune(reg, keep_last=1, keep_tags=("^stable$",))
        rows = {r.tag: r for r in plan.rows}
        assert not rows["0.9"].reason.startswith("stale") and rows["0.9"].keep
        assert rows["0.9"].reason == "shares digest with stable"
        assert plan.deletions == [] and result["deleted"] == []
        assert reg.tags("lab") == ["0.9", "1.0", "stable"]
        assert pulls(reg, "lab:0.9") and pulls(reg, "lab:stable") and pulls(reg, "lab:1.0")


def test_multi_platform_kept_index_stays_complete_stale_index_goes_with_its_blobs():
    with LocalRegistry() as reg:
        shared_arm = make_image("2024-06-01T00:00:00Z", payload("arm-shared"), arch="arm64")
        old_amd = make_image("2024-01-01T00:00:00Z", payload("amd-old"))
        old_s390 = make_image("2024-01-01T00:00:00Z", payload("s390-old"), arch="s390x")
        new_amd = make_image("2025-01-01T00:00:00Z", payload("amd-new"))
        stale = make_index([old_amd, shared_arm, old_s390])
        kept = make_index([new_amd, shared_arm])
        reg.push_index("multi", "2024", stale)
        reg.push_index("multi", "2025", kept)
        before = reg.disk_bytes()
        plan, result = prune(reg, keep_last=1)
        assert [(d.digest, set(d.children)) for d in plan.deletions] == [
            (stale.digest, {old_amd.digest, old_s390.digest})
        ]
        assert set(result["deleted"][0]["children_deleted"]) == {old_amd.digest, old_s390.digest}
        # The kept index is complete and pullable (every platform) after the collection.
        assert pulls(reg, "multi:2025", all_platforms=True)
        assert reg.tags("multi") == ["2025"]
        # The stale index, its own platform manifests and their blobs are gone; shared ones stay.
        blobs = reg.blob_files()
        for image in (old_amd, old_s390):
            assert image.digest.split(":")[1] not in blobs
            assert all(b.digest.split(":")[1] not in blobs for b in image.blobs)
        assert stale.digest.split(":")[1] not in blobs
        assert all(b.digest.split(":")[1] in blobs for b in shared_arm.blobs + new_amd.blobs)
        freed = before - reg.disk_bytes()
        assert freed >= old_amd.unique_bytes + old_s390.unique_bytes
        assert plan.freed_bytes == (
            old_amd.unique_bytes
            + old_s390.unique_bytes
            + len(old_amd.manifest)
            + len(old_s390.manifest)
            + len(stale.manifest)
        )


def test_lab_images_and_a_stopped_containers_image_are_kept_when_policy_says_stale():
    engine = docker.from_env(version="auto")
    with LocalRegistry() as reg:
        images = {
            tag: make_image(f"2024-0{i + 1}-01T00:00:00Z", payload(tag))
            for i, tag in enumerate(["1.0", "1.1", "1.2", "1.3"])
        }
        for tag, image in images.items():
            reg.push_image("lab", tag, image)
        # A container of this machine's engine, created (never started: stopped) from lab:1.1.
        ref = f"{reg.address}/lab:1.1"
        engine.images.pull(ref)
        name = f"labhub-prune-test-{uuid.uuid4().hex[:8]}"
        container = engine.containers.create(ref, name=name)
        try:
            engine.images.remove(ref, force=True)  # untagged; the container keeps the image
            result = run_task(
                reg,
                data={
                    "lab_images": [{"name": "lab", "version": "1.0"}],
                    "registry_prune": {"keep_last": 1},
                },
            )
            assert result.returncode == 0, result.stderr
            log = result.stderr
            assert "lab_images (lab:1.0)" in log
            assert f"container {name} (created)" in log
            line = next(x for x in log.splitlines() if " 1.2 " in x)
            assert line.rstrip().endswith("delete")
            # Applied with the same in-use list the task read: 1.2 goes, 1.0 and 1.1 stay.
            containers = [
                {
                    "name": name,
                    "status": "created",
                    "image": ref,
                    "repo_digests": [f"{reg.address}/lab@{images['1.1'].digest}"],
                }
            ]
            prune(
                reg,
                keep_last=1,
                lab_images=[LabImage(name="lab", version="1.0")],
                containers=containers,
            )
            assert reg.tags("lab") == ["1.0", "1.1", "1.3"]
            assert pulls(reg, "lab:1.1") and pulls(reg, "lab:1.0")
        finally:
            container.remove(force=True)
            for image in engine.images.list(name=f"{reg.address}/lab"):
                engine.images.remove(image.id, force=True)


def test_report_only_deletes_nothing_then_apply_deletes_exactly_what_it_listed():
    with LocalRegistry() as reg:
        stale = {}
        bases = [payload("base-0"), payload("base-1")]
        for i in range(6):
            image = make_image(
                f"2024-0{i + 1}-01T00:00:00Z", [bases[i % 2], payload(f"own-{i}", 128 * 1024)]
            )
            reg.push_image("lab", f"1.{i}", image)
            if i < 3:
                stale[f"1.{i}"] = image
        reg.tag("lab", "latest", image.digest)
        files, catalog = reg.files(), reg.catalog()
        # The task (pyinfra CLI, report only), then the same with --dry and apply: no change.
        report = run_task(
            reg,
            data={
                "registry_prune": {"keep_last": 3},
                "lab_images": [{"name": "lab", "version": "1.5"}],
            },
        )
        assert report.returncode == 0, report.stderr
        dry = run_task(
            reg,
            "--dry",
            data={
                "registry_prune": {"keep_last": 3},
                "registry_prune_apply": True,
                "lab_images": [{"name": "lab", "version": "1.5"}],
            },
        )
        assert dry.returncode == 0, dry.stderr
        assert reg.files() == files and reg.catalog() == catalog
        listed = {
            line.split()[2]
            for line in report.stderr.splitlines()
            if line.rstrip().endswith(" delete")
        }
        assert listed == {"1.0", "1.1", "1.2"}
        assert "deleting them frees about" in report.stderr
        # Applied (the delete and the collection the operations run), the disk drops by the
        # stale images' unique layers: the base layers they share with kept images stay.
        before = reg.disk_bytes()
        plan, result = prune(reg, keep_last=3, lab_images=[LabImage(name="lab", version="1.5")])
        assert sorted(t for d in result["deleted"] for t in d["tags"]) == sorted(listed)
        assert reg.tags("lab") == ["1.3", "1.4", "1.5", "latest"]
        unique = sum(
            len(img.layers[1].data) + len(img.config.data) + len(img.manifest)
            for img in stale.values()
        )
        dropped = before - reg.disk_bytes()
        assert plan.freed_bytes == unique
        # Beyond the blobs: only the registry's small link files of the deleted manifests.
        assert unique <= dropped <= unique + 3 * 1024
        for tag in ("1.3", "1.4", "1.5", "latest"):
            assert pulls(reg, f"lab:{tag}")


def test_deletes_disabled_is_a_clear_error_and_nothing_is_deleted():
    with LocalRegistry(delete=False) as reg:
        for i in range(3):
            reg.push_image(
                "lab", f"1.{i}", make_image(f"2024-0{i + 1}-01T00:00:00Z", payload(str(i)))
            )
        files = reg.files()
        result = run_task(
            reg, data={"registry_prune": {"keep_last": 1}, "registry_prune_apply": True}
        )
        assert result.returncode != 0
        assert "deletes disabled (405 UNSUPPORTED)" in result.stderr
        assert "nothing was deleted" in result.stderr
        # Report only: the same is a note, not an error.
        report = run_task(reg, data={"registry_prune": {"keep_last": 1}})
        assert report.returncode == 0 and "registry_prune_apply=true would fail" in report.stderr
        # The client refuses as distinctly when a delete is tried anyway.
        snap = client.collect(reg.url)
        plan = policy.plan(snap, 1, (), None, policy.InUse())
        outcome = client.delete(reg.url, [d.as_dict() for d in plan.deletions])
        assert outcome["error"]["kind"] == "deletes-disabled" and outcome["deleted"] == []
        assert reg.files() == files


def test_read_only_registry_is_told_apart_from_deletes_disabled():
    with LocalRegistry() as reg:
        for i in range(3):
            reg.push_image(
                "lab", f"1.{i}", make_image(f"2024-0{i + 1}-01T00:00:00Z", payload(str(i)))
            )
        snap = client.collect(reg.url)
        plan = policy.plan(snap, 1, (), None, policy.InUse())
        reg.restart(read_only=True)
        outcome = client.delete(reg.url, [d.as_dict() for d in plan.deletions])
        assert outcome["error"]["kind"] == "read-only", outcome
        assert "read-only maintenance mode" in outcome["error"]["message"]
        result = run_task(
            reg, data={"registry_prune": {"keep_last": 1}, "registry_prune_apply": True}
        )
        assert result.returncode != 0, result.stderr
        assert "read-only maintenance mode" in result.stderr


def test_a_tag_that_moved_before_the_delete_is_not_touched():
    with LocalRegistry() as reg:
        images = [make_image(f"2024-0{i + 1}-01T00:00:00Z", payload(str(i))) for i in range(4)]
        for i, image in enumerate(images):
            reg.push_image("lab", f"1.{i}", image)
        reg.tag("lab", "old", images[1].digest)
        plan = policy.plan(client.collect(reg.url), 1, (), None, policy.InUse())
        assert {d.digest for d in plan.deletions} == {
            images[0].digest,
            images[1].digest,
            images[2].digest,
        }
        # Meanwhile someone points "old" at the newest image, and tags 1.0's image again.
        reg.tag("lab", "old", images[3].digest)
        reg.tag("lab", "rescued", images[0].digest)
        outcome = client.delete(reg.url, [d.as_dict() for d in plan.deletions])
        skipped = {item["digest"]: item["reason"] for item in outcome["skipped"]}
        assert skipped == {
            images[0].digest: "tag rescued now points at it",
            images[1].digest: "tag old moved",
        }
        assert [d["digest"] for d in outcome["deleted"]] == [images[2].digest]
        assert reg.tags("lab") == ["1.0", "1.1", "1.3", "old", "rescued"]


def test_unreachable_registry_is_a_clear_task_error():
    with LocalRegistry() as reg:
        pass
    result = run_task(reg)
    assert result.returncode != 0
    assert "cannot read the registry" in result.stderr and "(unreachable)" in result.stderr


@pytest.mark.parametrize("repos", [0])
def test_empty_registry_reports_nothing_to_delete(repos):
    with LocalRegistry() as reg:
        result = run_task(reg, data={"registry_prune_apply": True})
        assert result.returncode == 0, result.stderr
        assert "The registry holds no tags." in result.stderr
        assert json.loads(result.stdout)["results"]["totals"]["success"] == 0


def blob_bytes(reg: LocalRegistry) -> int:
    return sum(p.stat().st_size for p in (reg.storage / "docker/registry/v2/blobs").rglob("data"))


def test_would_free_counts_only_blobs_no_remaining_manifest_uses():
    with LocalRegistry(log_level="error") as reg:
        pushed = registry_populate.fill(
            reg.url,
            registry_populate.layout(
                ["a/one", "b/two", "c/three"], stale=40, families=8, common=True, indexes=True
            ),
        )
        snap = client.collect(reg.url, storage=str(reg.storage))
        plan = policy.plan(snap, 2, ("^stable$",), None, policy.InUse())
        assert sorted(f"{r.repo}:{r.tag}" for r in plan.rows if not r.keep) == sorted(
            pushed["stale"]
        )
        # Read through the API alone, the untagged manifests are unseen: their blobs would be
        # counted as freed although the collector keeps them.
        blind = policy.plan(client.collect(reg.url), 2, ("^stable$",), None, policy.InUse())
        assert blind.freed_bytes > plan.freed_bytes
        result = client.delete(reg.url, [d.as_dict() for d in plan.deletions], batch=7)
        assert result["error"] is None and len(result["deleted"]) == len(plan.deletions)
        before = blob_bytes(reg)
        reg.garbage_collect()
        assert before - blob_bytes(reg) == plan.freed_bytes
        blobs = reg.blob_files()
        assert all(d.split(":")[1] in blobs for d in pushed["shared"])
        assert not any(d.split(":")[1] in blobs for d in pushed["family_layers"])
        assert registry_populate.check(reg.url, pushed["kept"])["missing"] == []
        # Collected: nothing more to free.
        again = policy.plan(
            client.collect(reg.url, storage=str(reg.storage)),
            2,
            ("^stable$",),
            None,
            policy.InUse(),
        )
        assert again.deletions == [] and again.freed_bytes == 0


def test_the_host_command_reads_any_number_of_deletions_from_a_file(tmp_path):
    """The operation's command, run by a shell as on the host: its length does not depend on the
    deletions (a file holds them), progress comes a batch at a time, the lock and the pending
    marker are taken."""
    with LocalRegistry(log_level="error") as reg:
        pushed = registry_populate.fill(
            reg.url, registry_populate.layout(["lab"], stale=300, kept=1, families=6)
        )
        snap = client.collect(reg.url)
        plan = policy.plan(snap, 1, (), None, policy.InUse())
        assert len(plan.deletions) == 300
        (tmp_path / "prune-plan.json").write_text(
            json.dumps({"deletions": [d.as_dict() for d in plan.deletions]})
        )
        command = delete_command(reg.url, str(tmp_path))
        # Bounded, and none of the deletions is in it.
        assert len(command) < 64 * 1024
        assert not any(d.digest in command for d in plan.deletions)
        result = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        progress = [
            line
            for line in result.stdout.splitlines()
            if line.startswith("labhub registry delete: ")
        ]
        assert progress[0].startswith("labhub registry delete: 250 of 300 stale manifest(s)")
        assert progress[-1].startswith("labhub registry delete: 300 of 300")
        summary = json.loads(result.stdout.splitlines()[-1])
        assert summary["deleted"] == 300 and summary["error"] is None
        assert reg.tags("lab") == ["2.0"]
        assert registry_populate.check(reg.url, pushed["kept"])["missing"] == []
        assert (tmp_path / "prune-pending").read_text() == "deleting\n"
        assert not (tmp_path / "prune-plan.json").exists()
        # While another prune holds the lock, the command refuses and deletes nothing.
        with open(tmp_path / "prune.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            busy = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
        assert busy.returncode == 1 and "a registry prune is running" in busy.stderr


def test_platform_manifests_an_interrupted_prune_left_untagged_go_with_the_next_prune(tmp_path):
    """A prune killed between a stale index's DELETE and its platform manifests': the next one
    (reading the plan the killed one left, as ``RegistryPruneState`` reads it on the host)
    deletes them, and the collection frees their blobs; a blob a kept index shares, and a
    manifest someone pushed by digest, stay."""
    with LocalRegistry() as reg:
        shared_arm = make_image("2024-06-01T00:00:00Z", payload("arm-shared"), arch="arm64")
        old_amd = make_image("2024-01-01T00:00:00Z", payload("amd-old"))
        old_s390 = make_image("2024-01-01T00:00:00Z", payload("s390-old"), arch="s390x")
        new_amd = make_image("2025-01-01T00:00:00Z", payload("amd-new"))
        stale = make_index([old_amd, shared_arm, old_s390])
        reg.push_index("multi", "2024", stale)
        reg.push_index("multi", "2025", make_index([new_amd, shared_arm]))
        by_digest = make_image("2024-02-01T00:00:00Z", payload("by-digest"))
        reg.push_image("multi", by_digest.digest, by_digest)

        first = policy.plan(
            client.collect(reg.url, storage=str(reg.storage)), 1, (), None, policy.InUse()
        )
        assert [(d.digest, set(d.children)) for d in first.deletions] == [
            (stale.digest, {old_amd.digest, old_s390.digest})
        ]
        # What the killed prune left on the host: its plan and its pending marker.
        state_dir = tmp_path / "registry"
        state_dir.mkdir()
        (state_dir / PRUNE_PLAN).write_text(
            json.dumps({"deletions": [d.as_dict() for d in first.deletions]})
        )
        (state_dir / PRUNE_PENDING).write_text("deleting\n")
        # Killed right after the index went.
        assert client.Registry(reg.url).delete_manifest("multi", stale.digest)
        state = RegistryPruneState()
        read = subprocess.run(
            ["sh", "-c", state.command(str(state_dir), f"none-{uuid.uuid4().hex[:8]}", "registry")],
            capture_output=True,
            text=True,
            check=True,
        )
        leftovers = state.process(read.stdout.splitlines())["leftovers"]
        assert sorted(leftovers) == sorted([["multi", old_amd.digest], ["multi", old_s390.digest]])

        snap = client.collect(reg.url, storage=str(reg.storage))
        # Untagged and referenced by nothing: a plain collection would keep them for ever.
        assert policy.plan(snap, 1, (), None, policy.InUse()).deletions == []
        plan = policy.plan(
            snap, 1, (), None, policy.InUse(), leftovers=[tuple(p) for p in leftovers]
        )
        assert sorted(d.digest for d in plan.deletions) == sorted([old_amd.digest, old_s390.digest])
        assert all(d.tags == () for d in plan.deletions)
        assert any("an interrupted prune left untagged" in note for note in plan.notes)
        assert plan.freed_bytes >= old_amd.unique_bytes + old_s390.unique_bytes
        result = client.delete(reg.url, [d.as_dict() for d in plan.deletions])
        assert result["error"] is None and len(result["deleted"]) == 2, result
        reg.garbage_collect()

        blobs = reg.blob_files()
        for image in (old_amd, old_s390):
            assert image.digest.split(":")[1] not in blobs
            assert all(b.digest.split(":")[1] not in blobs for b in image.blobs)
        assert all(b.digest.split(":")[1] in blobs for b in shared_arm.blobs + by_digest.blobs)
        assert pulls(reg, "multi:2025", all_platforms=True)
        assert pulls(reg, f"multi@{by_digest.digest}")
        again = policy.plan(
            client.collect(reg.url, storage=str(reg.storage)),
            1,
            (),
            None,
            policy.InUse(),
            leftovers=[tuple(p) for p in leftovers],
        )
        assert again.deletions == [] and again.freed_bytes == 0
