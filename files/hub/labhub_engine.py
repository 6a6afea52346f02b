"""
What the hub may ask of the Docker engine, as a pure function: the policy of the engine filter
(labhub_engine_filter.py), which owns the engine's socket and forwards the hub only what spawning
labs needs. Read from DockerSpawner 14's own calls and labhub's spawners (labhub_lab.py,
labhub_service.py): the version, the engine's info, lab containers listed, created, started,
stopped, waited on, inspected, removed and their account files read and written (archive); lab
images inspected and pulled; with lab nodes, lab services, their tasks, their account configs and
nodes. Anything else (exec, other containers, volumes, networks made, builds, plugins) is refused.

A create is checked against what labhub itself asks for (labhub_spawn.pre_spawn_hook,
lab_host_config, lab_security): an image of the lab registry; the uid of the user whose lab it is
(never 0, from the accounts file) and only that account's groups; the lab network; binds only of
that user's home, shares and lab volumes where the settings put them (ro where declared ro);
every capability dropped, no new privileges, a process limit; no privileged mode, added
capabilities, host namespaces, devices, or GPUs but those of the user's groups (lab_gpus).

Nothing here talks to Docker: the filter hands it the request, the settings and accounts, and the
labels of the object a request names; unit-tested on recorded requests (tests/cases/engine-filter/).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from labhub_spawn import GPU_RESOURCE, LAB_LABEL, gpu_devices, lab_resources

# Who a lab container or service is for: one server's labs carry LAB_LABEL; swarm labs, their
# account readers and configs carry this (labhub_service.USER_LABEL).
USER_LABEL = "org.labhub.hub-user"
OWNER_LABELS = (LAB_LABEL, USER_LABEL)
NO_NEW_PRIVILEGES = ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true")
# The files swarm configs may be (the lab's account files, labhub_service._account_configs).
ACCOUNT_FILES = frozenset({"/etc/passwd", "/etc/group"})
CONFIG_PREFIX = "labhub-"
# HostConfig fields a lab's create may set (DockerSpawner's and labhub's); any other one set is
# refused, whatever its value. Empty values of the rest are what docker-py sends by default.
HOST_CONFIG_ALLOWED = frozenset(
    {
        "Binds",
        "NetworkMode",
        "AutoRemove",
        "CapDrop",
        "SecurityOpt",
        "PidsLimit",
        "GroupAdd",
        "Memory",
        "MemorySwap",
        "MemoryReservation",
        "NanoCpus",
        "CpuShares",
        "CpuPeriod",
        "CpuQuota",
        "DeviceRequests",
        "ShmSize",
    }
)
# Set at all (even empty) they weaken the container: an empty MaskedPaths unmasks /proc.
HOST_CONFIG_NEVER = ("MaskedPaths", "ReadonlyPaths")
# Named where they are refused, for a reason a person reads in the log.
HOST_NAMESPACES = ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode")
CONTAINER_SPEC_ALLOWED = frozenset(
    {
        "Image",
        "Args",
        "Command",
        "Env",
        "Mounts",
        "Configs",
        "Labels",
        "User",
        "Groups",
        "CapabilityDrop",
        "Dir",
        "Hostname",
        "Init",
        "TTY",
        "StopGracePeriod",
        "Isolation",
        "Privileges",
    }
)
_VERSION = re.compile(r"^/v\d+(\.\d+)?(?=/)")
_ID = r"(?P<id>[A-Za-z0-9][A-Za-z0-9_.-]*)"
# (method, path, what it is): "read" is forwarded as it is; the others are checked below.
ROUTES = [
    (("GET", "HEAD"), r"/_ping", "read"),
    (("GET",), r"/version", "read"),
    (("GET",), r"/info", "read"),
    (("GET",), r"/containers/json", "read"),
    (("POST",), r"/containers/create", "create"),
    (("GET",), rf"/containers/{_ID}/json", "container"),
    (("POST",), rf"/containers/{_ID}/(start|stop|wait)", "container"),
    (("DELETE",), rf"/containers/{_ID}", "container"),
    (("GET", "HEAD", "PUT"), rf"/containers/{_ID}/archive", "container"),
    (("GET",), r"/images/(?P<image>[^?]+)/json", "read"),
    (("POST",), r"/images/create", "pull"),
    (("GET",), rf"/networks/{_ID}", "read"),
    (("POST",), r"/services/create", "service_create"),
    (("GET", "DELETE"), rf"/services/{_ID}", "service"),
    (("GET",), r"/tasks", "read"),
    (("GET",), rf"/nodes/{_ID}", "read"),
    (("GET",), r"/configs", "read"),
    (("POST",), r"/configs/create", "config_create"),
    (("DELETE",), rf"/configs/{_ID}", "config"),
]
_ROUTES = [(methods, re.compile(pattern + r"$"), kind) for methods, pattern, kind in ROUTES]


@dataclass(frozen=True)
class Request:
    """One request of the hub: its method, its path (with or without the API version), its
    query parameters and its JSON body (None when it has none)."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: dict | None = None


@dataclass(frozen=True)
class Policy:
    """What labhub asks for: from the hub's settings.json (labhub.stack.hub_settings) and the
    accounts file (``{user: {"uid", "gids", "home", "groups", ...}}``), read per request."""

    settings: dict
    accounts: dict

    @property
    def registries(self) -> tuple[str, ...]:
        node = (self.settings.get("node_registry") or {}).get("address")
        return tuple(r for r in (self.settings["registry"], node) if r)

    @property
    def pids_limit(self) -> int:
        return self.settings["engine"]["pids_limit"]


def route(request: Request) -> tuple[str, dict] | None:
    """What a request is (``ROUTES``) and the parts of its path, or None: not one labhub makes."""
    path = _VERSION.sub("", request.path)
    for methods, pattern, kind in _ROUTES:
        match = pattern.match(path)
        if match and request.method in methods:
            return kind, match.groupdict()
    return None


def target_kind(request: Request) -> str | None:
    """The kind of object (``container``, ``service``, ``config``) whose labels the filter must
    read before it may judge the request, or None."""
    found = route(request)
    return found[0] if found and found[0] in ("container", "service", "config") else None


def refusal(request: Request, policy: Policy, target: dict | None = None) -> str | None:
    """
    Why the request is refused, or None: it is forwarded. ``target``: the labels of the object
    the request names (``target_kind``), as the engine has them.
    """
    if ".." in request.path or "%" in request.path or "//" in request.path:
        return f"path {request.path!r}: not one labhub asks for"
    found = route(request)
    if found is None:
        if "/exec" in request.path:
            return "exec into a container: labhub never runs commands in containers"
        return (
            f"{request.method} {_VERSION.sub('', request.path)}: not an engine call spawning needs"
        )
    kind, _ = found
    if kind == "read":
        return None
    if kind in ("container", "service", "config"):
        owner = _owner(target or {}, policy)
        return None if owner else f"{kind} {found[1]['id']}: not a lab (no labhub owner label)"
    if kind == "pull":
        return _image_problem(request.query.get("fromImage", ""), policy)
    if kind == "config_create":
        body = request.body or {}
        if not str(body.get("Name", "")).startswith(CONFIG_PREFIX):
            return f"config {body.get('Name')!r}: not a lab's account file (labhub-*)"
        return None if _owner(body.get("Labels") or {}, policy) else "config: no lab owner"
    if kind == "create":
        return container_problem(request.body or {}, policy)
    return service_problem(request.body or {}, policy)


def container_problem(body: dict, policy: Policy) -> str | None:
    """Why a container's create body (the Engine API's) is not one labhub asks for, or None."""
    owner = _owner(body.get("Labels") or {}, policy)
    if owner is None:
        return "the container is no user's lab (its labhub label names no hub user)"
    problem = _image_problem(body.get("Image", ""), policy) or _user_problem(
        body.get("User"), owner, policy
    )
    if problem:
        return problem
    host = body.get("HostConfig") or {}
    if host.get("Privileged"):
        return "privileged mode: labs never get it"
    if host.get("CapAdd"):
        return f"added capabilities {host['CapAdd']}: labs get none"
    for key in HOST_NAMESPACES:
        if host.get(key):
            return f"{key} {host[key]!r}: labs share no namespace with the host or others"
    if host.get("NetworkMode") not in (policy.settings["network"], "none"):
        return f"network {host.get('NetworkMode')!r}: labs join {policy.settings['network']}"
    networks = set((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
    if networks - {policy.settings["network"]}:
        return f"networks {sorted(networks)}: labs join {policy.settings['network']} only"
    if host.get("Devices"):
        return f"devices {[d.get('PathOnHost') for d in host['Devices']]}: labs get none"
    for key in HOST_CONFIG_NEVER:
        if key in host:
            return f"{key}: labs keep the engine's defaults"
    for key, value in host.items():
        if key not in HOST_CONFIG_ALLOWED and value not in (None, False, "", 0, [], {}):
            return f"HostConfig.{key} {value!r}: labhub never asks for it"
    groups = [str(g) for g in host.get("GroupAdd") or ()]
    if set(groups) - {str(g) for g in policy.accounts[owner]["gids"]}:
        return f"groups {groups}: not all {owner}'s"
    for bind in host.get("Binds") or ():
        source, target, mode = (bind.split(":") + ["rw"])[:3]
        problem = _mount_problem(source, target, "ro" in mode.split(","), owner, policy)
        if problem:
            return problem
    problem = _hardening_problem(
        host.get("CapDrop"),
        host.get("SecurityOpt") or [],
        host.get("PidsLimit"),
        policy,
    )
    if problem:
        return problem
    return _gpu_problem(host.get("DeviceRequests") or [], owner, policy)


def service_problem(body: dict, policy: Policy) -> str | None:
    """Why a swarm service's create body is not a lab as labhub_service.py asks for it."""
    owner = _owner(body.get("Labels") or {}, policy)
    if owner is None:
        return "the service is no user's lab (its labhub label names no hub user)"
    task = body.get("TaskTemplate") or {}
    spec = task.get("ContainerSpec") or {}
    problem = _image_problem(spec.get("Image", ""), policy) or _user_problem(
        spec.get("User"), owner, policy
    )
    if problem:
        return problem
    if spec.get("CapabilityAdd"):
        return f"added capabilities {spec['CapabilityAdd']}: labs get none"
    for key, value in spec.items():
        if key not in CONTAINER_SPEC_ALLOWED and value not in (None, False, "", 0, [], {}):
            return f"ContainerSpec.{key} {value!r}: labhub never asks for it"
    if set(map(str, spec.get("Groups") or ())) - {str(g) for g in policy.accounts[owner]["gids"]}:
        return f"groups {spec.get('Groups')}: not all {owner}'s"
    for mount in spec.get("Mounts") or ():
        if mount.get("Type") not in ("bind", "volume") or mount.get("VolumeOptions"):
            return f"mount {mount}: labs get binds of their declared paths only"
        problem = _mount_problem(
            mount.get("Source", ""),
            mount.get("Target", ""),
            bool(mount.get("ReadOnly")),
            owner,
            policy,
        )
        if problem:
            return problem
    for config in spec.get("Configs") or ():
        if (config.get("File") or {}).get("Name") not in ACCOUNT_FILES:
            return (
                f"config at {(config.get('File') or {}).get('Name')!r}: labs get account files only"
            )
    networks = {n.get("Target") for n in task.get("Networks") or ()}
    swarm = (policy.settings.get("swarm") or {}).get("network")
    if networks - {swarm}:
        return f"networks {sorted(map(str, networks))}: labs join {swarm} only"
    if task.get("Runtime") or task.get("PluginSpec"):
        return "a plugin runtime: labs are containers"
    limits = (task.get("Resources") or {}).get("Limits") or {}
    problem = _hardening_problem(spec.get("CapabilityDrop"), None, limits.get("Pids"), policy)
    if problem:
        return problem
    if spec.get("Privileges") != {"NoNewPrivileges": True}:
        return f"privileges {spec.get('Privileges')!r}: labs get no new privileges, nothing else"
    reservations = (task.get("Resources") or {}).get("Reservations") or {}
    gpus = 0
    for resource in reservations.get("GenericResources") or ():
        discrete = resource.get("DiscreteResourceSpec") or {}
        if discrete.get("Kind") != GPU_RESOURCE or "NamedResourceSpec" in resource:
            return f"generic resource {resource}: labs reserve {GPU_RESOURCE} only"
        gpus += int(discrete.get("Value") or 0)
    if gpus:
        request = _gpu_request(owner, policy)
        if not isinstance(request, int) or gpus > request:
            return f"{gpus} GPUs: {owner}'s groups get {request or 'none'} (lab_gpus)"
    return None


def redacted(body: dict) -> dict:
    """A create's body as the filter logs it: environment values left out (the lab's API
    token is one)."""

    def strip(env):
        return [item.split("=", 1)[0] + "=…" for item in env or ()]

    body = json.loads(json.dumps(body))
    if "Env" in body:
        body["Env"] = strip(body["Env"])
    spec = (body.get("TaskTemplate") or {}).get("ContainerSpec")
    if spec and "Env" in spec:
        spec["Env"] = strip(spec["Env"])
    return body


def _owner(labels: dict, policy: Policy) -> str | None:
    for label in OWNER_LABELS:
        if labels.get(label) in policy.accounts:
            return labels[label]
    return None


def _image_problem(image: str, policy: Policy) -> str | None:
    if any(image.startswith(f"{registry}/") for registry in policy.registries):
        return None
    return f"image {image!r}: not from the lab registry ({', '.join(policy.registries)})"


def _user_problem(user: str | None, owner: str, policy: Policy) -> str | None:
    account = policy.accounts[owner]
    uid, _, gid = (user or "").partition(":")
    if uid in ("", "0", "root"):
        return f"user {user!r}: labs never run as root"
    if uid != str(account["uid"]):
        return f"user {user!r}: {owner}'s lab runs as {owner}'s uid {account['uid']}"
    if gid and gid not in {str(g) for g in account["gids"]}:
        return f"group {gid}: not one of {owner}'s"
    return None


def _mount_problem(source: str, target: str, read_only: bool, owner: str, policy: Policy):
    """A bind of one of the user's declared paths where the settings put it, or the problem."""
    declared = {
        policy.accounts[owner]["home"]: {"bind": policy.settings["lab_home"], "mode": "rw"},
        **policy.settings["users"].get(owner, {}).get("mounts", {}),
    }
    wanted = declared.get(source)
    if wanted is None:
        return f"bind of {source!r}: not one of {owner}'s home, shares or lab volumes"
    if target != wanted["bind"]:
        return f"bind of {source!r} at {target!r}: it goes at {wanted['bind']!r}"
    if wanted["mode"] == "ro" and not read_only:
        return f"bind of {source!r} writable: it is declared read-only"
    return None


def _hardening_problem(cap_drop, security_opt, pids_limit, policy: Policy) -> str | None:
    if "ALL" not in (cap_drop or ()):
        return "capabilities not all dropped (labs run with none: cap_drop ALL)"
    if security_opt is not None:
        if not any(opt in NO_NEW_PRIVILEGES for opt in security_opt):
            return "no-new-privileges missing: labs get no new privileges (setuid, sudo)"
        others = [opt for opt in security_opt if opt not in NO_NEW_PRIVILEGES]
        if others:
            return f"security options {others}: labs keep the engine's seccomp and AppArmor"
    if not pids_limit or pids_limit <= 0 or pids_limit > policy.pids_limit:
        return (
            f"process limit {pids_limit!r}: labs get at most {policy.pids_limit} (lab_pids_limit)"
        )
    return None


def _gpu_request(owner: str, policy: Policy):
    return lab_resources(policy.accounts[owner]["groups"], policy.settings["limits"])["gpus"]


def _gpu_problem(requests: list[dict], owner: str, policy: Policy) -> str | None:
    """Device requests: only NVIDIA GPUs of this server by id, as many as the user's groups get."""
    if not requests:
        return None
    request = _gpu_request(owner, policy)
    if request is None:
        return f"device requests: {owner}'s groups get no GPU (lab_gpus)"
    devices = gpu_devices(policy.settings["limits"].get("server_gpus") or [])
    if request == "all" or isinstance(request, int):
        allowed = {d["id"] for d in devices}
    else:
        allowed = {d["id"] for d in devices if {d["id"], d["index"]} & set(request)}
    wanted = []
    for device in requests:
        if device.get("Driver") not in ("nvidia", "", None) or device.get("Count"):
            return f"device request {device}: labs get NVIDIA GPUs by id"
        if device.get("Capabilities") != [["gpu"]] or device.get("Options"):
            return f"device request {device}: labs get the gpu capability only"
        wanted += device.get("DeviceIDs") or []
    if set(wanted) - allowed:
        return f"GPUs {sorted(set(wanted) - allowed)}: not {owner}'s groups' (lab_gpus)"
    if isinstance(request, int) and len(wanted) > request:
        return f"{len(wanted)} GPUs: {owner}'s groups get {request} (lab_gpus)"
    return None
