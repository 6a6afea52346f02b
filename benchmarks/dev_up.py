"""
How long ``./dev up`` takes a newcomer: from nothing the harness made (no throwaway lab server,
none of the images it builds: the debootstrapped base, the lab server's image, the stand-ins;
no cached Debian package of their builds), then again with the images built (a fresh lab server,
the same deploy). The Debian packages and ``.venv`` that ``./dev`` sets up first are left as
they are: they are the machine's.

Only what carries the harness's label (``org.labhub.labhost``) is removed; the machine's other
images stay. ``./dev up``'s own output is shown as it runs (what a newcomer sees).

    .venv/bin/python benchmarks/dev_up.py [--rounds 1]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import labhost  # noqa: E402
from labhost.aptcache import CACHE as APT_CACHE  # noqa: E402
from labhost.server import LABEL  # noqa: E402


def dev(*args: str) -> float:
    start = time.monotonic()
    subprocess.run([str(ROOT / "dev"), *args], cwd=ROOT, check=True)
    return time.monotonic() - start


def remove_harness_images() -> int:
    """The images the harness built (its label), newest first so that children go before their
    bases; an image a container still uses is kept (another lab server's)."""
    client = labhost.ensure_engine()
    removed = 0
    for image in client.images.list(filters={"label": LABEL}):
        for tag in image.tags or [image.id]:
            try:
                client.images.remove(tag, noprune=False)
                removed += 1
            except Exception as e:  # in use: not ours to take
                print(f"kept {tag}: {e}", file=sys.stderr)
    return removed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    fresh, built = [], []
    for _ in range(args.rounds):
        dev("down")
        print(f"removed {remove_harness_images()} harness images", file=sys.stderr)
        shutil.rmtree(APT_CACHE, ignore_errors=True)
        fresh.append(dev("up"))
        dev("down")
        built.append(dev("up"))
    for name, times in (("from nothing", fresh), ("images built", built)):
        figures = ", ".join(f"{t // 60:.0f} min {t % 60:.0f} s" for t in times)
        print(f"./dev up, {name}: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
