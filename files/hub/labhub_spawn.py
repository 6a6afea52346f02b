"""
What the lab hub's spawner does beyond DockerSpawner's own options, installed in the hub image and
wired up by jupyterhub_config.py:

- the spawnable images are the private registry's, read once for the spawns of a few seconds (an
  image an admin pushes is offered within them, with no hub restart), newest version first;
- each lab runs as its user's host account (uid, primary group, other groups), with the
  home and the shares and lab volumes the deploy gave the user (settings.json);
- the spawn form names images as people do (``lab 1.0``) with the OCI title and description
  labels each image carries;
- the lab's /etc/passwd and /etc/group name that account (``account_files``; the spawner in
  labhub_lab.py writes them into each new container).
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import threading
import time
from pathlib import Path

from labhub_registry import Registry, RegistryError, describe_manifest, version_key

# The standard OCI labels an admin describes a lab image with, in its Dockerfile.
TITLE_LABEL = "org.opencontainers.image.title"
DESCRIPTION_LABEL = "org.opencontainers.image.description"


class RegistryImages:
    """
    A callable for ``DockerSpawner.allowed_images``: every image in the private registry, newest
    version first within a repository, the default image's repository first. When it cannot be
    read, only the default image is offered.

    The registry is read at most once every ``FRESH_S`` seconds, off the hub's event loop
    (``current``), and the spawns and forms of that window share the read: a class logging in at
    once costs one read, not one each (and their labels one read per image). An image pushed is
    offered within ``FRESH_S`` seconds, with no hub restart.
    """

    # Short enough that an admin who pushes an image and opens the spawn form sees it.
    FRESH_S = 5.0

    def __init__(self, registry: str, internal_url: str, default_image: str) -> None:
        self.registry = registry  # as the host's engine names images: 127.0.0.1:5000
        self.internal_url = internal_url  # as the hub reaches it on the compose network
        self.default = f"{registry}/{default_image}"
        self.default_repository = default_image.rsplit(":", 1)[0]
        self._images: list[dict] = []
        self._read_at = float("-inf")
        self._reading: asyncio.Future | None = None

    def __deepcopy__(self, memo: dict) -> RegistryImages:
        # Each new spawner deep-copies the hub's configuration (traitlets): every spawner must
        # share this one list and its read, and a read in flight (a future) cannot be copied.
        return self

    def __call__(self, spawner=None) -> dict[str, str]:
        return {image["ref"]: image["ref"] for image in self.described(spawner)}

    def described(self, spawner=None) -> list[dict]:
        """
        The images in ``__call__``'s order, each with its name as people say it (``lab 1.0``)
        and the title and description labels its image carries (empty when unreadable): the
        last read while fresh, else read now (blocking: the hub awaits ``current`` instead).
        """
        if time.monotonic() - self._read_at >= self.FRESH_S:
            self._read(spawner)
        return self._images

    async def current(self, spawner=None) -> list[dict]:
        """``described``'s list, read in a thread when stale; callers meanwhile share it."""
        if time.monotonic() - self._read_at < self.FRESH_S:
            return self._images
        if self._reading is None:
            loop = asyncio.get_running_loop()
            self._reading = loop.run_in_executor(None, self._read, spawner)
            self._reading.add_done_callback(lambda _: setattr(self, "_reading", None))
        return await asyncio.shield(self._reading)

    def _read(self, spawner=None) -> list[dict]:
        read_at = time.monotonic()
        registry = Registry(self.internal_url, timeout=5)
        refs = []
        try:
            repositories = sorted(
                registry.catalog(), key=lambda name: (name != self.default_repository, name)
            )
            for repository in repositories:
                for tag in sorted(registry.tags(repository), key=version_key, reverse=True):
                    refs.append(f"{self.registry}/{repository}:{tag}")
        except RegistryError as e:
            if spawner is not None:
                spawner.log.warning(
                    "cannot list the registry's images, offering the default: %s", e
                )
        if self.default not in refs:
            refs.insert(0, self.default)

        def labels(ref: str) -> dict:
            repository, tag = ref[len(self.registry) + 1 :].rsplit(":", 1)
            try:
                return image_labels(registry, repository, tag)
            except (RegistryError, ValueError, KeyError, TypeError) as e:
                if spawner is not None:
                    spawner.log.warning("cannot read the labels of %s: %s", ref, e)
                return {}

        self._images = [
            {
                "ref": ref,
                "name": image_name(ref),
                "title": found.get(TITLE_LABEL, ""),
                "description": found.get(DESCRIPTION_LABEL, ""),
            }
            for ref, found in zip(refs, registry.map(labels, refs))
        ]
        self._read_at = read_at
        return self._images


def image_name(ref: str) -> str:
    """``127.0.0.1:5000/lab:1.0`` as people name it: ``lab 1.0``."""
    repository, tag = ref.split("/", 1)[-1].rsplit(":", 1)
    return f"{repository} {tag}"


def image_labels(registry: Registry, repository: str, tag: str) -> dict:
    """The labels of an image's config; of its first platform image when the tag is an index."""
    _, media_type, body, size = registry.manifest(repository, tag)
    record = describe_manifest(media_type, body, size)
    if record["kind"] == "index":
        children = [c for c in record["children"] if c["digest"] and not c["attestation"]]
        if not children:
            return {}
        _, media_type, body, size = registry.manifest(repository, children[0]["digest"])
        record = describe_manifest(media_type, body, size)
    if not record["config"]:
        return {}
    config = registry.blob_json(repository, record["config"]["digest"]) or {}
    return (config.get("config") or {}).get("Labels") or {}


def image_form(images: RegistryImages, summary=None):
    """
    An ``options_form`` listing the registry's images each time it is shown (DockerSpawner's own
    form is computed once per user and would miss images pushed later): one choice per image,
    by its name, with its title and description, the default image chosen; beside them, what
    the lab will get (``summary(spawner)``: lines, such as ``LabLimits.summary``'s). A
    coroutine, as JupyterHub takes it: what it reads is read off the event loop.
    """

    async def form(spawner) -> str:
        described = await images.current(spawner)
        # The accounts file and, with GPUs, the engine's list of labs.
        lines = await asyncio.get_running_loop().run_in_executor(
            None, summary or (lambda _: []), spawner
        )
        choices = []
        for number, image in enumerate(described):
            ref, field = image["ref"], f"image-{number}"
            # The default, not the last image tried: after a failed spawn the form offers it again.
            checked = " checked" if ref == images.default else ""
            title = (
                f' – <span class="labhub-image-title">{html.escape(image["title"])}</span>'
                if image["title"]
                else ""
            )
            description = (
                f'<div class="labhub-image-description form-text">'
                f"{html.escape(image['description'])}</div>"
                if image["description"]
                else ""
            )
            choices.append(
                f'<div class="form-check labhub-image">'
                f'<input class="form-check-input" type="radio" name="image" id="{field}" '
                f'value="{html.escape(ref)}" required{checked}>'
                f'<label class="form-check-label" for="{field}">'
                f'<strong class="labhub-image-name">{html.escape(image["name"])}</strong>{title}'
                f"</label>{description}</div>"
            )
        html_form = "<fieldset><legend>Image</legend>" + "".join(choices) + "</fieldset>"
        if lines:
            html_form += (
                '<fieldset class="labhub-limits"><legend>Your lab gets</legend><ul>'
                + "".join(f'<li class="labhub-limit">{html.escape(line)}</li>' for line in lines)
                + "</ul></fieldset>"
            )
        return html_form

    return form


def host_account(accounts_file: Path, name: str) -> dict:
    """A hub user's host account, as the deploy last recorded it (read each time)."""
    accounts = json.loads(Path(accounts_file).read_text())
    if name not in accounts:
        raise RuntimeError(f"{name} has no host account: run the deploy (tasks/users.py)")
    return accounts[name]


class LabLimits:
    """
    The limits and GPUs of each user's lab, from settings.json's ``limits`` and the user's host
    groups, read from the accounts file at each call (a change of groups applies at the next
    spawn, with no hub restart).
    """

    def __init__(self, accounts_file: Path, limits: dict) -> None:
        self.accounts_file = accounts_file
        self.limits = limits
        self.devices = gpu_devices(limits.get("server_gpus") or [])
        self.shm_size = limits.get("shm_size")

    def resources(self, name: str) -> dict:
        return lab_resources(host_account(self.accounts_file, name)["groups"], self.limits)

    def summary(self, spawner) -> list[str]:
        """What the spawn form tells the user of the lab's limits and GPUs (nothing when no
        group has any)."""
        if not self.limits["groups"] and not self.limits["gpus"]:
            return []
        resources = self.resources(spawner.user.name)
        lines = describe_resources(resources)
        if isinstance(resources["gpus"], int) and hasattr(spawner, "lab_containers"):
            held = held_gpus(spawner.lab_containers())
            free = sum(1 for d in self.devices if d["id"] not in held)
            lines.append(
                f"GPUs free now: {free} of {len(self.devices)}"
                + ("" if free >= resources["gpus"] else " (too few: the spawn would be refused)")
            )
        return lines


def pre_spawn_hook(
    accounts_file: Path, users: dict[str, dict], lab_home: str, limits: LabLimits | None = None
):
    """
    A ``pre_spawn_hook`` that runs the lab as the user's host account, with the mounts the
    deploy gave the user, and the limits and GPUs of the user's groups (``limits``). The accounts
    file (uid, home, groups of each hub user) is written by the deploy and read at each spawn, so
    account changes need no hub restart.
    """

    def hook(spawner) -> None:
        name = spawner.user.name
        account = host_account(accounts_file, name)
        if limits is not None:
            # What labhub_lab.LabSpawner gives the container (and refuses when it cannot).
            spawner.lab_limits = limits
            spawner.lab_resources = lab_resources(account["groups"], limits.limits)
        # Files written in the lab keep the user's host uid, on the home and on the shares.
        primary, *others = account["gids"]
        spawner.extra_create_kwargs = {"user": f"{account['uid']}:{primary}"}
        spawner.extra_host_config = {"group_add": [str(g) for g in others]}
        spawner.volumes = {
            account["home"]: {"bind": lab_home, "mode": "rw"},
            **users[name]["mounts"],
        }
        # What the lab's /etc/passwd and /etc/group say of the user (labhub_lab.LabSpawner).
        spawner.lab_account = {
            "name": account["name"],
            "uid": account["uid"],
            "groups": list(zip(account["groups"], account["gids"])),
            "gecos": name,
            "home": lab_home,
        }

    return hook


def account_files(passwd: str, group: str, account: dict) -> tuple[str, str]:
    """
    An image's /etc/passwd and /etc/group with the lab user's account in them: their entry for
    the account's uid or name replaced, the account added to its groups (by gid; a group the image
    lacks is added under its host name). The image's other accounts stay, so files it ships keep
    their owners' names. The login shell is bash when the image's accounts use it.

    ``account``: ``{"name", "uid", "groups": [(name, gid), ...] primary first, "gecos", "home"}``
    """
    name, uid = account["name"], str(account["uid"])
    groups = [(group_name, str(gid)) for group_name, gid in account["groups"]]
    shell = "/bin/bash" if "/bin/bash" in passwd else "/bin/sh"
    passwd_lines = [
        line
        for line in passwd.splitlines()
        if line.strip()
        and line.split(":")[0] != name
        and (line.split(":") + ["", "", ""])[2] != uid
    ]
    passwd_lines.append(
        ":".join((name, "x", uid, groups[0][1], account["gecos"], account["home"], shell))
    )

    group_lines = []
    seen = set()
    names = set()
    wanted = dict((gid, group_name) for group_name, gid in groups)
    for line in group.splitlines():
        if not line.strip():
            continue
        fields = (line.split(":") + ["", "", "", ""])[:4]
        names.add(fields[0])
        members = [m for m in fields[3].split(",") if m and m != name]
        if fields[2] in wanted and fields[2] not in seen:
            seen.add(fields[2])
            members.append(name)
        group_lines.append(":".join(fields[:3] + [",".join(members)]))
    for group_name, gid in groups:
        if gid not in seen:
            seen.add(gid)
            # A host group whose name the image gives another gid keeps its gid under a new name.
            label = group_name if group_name not in names else f"{group_name}-{gid}"
            group_lines.append(":".join((label, "x", gid, name)))
    return "\n".join(passwd_lines) + "\n", "\n".join(group_lines) + "\n"


# --- Limits, guarantees and GPUs -----------------------------------------------------------------
# What the deploy hands the hub (settings.json "limits", labhub.stack.hub_settings): each group's
# limits, completed with the default's ("*") and in bytes and CPUs; each group's GPU request; the
# /dev/shm of GPU labs; the server's GPUs as nvidia-smi -L listed them. The user's groups are read
# at each spawn from the accounts file, so that a change of groups applies at the next spawn.
#
# Not JupyterHub's Spawner.group_overrides: its groups are the hub's own (kept in its database,
# managed through its API), not the host groups the deploy gives accounts, and it applies the
# overrides of the matching groups in an order of priority where labhub gives a user in several
# groups the largest of each limit.

DEFAULT_LIMITS = "*"
# The generic resource GPU nodes of a swarm advertise (node-generic-resources in daemon.json).
GPU_RESOURCE = "NVIDIA-GPU"
# Labels on each lab container: whose it is, what it is guaranteed, the GPUs it holds as its own.
LAB_LABEL = "org.labhub.lab"
MEM_GUARANTEE_LABEL = "org.labhub.mem-guarantee"
CPU_GUARANTEE_LABEL = "org.labhub.cpu-guarantee"
GPUS_LABEL = "org.labhub.gpus"
# Docker's CPU shares of one CPU: a lab's weight under contention is its guarantee.
SHARES_PER_CPU = 1024
_UNITS = (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024))


class SpawnRefused(Exception):
    """A spawn the server cannot give what the user's groups promise; the message says why."""


def format_size(value: int) -> str:
    """Bytes as the settings write them: ``536870912`` -> ``512M``, ``1.5G``."""
    for unit, size in _UNITS:
        if value >= size and round(value / size, 2) == value / size:
            return f"{value / size:g}{unit}"
    return f"{value} bytes"


def format_cpus(value: float) -> str:
    return f"{value:g} CPU" + ("" if value == 1 else "s")


def lab_resources(groups: list[str], limits: dict) -> dict:
    """
    What a lab of a user in ``groups`` gets: for each of mem_limit, cpu_limit, mem_guarantee and
    cpu_guarantee, the largest among the user's groups that lab_limits lists (no limit is the
    largest; no guarantee the smallest), the default's when none is listed; and ``gpus``, the
    largest GPU request among the user's groups ("all", then the most GPUs; None: none).

    ``limits``: settings.json's ``limits`` (``{"groups": {...}, "gpus": {...}}``).
    """
    listed = [limits["groups"][g] for g in groups if g in limits["groups"]]
    if not listed:
        listed = [limits["groups"].get(DEFAULT_LIMITS) or {}]
    resources: dict = {}
    for key in ("mem_limit", "cpu_limit"):
        values = [entry.get(key) for entry in listed]
        resources[key] = None if None in values else max(values)
    for key in ("mem_guarantee", "cpu_guarantee"):
        values = [entry[key] for entry in listed if entry.get(key) is not None]
        resources[key] = max(values) if values else None
    requests = [limits["gpus"][g] for g in groups if g in limits["gpus"]]
    resources["gpus"] = max(requests, key=_gpu_rank, default=None)
    return resources


def _gpu_rank(request) -> tuple:
    # "all" first, then the most GPUs; at a tie, GPUs named by the group (what it paid for).
    if request == "all":
        return (2, 0, 0)
    if isinstance(request, int):
        return (1, request, 0)
    return (1, len(request), 1)


def describe_resources(resources: dict) -> list[str]:
    """The lab's limits as a user reads them, one line each."""
    lines = []
    for kind, unit, name in (("mem", format_size, "Memory"), ("cpu", format_cpus, "CPU")):
        limit, guarantee = resources[f"{kind}_limit"], resources[f"{kind}_guarantee"]
        line = f"{name}: " + ("no limit" if limit is None else f"at most {unit(limit)}")
        if guarantee is not None:
            line += f", {unit(guarantee)} guaranteed"
        lines.append(line)
    gpus = resources.get("gpus")
    if gpus is not None:
        if gpus == "all":
            lines.append("GPUs: every GPU of the server, shared")
        elif isinstance(gpus, int):
            lines.append(f"GPUs: {gpus} of the lab's own")
        else:
            lines.append(f"GPUs: {', '.join(gpus)}, shared with the group")
    return lines


def gpu_devices(gpus: list[dict]) -> list[dict]:
    """
    What a lab can be given of the server's GPUs (``parse_gpu_list``'s records): each GPU, or
    each of its MIG instances when it is partitioned. ``{"id": UUID, "index": "0" or "0:1",
    "name": ...}``.
    """
    devices = []
    for gpu in gpus:
        if gpu.get("mig"):
            for mig in gpu["mig"]:
                devices.append(
                    {
                        "id": mig["uuid"],
                        "index": f"{gpu['index']}:{mig['index']}",
                        "name": f"{gpu['name']} {mig['name']}",
                    }
                )
        else:
            devices.append({"id": gpu["uuid"], "index": str(gpu["index"]), "name": gpu["name"]})
    return devices


def gpu_grant(request, devices: list[dict], held: set[str]) -> tuple[list[str], bool]:
    """
    The device ids a lab gets for its GPU request, and whether they are its own (a count) or
    shared ("all", a list): a count takes the first GPUs no other lab holds as its own
    (DockerSpawner's device_requests with a count would give every lab the first GPUs,
    dockerspawner#331). Raises SpawnRefused when too few are free or a GPU listed is not there.
    """
    if not devices:
        raise SpawnRefused("this server has no GPU (nvidia-smi -L lists none)")
    if request == "all":
        return [d["id"] for d in devices], False
    if isinstance(request, int):
        free = [d["id"] for d in devices if d["id"] not in held]
        if len(free) < request:
            raise SpawnRefused(
                f"your lab needs {request} GPU{'s' if request > 1 else ''} of its own and "
                f"{'none is' if not free else f'only {len(free)} of {len(devices)} are'} free: "
                f"every GPU of this server is in other labs. Try again when one stops"
            )
        return free[:request], True
    ids = []
    for wanted in request:
        found = [d["id"] for d in devices if wanted in (d["id"], d["index"])]
        if not found:
            raise SpawnRefused(f"GPU {wanted} is not one of this server's (nvidia-smi -L)")
        ids.append(found[0])
    return ids, False


def held_gpus(containers: list[dict]) -> set[str]:
    """The GPUs labs hold as their own, from the labels of the lab containers listed (the
    Engine API's container list), stopped ones left out."""
    held = set()
    for container in _live(containers):
        held.update(filter(None, (container["Labels"].get(GPUS_LABEL) or "").split(",")))
    return held


def _live(containers: list[dict]) -> list[dict]:
    return [c for c in containers if c.get("State") in ("created", "running", "restarting")]


def guarantee_problem(resources: dict, containers: list[dict], info: dict) -> str | None:
    """
    Why the server can no longer give a lab its guarantees, or None: the guarantees of the live
    lab containers listed (their labels) plus the new lab's, against the memory and CPUs the
    engine reports (``docker info``'s MemTotal and NCPU).
    """
    for kind, label, total, unit, name in (
        ("mem", MEM_GUARANTEE_LABEL, info["MemTotal"], format_size, " of memory"),
        ("cpu", CPU_GUARANTEE_LABEL, info["NCPU"], format_cpus, ""),
    ):
        wanted = resources[f"{kind}_guarantee"]
        if not wanted:
            continue
        given = sum(float(c["Labels"].get(label) or 0) for c in _live(containers))
        if given + wanted > total:
            return (
                f"your lab is guaranteed {unit(wanted)}{name}, and this server has "
                f"{unit(max(total - given, 0))} of its {unit(total)} left to guarantee "
                "(the running labs hold the rest). Try again when a lab stops"
            )
    return None


def lab_host_config(resources: dict, device_ids: list[str], shm_size: int | None) -> dict:
    """
    The lab container's limits as docker-py's ``create_host_config`` takes them: the memory
    limit (swap included, so that a lab cannot use as much again on swap), CPUs as nano CPUs, the
    memory guarantee as a reservation, the CPU guarantee as CPU shares (under contention each lab
    gets its share; the refused spawns keep the guarantees' sum within the server), the GPUs as
    NVIDIA device requests by id, and GPU labs' /dev/shm.
    """
    config: dict = {}
    if resources["mem_limit"] is not None:
        config["mem_limit"] = config["memswap_limit"] = resources["mem_limit"]
    if resources["cpu_limit"] is not None:
        config["nano_cpus"] = int(resources["cpu_limit"] * 1e9)
    if resources["mem_guarantee"] is not None:
        config["mem_reservation"] = resources["mem_guarantee"]
    if resources["cpu_guarantee"] is not None:
        config["cpu_shares"] = max(2, int(resources["cpu_guarantee"] * SHARES_PER_CPU))
    if device_ids:
        config["device_requests"] = [
            {"driver": "nvidia", "device_ids": list(device_ids), "capabilities": [["gpu"]]}
        ]
        if shm_size is not None:
            config["shm_size"] = shm_size
    return config


# --- No more rights than a lab needs (the engine filter, labhub_engine.py, requires them) ---
def lab_security(pids_limit: int) -> dict:
    """What every lab container gets, as docker-py's ``create_host_config`` takes it: no
    capability (labs run as their user's uid), no new privileges (a setuid program such as sudo
    gives no root), at most ``pids_limit`` processes and threads (lab_pids_limit)."""
    return {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "pids_limit": pids_limit}


def service_security(pids_limit: int) -> tuple[dict, dict]:
    """The same for a swarm service, as the Engine API takes it: its ContainerSpec's fields, and
    its Resources' Limits. An engine whose API has no ``Privileges.NoNewPrivileges`` for
    services yet ignores it; every capability is dropped there still."""
    return (
        {"CapabilityDrop": ["ALL"], "Privileges": {"NoNewPrivileges": True}},
        {"Pids": pids_limit},
    )


def lab_labels(user: str, resources: dict, own_gpus: list[str]) -> dict[str, str]:
    """The labels a lab container carries: what later spawns count as given."""
    labels = {LAB_LABEL: user}
    if resources["mem_guarantee"]:
        labels[MEM_GUARANTEE_LABEL] = str(resources["mem_guarantee"])
    if resources["cpu_guarantee"]:
        labels[CPU_GUARANTEE_LABEL] = f"{resources['cpu_guarantee']:g}"
    if own_gpus:
        labels[GPUS_LABEL] = ",".join(own_gpus)
    return labels


def service_resources(resources: dict) -> dict:
    """
    The lab's limits as a swarm service carries them, as docker-py's ``docker.types.Resources``
    takes them: limits and reservations of nano CPUs and memory, and GPUs as the generic resource
    GPU nodes advertise (swarm services have no device requests, moby#40133). Only a count of
    GPUs can be asked of a swarm (it picks the GPUs, on a node that has them free).
    """
    spec: dict = {}
    if resources["cpu_limit"] is not None:
        spec["cpu_limit"] = int(resources["cpu_limit"] * 1e9)
    if resources["mem_limit"] is not None:
        spec["mem_limit"] = resources["mem_limit"]
    if resources["cpu_guarantee"] is not None:
        spec["cpu_reservation"] = int(resources["cpu_guarantee"] * 1e9)
    if resources["mem_guarantee"] is not None:
        spec["mem_reservation"] = resources["mem_guarantee"]
    gpus = resources.get("gpus")
    if gpus is not None:
        if not isinstance(gpus, int):
            raise SpawnRefused(
                f"GPUs {gpus!r} cannot be asked of a swarm, which hands out GPUs by number: "
                "give the group a number of GPUs in lab_gpus"
            )
        spec["generic_resources"] = {GPU_RESOURCE: gpus}
    return spec


def oom_notice(state: dict, memory_limit: int | None) -> str | None:
    """
    What to tell a user whose lab's memory limit was hit, from the container's state (the
    Engine API's ``State``), or None: the lab stopped when its main process was killed for it
    (exit 137); while the lab runs, a process in it was (most often a notebook's kernel, which
    Jupyter restarts).
    """
    if not state.get("OOMKilled"):
        return None
    limit = f"its memory limit of {format_size(memory_limit)}" if memory_limit else "its memory"
    if state.get("Running"):
        return (
            f"A process in your lab was killed because the lab used more than {limit} "
            "(most often a notebook's kernel, which then restarts: what it held is lost). "
            "Use less memory at once, or ask the lab's admins for a larger limit."
        )
    return (
        f"Your lab was stopped because it used more than {limit}. Start it again, use less "
        "memory at once, or ask the lab's admins for a larger limit."
    )


# --- Shares whose server does not answer ---------------------------------------------------------
# A lab whose share cannot be mounted would not start at all (Docker refuses to bind an automount
# whose mount fails, after a CIFS timeout): it starts without that share instead, and says so.
# The hub sees the shares' mount points through their folders, mounted into its container with
# the host's mounts propagated (labhub.stack.SHARES_VIEW).


def mounted(mountinfo: str, path: str) -> bool:
    """Whether a file system other than an automount (autofs) is mounted at ``path``, from the
    text of ``/proc/self/mountinfo`` (mount points of shares never hold spaces)."""
    for line in mountinfo.splitlines():
        fields = line.split()
        # ID, parent, device, root, mount point, options, optional fields, "-", type, ...
        if len(fields) > 7 and fields[4] == path and "-" in fields[6:-1]:
            if fields[fields.index("-", 6) + 1] != "autofs":
                return True
    return False


class ShareProbe:
    """
    Which shares are mounted now, each entered first (which starts its automount). A share whose
    server does not answer holds whatever enters it for as long as its mount tries: each is
    waited for a few seconds at most, entered in a thread of its own, and a mount point still
    being entered is not entered again until that returns (so threads never pile up on it).
    """

    def __init__(self, mountinfo: str = "/proc/self/mountinfo") -> None:
        self.mountinfo = Path(mountinfo)
        self._entering: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def _enter(self, path: str) -> threading.Event:
        with self._lock:
            if path not in self._entering:
                self._entering[path] = threading.Event()
                threading.Thread(target=self._list, args=(path,), daemon=True).start()
            return self._entering[path]

    def _list(self, path: str) -> None:
        try:
            os.listdir(path)
        except OSError:
            pass
        with self._lock:
            self._entering.pop(path).set()

    def missing(self, shares: list[dict], wait: float) -> list[dict]:
        """The shares (settings.json's ``{"name", "mountpoint", "seen_at"}``) not mounted within
        ``wait`` seconds, all waited for at once. Blocks: call it in an executor."""
        entered = {share["seen_at"]: self._enter(share["seen_at"]) for share in shares}
        deadline = time.monotonic() + wait
        for event in entered.values():
            event.wait(max(0.0, deadline - time.monotonic()))
        mountinfo = self.mountinfo.read_text()
        return [
            share
            for share in shares
            if not entered[share["seen_at"]].is_set() or not mounted(mountinfo, share["seen_at"])
        ]


def missing_shares_notice(missing: list[dict], volumes: dict) -> str:
    """What a user whose lab started without ``missing`` shares is told (``volumes``: the lab's
    mounts as they were, for where each would have been)."""
    where = ", ".join(
        f"{share['name']} ({volumes[share['mountpoint']]['bind']})" for share in missing
    )
    return (
        f"Your lab started without {'the share' if len(missing) == 1 else 'the shares'} {where}: "
        "nothing could be mounted there now (the file server does not answer). Stop your lab and "
        "start it again once the share is back, to have it."
    )
