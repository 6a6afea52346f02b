"""
How long reading a whole registry takes with the collector the ``RegistryContents`` fact ships,
against what an admin would otherwise script: ``skopeo list-tags`` per repository and
``skopeo inspect`` per tag.

A real registry (Debian's docker-registry 2.8 on loopback, ``tests/registry_server.py``) is
filled through its API with REPOS x TAGS distinct images, then read both ways in the same run.
Requests are counted from the registry's own access log.

    .venv/bin/python benchmarks/registry_prune.py [--repos 50] [--tags 40] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from registry_server import LocalRegistry, make_image  # noqa: E402

from labhub.registry import client  # noqa: E402


def fill(reg: LocalRegistry, repos: int, tags: int) -> None:
    def push(job):
        r, t = job
        created = f"2025-01-{1 + t % 28:02d}T{r % 24:02d}:{t % 60:02d}:00Z"
        reg.push_image(f"team/app{r:02d}", f"1.{t}", make_image(created, f"{r}-{t}".encode()))

    jobs = [(r, t) for r in range(repos) for t in range(tags)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(push, jobs))


def skopeo_read(reg: LocalRegistry) -> dict:
    """The admin's script: list the tags of each repository, inspect each tag."""
    home = tempfile.mkdtemp(prefix="labhub-bench-")
    env = {**os.environ, "HOME": home}
    base = ["--tls-verify=false"]
    found = {}
    for repo in reg.catalog():
        listed = subprocess.run(
            ["skopeo", "list-tags", *base, f"docker://{reg.address}/{repo}"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        found[repo] = {}
        for tag in json.loads(listed.stdout)["Tags"]:
            inspected = subprocess.run(
                ["skopeo", "inspect", *base, "--no-tags", f"docker://{reg.address}/{repo}:{tag}"],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            info = json.loads(inspected.stdout)
            found[repo][tag] = (info["Digest"], info["Created"])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--repos", type=int, default=50)
    parser.add_argument("--tags", type=int, default=40)
    parser.add_argument("--workers", type=int, default=client.DEFAULT_WORKERS)
    args = parser.parse_args()
    total = args.repos * args.tags

    with LocalRegistry(log_level="info") as reg:
        start = time.monotonic()
        fill(reg, args.repos, args.tags)
        print(
            f"registry: {args.repos} repositories x {args.tags} tags = {total} images, "
            f"pushed in {time.monotonic() - start:.1f} s"
        )

        before = reg.request_count()
        start = time.monotonic()
        snap = client.collect(reg.url, workers=args.workers)
        collector_s = time.monotonic() - start
        collector_requests = reg.request_count() - before
        seen = sum(len(t) for t in snap["repositories"].values())
        assert seen == total, f"collector saw {seen} of {total} tags"

        before = reg.request_count()
        start = time.monotonic()
        found = skopeo_read(reg)
        skopeo_s = time.monotonic() - start
        skopeo_requests = reg.request_count() - before
        assert sum(len(t) for t in found.values()) == total
        assert all(found[r][t][0] == snap["repositories"][r][t] for r in found for t in found[r])

    print(
        f"collector (labhub.registry.client.collect, {args.workers} workers): "
        f"{collector_s:.2f} s, {collector_requests} requests, "
        f"{collector_requests / total:.2f} requests per tag"
    )
    print(
        f"skopeo list-tags + inspect per tag: {skopeo_s:.2f} s, {skopeo_requests} requests, "
        f"{skopeo_requests / total:.2f} requests per tag"
    )
    print(f"ratio: the collector took 1/{skopeo_s / collector_s:.1f} of the skopeo script's time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
