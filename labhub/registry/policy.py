"""
Which images of the registry to keep and which to delete, as a pure function of what the
collector read (``labhub.registry.client.collect``), the ``registry_prune`` policy and what is
in use. The same answer in a report-only run, a dry run and an applied one.

Per repository, tags are grouped by the digest they point at (one "image" per digest). An image is
kept when any of these holds, and the first that holds is its reason:

- one of its tags is a lab image (``lab_images``: what users spawn);
- a container on the host (running or stopped) uses it;
- one of its tags matches a ``keep_tags`` regular expression;
- it is one of the ``keep_last`` newest distinct images of its repository;
- ``older_than_days`` is set and it is younger than that (or its age is unknown).

Deleting by digest removes every tag of the digest, so a stale tag that shares its digest with a
kept tag is kept ("shares digest with ..."). A stale index takes with it its platform manifests
that no kept manifest references.

Newest means by creation time (from the image config; an index's is its newest platform
image's). When a repository has an image without a usable time (none, or the Unix epoch that ko,
Bazel and distroless write), or two images share a time, the order falls back to a stable,
version-aware order of tag names (``1.10`` after ``1.9``), never to deleting everything: the
``keep_last`` first in that order are always kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from labhub.registry.client import version_key

# Creation times before this are placeholders (the epoch, Go's zero time), not ages.
UNUSABLE_BEFORE = datetime(1970, 1, 2, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    """One tag of the report."""

    repo: str
    tag: str
    digest: str
    created: datetime | None
    created_raw: str | None
    size: int
    keep: bool
    reason: str


@dataclass(frozen=True)
class Deletion:
    """One manifest to delete by digest, the stale tags it takes, and its platform manifests."""

    repo: str
    digest: str
    tags: tuple[str, ...]
    children: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {
            "repo": self.repo,
            "digest": self.digest,
            "tags": list(self.tags),
            "children": list(self.children),
        }


@dataclass
class Plan:
    rows: list[Row]
    deletions: list[Deletion]
    # Bytes of the blobs only deleted manifests reference (what garbage collection can free).
    freed_bytes: int
    notes: list[str] = field(default_factory=list)

    @property
    def deleted_tags(self) -> list[str]:
        return [f"{r.repo}:{r.tag}" for r in self.rows if not r.keep]


@dataclass(frozen=True)
class InUse:
    """What must stay, whatever the policy: lab images and the images of containers."""

    # (repo, tag) -> reason
    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    # (repo, digest) -> reason
    digests: dict[tuple[str, str], str] = field(default_factory=dict)


def parse_reference(ref: str) -> tuple[str | None, str, str | None, str | None]:
    """``host, repository, tag, digest`` of an image reference (Docker's rules for the host)."""
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    host = None
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, ref = first, rest
    tag = None
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    return host, ref, tag, digest


def registry_hosts(address: str) -> set[str]:
    """The names the host's engine may know the registry by: 127.0.0.1:P, localhost:P..."""
    host, _, port = address.rpartition(":")
    names = {address}
    if host in ("127.0.0.1", "localhost", "0.0.0.0", "[::1]"):
        names |= {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
    return names


def in_use(lab_images: Iterable, containers: Iterable[dict], hosts: set[str]) -> InUse:
    """
    What is in use: every ``lab_images`` tag, and every image of a container (running or not)
    that came from this registry: by the digests the engine recorded for it (``RepoDigests``),
    and by the reference it was created from when the engine recorded none.
    """
    tags: dict[tuple[str, str], str] = {}
    digests: dict[tuple[str, str], str] = {}
    for image in lab_images:
        tags.setdefault((image.name, image.version), "lab_images")
    for container in containers:
        reason = f"container {container['name']} ({container.get('status') or 'unknown'})"
        recorded = False
        for ref in container.get("repo_digests") or []:
            host, repo, _, digest = parse_reference(ref)
            if host in hosts and digest:
                digests.setdefault((repo, digest), reason)
                recorded = True
        host, repo, tag, digest = parse_reference(container.get("image") or "")
        if host in hosts:
            if digest:
                digests.setdefault((repo, digest), reason)
            elif not recorded:
                tags.setdefault((repo, tag or "latest"), reason)
    return InUse(tags, digests)


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time (nanoseconds allowed) as an aware datetime, None when unusable."""
    if not value or not isinstance(value, str):
        return None
    match = re.match(
        r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})?$",
        value.strip(),
    )
    if not match:
        return None
    date, time, fraction, zone = match.groups()
    text = f"{date}T{time}.{(fraction or '0')[:6].ljust(6, '0')}"
    zone = "+00:00" if not zone or zone in "Zz" else zone
    if len(zone) == 5:
        zone = zone[:3] + ":" + zone[3:]
    try:
        parsed = datetime.fromisoformat(text + zone)
    except ValueError:
        return None
    return parsed if parsed >= UNUSABLE_BEFORE else None


@dataclass
class _Image:
    repo: str
    digest: str
    tags: list[str]
    created: datetime | None
    created_raw: str | None
    size: int
    reason: str | None = None


def plan(
    snapshot: dict,
    keep_last: int,
    keep_tags: Iterable[str],
    older_than_days: int | None,
    used: InUse,
    now: datetime | None = None,
    registry_major: int = 2,
    leftovers: Iterable[tuple[str, str]] = (),
) -> Plan:
    """Decide, for every tag of the registry, keep (and why) or delete; list the deletions.

    ``leftovers`` are the ``(repo, digest)`` platform manifests a prune killed during its
    deletions had planned to delete with their index: those the registry still holds untagged,
    that no remaining index references, are deleted too (a plain collection would keep them)."""
    now = now or datetime.now(UTC)
    patterns = [re.compile(p) for p in keep_tags]
    manifests = snapshot.get("manifests") or {}
    rows: list[Row] = []
    deletions: list[Deletion] = []
    kept: set[tuple[str, str]] = set()
    notes: list[str] = []

    for repo in sorted(snapshot.get("repositories") or {}):
        tag_map = snapshot["repositories"][repo] or {}
        records = manifests.get(repo) or {}
        images: dict[str, _Image] = {}
        for tag in sorted(tag_map, key=version_key):
            digest = tag_map[tag]
            record = records.get(digest) or {}
            image = images.get(digest)
            if image is None:
                raw = record.get("created")
                image = images[digest] = _Image(
                    repo, digest, [], parse_time(raw), raw, int(record.get("size") or 0)
                )
            image.tags.append(tag)

        for image in images.values():
            image.reason = _pinned_reason(image, used, patterns)

        # The keep_last newest distinct images.
        timed = all(image.created for image in images.values())
        newest = sorted(
            images.values(),
            key=lambda i: (
                (i.created if timed else None) or UNUSABLE_BEFORE,
                max(version_key(t) for t in i.tags),
            ),
            reverse=True,
        )
        for rank, image in enumerate(newest):
            if image.reason is None and rank < keep_last:
                image.reason = f"newest {keep_last}" + ("" if timed else " (by tag name)")
        if older_than_days is not None:
            floor = now - timedelta(days=older_than_days)
            for image in images.values():
                if image.reason is None:
                    if image.created is None:
                        image.reason = "age unknown"
                    elif image.created > floor:
                        image.reason = f"younger than {older_than_days} days"

        for image in sorted(
            images.values(), key=lambda i: max(version_key(t) for t in i.tags), reverse=True
        ):
            keep = image.reason is not None
            if keep:
                kept.add((repo, image.digest))
            for tag in sorted(image.tags, key=version_key, reverse=True):
                reason = image.reason or "stale"
                if (
                    keep
                    and not _tag_pinned(repo, tag, image, used, patterns)
                    and image.reason.startswith(("lab_images", "keep_tags"))
                ):
                    reason = f"shares digest with {_pinning_tag(repo, image, used, patterns)}"
                rows.append(
                    Row(
                        repo,
                        tag,
                        image.digest,
                        image.created,
                        image.created_raw,
                        image.size,
                        keep,
                        reason,
                    )
                )
            if not keep:
                deletions.append(
                    Deletion(repo, image.digest, tuple(sorted(image.tags, key=version_key)))
                )

    # What stays: kept images, images in use, and every manifest no tag points at and no index
    # references (a plain garbage collection keeps those, and their blobs).
    referenced = {
        (repo, child.get("digest"))
        for repo, records in manifests.items()
        for record in records.values()
        for child in record.get("children") or []
    }
    tagged = {
        (repo, d)
        for repo, m in (snapshot.get("repositories") or {}).items()
        for d in (m or {}).values()
    }
    orphans = {
        (repo, digest)
        for repo, digest in leftovers
        if digest in (manifests.get(repo) or {})
        and (repo, digest) not in referenced
        and (repo, digest) not in tagged
    }
    untagged_roots = {
        (repo, digest)
        for repo, records in manifests.items()
        for digest, record in records.items()
        if record.get("untagged") and (repo, digest) not in referenced
    } - orphans
    in_use_here = {pair for pair in used.digests if pair[1] in (manifests.get(pair[0]) or {})}
    kept_closure = _closure(manifests, kept | untagged_roots | in_use_here)
    orphans -= kept_closure
    deletions += [Deletion(repo, digest, ()) for repo, digest in sorted(orphans)]
    if orphans:
        notes.append(
            f"{len(orphans)} platform manifest(s) that an interrupted prune left untagged (it "
            "deleted their index) are deleted too."
        )
    with_children = []
    for deletion in deletions:
        own = _closure(manifests, {(deletion.repo, deletion.digest)})
        children = tuple(
            sorted(
                d
                for (r, d) in own
                if d != deletion.digest and (r, d) not in kept_closure and (r, d) not in tagged
            )
        )
        with_children.append(Deletion(deletion.repo, deletion.digest, deletion.tags, children))
    deletions = with_children

    storage = snapshot.get("storage")
    freed, unreferenced = _freed_bytes(manifests, deletions, storage)
    if storage is None and deletions:
        notes.append(
            "The registry's storage could not be read: manifests no tag points at were "
            "not seen, and blobs they share are counted as freed."
        )
    elif unreferenced:
        notes.append(
            f"{human_size(unreferenced)} of it are blobs no manifest references now "
            "(left by an interrupted push, prune or collection): the next collection "
            "frees them."
        )
    if registry_major == 3 and any(r.reason.startswith("shares digest") for r in rows):
        notes.append(
            "registry:3 can untag a single tag (DELETE by tag); labhub keeps shared "
            "digests with all their tags, as on registry:2: untagging is not tested here"
        )
    return Plan(rows, deletions, freed, notes)


def plan_for(
    settings,
    contents: dict,
    containers: Iterable[dict],
    registry_major: int = 2,
    now=None,
    leftovers: Iterable[tuple[str, str]] = (),
) -> Plan:
    """``plan`` as a lab's settings ask it (labhub.settings.Settings: ``registry_prune``, and the
    ``lab_images`` it keeps, with ``registry_address``), the images ``containers`` use kept, and
    an interrupted prune's ``leftovers``."""
    prune = settings.registry_prune
    used = in_use(settings.lab_images, containers, registry_hosts(settings.registry_address))
    return plan(
        contents,
        prune.keep_last,
        prune.keep_tags,
        prune.older_than_days,
        used,
        now,
        registry_major=registry_major,
        leftovers=leftovers,
    )


def _pinned_reason(image: _Image, used: InUse, patterns: list[re.Pattern]) -> str | None:
    for tag in image.tags:
        if used.tags.get((image.repo, tag)) == "lab_images":
            return f"lab_images ({image.repo}:{tag})"
    if (image.repo, image.digest) in used.digests:
        return used.digests[(image.repo, image.digest)]
    for tag in image.tags:
        if (image.repo, tag) in used.tags:
            return used.tags[(image.repo, tag)]
    for tag in image.tags:
        for pattern in patterns:
            if pattern.search(tag):
                return f"keep_tags {pattern.pattern}"
    return None


def _tag_pinned(
    repo: str, tag: str, image: _Image, used: InUse, patterns: list[re.Pattern]
) -> bool:
    return (repo, tag) in used.tags or any(p.search(tag) for p in patterns)


def _pinning_tag(repo: str, image: _Image, used: InUse, patterns: list[re.Pattern]) -> str:
    for tag in image.tags:
        if _tag_pinned(repo, tag, image, used, patterns):
            return tag
    return image.tags[0]


def _closure(manifests: dict, roots: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The manifests ``roots`` reference, themselves included (indexes -> platform manifests)."""
    seen: set[tuple[str, str]] = set()
    stack = list(roots)
    while stack:
        repo, digest = stack.pop()
        if (repo, digest) in seen:
            continue
        seen.add((repo, digest))
        record = (manifests.get(repo) or {}).get(digest) or {}
        for child in record.get("children") or []:
            if child.get("digest"):
                stack.append((repo, child["digest"]))
    return seen


def _blobs(manifests: dict, pairs: set[tuple[str, str]]) -> dict[str, int]:
    """Every blob the manifests use, manifests themselves included, with its size."""
    blobs: dict[str, int] = {}
    for repo, digest in pairs:
        record = (manifests.get(repo) or {}).get(digest) or {}
        blobs[digest] = int(record.get("manifest_size") or 0)
        blobs.update(record.get("blobs") or {})
    return blobs


def _freed_bytes(
    manifests: dict, deletions: list[Deletion], storage: dict | None
) -> tuple[int, int]:
    """
    What garbage collection frees once the deletions are done, and how much of it no manifest
    references already: the blobs no remaining manifest (tagged or not, in any repository)
    references, manifests themselves included. With the storage read, every blob on disk counts
    at its size on disk (what the collector really removes); without it, the blobs the deleted
    manifests reference, at the sizes their manifests give.
    """
    deleted: set[tuple[str, str]] = set()
    for deletion in deletions:
        deleted.add((deletion.repo, deletion.digest))
        deleted.update((deletion.repo, child) for child in deletion.children)
    remaining = {(repo, digest) for repo, records in manifests.items() for digest in records}
    stay = _blobs(manifests, remaining - deleted)
    if storage is not None:
        on_disk = storage.get("blobs") or {}
        referenced = _blobs(manifests, remaining)
        freed = sum(size for blob, size in on_disk.items() if blob not in stay)
        unreferenced = sum(size for blob, size in on_disk.items() if blob not in referenced)
        return freed, unreferenced
    gone = _blobs(manifests, deleted)
    return sum(size for blob, size in gone.items() if blob not in stay), 0


# --- The report ----------------------------------------------------------------------------------


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def short_digest(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def format_report(plan: Plan, apply: bool) -> str:
    """The report: a table of every tag and the total that deleting the stale ones would free."""
    header = ("REPOSITORY", "TAG", "DIGEST", "CREATED", "SIZE", "DECISION")
    lines = [header]
    for row in plan.rows:
        if row.created:
            created = row.created.strftime("%Y-%m-%d %H:%M")
        elif row.created_raw:
            created = f"unset ({row.created_raw[:10]})"
        else:
            created = "unknown"
        decision = f"keep: {row.reason}" if row.keep else "delete"
        lines.append(
            (row.repo, row.tag, short_digest(row.digest), created, human_size(row.size), decision)
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths)) + "  " + line[-1]
        for line in lines
    ]
    tags = len(plan.deleted_tags)
    children = sum(len(d.children) for d in plan.deletions)
    if plan.deletions:
        summary = (
            f"{len(plan.deletions)} stale image(s) ({tags} tag(s)"
            + (f", {children} platform manifest(s)" if children else "")
            + f"): deleting them frees about {human_size(plan.freed_bytes)} "
            f"({plan.freed_bytes} bytes)"
        )
        summary += "." if apply else "; report only: pass --data registry_prune_apply=true."
    elif plan.freed_bytes:
        summary = (
            f"Nothing to delete; a garbage collection frees "
            f"{human_size(plan.freed_bytes)} ({plan.freed_bytes} bytes) of blobs no "
            "manifest references."
        )
    else:
        summary = "Nothing to delete."
    if not plan.rows:
        text = ["The registry holds no tags."]
    return "\n".join([*text, summary, *plan.notes])
