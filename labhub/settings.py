"""
The one model of every setting labhub reads from pyinfra host data.

Defaults live in ``group_data/all.py`` (one comment a setting); this module loads them itself too,
so a deploy run from another directory sees the same defaults. Tasks call ``get_settings(host)``
and never read ``host.data`` directly. Bad input raises ``SettingsError`` naming the setting and
the problem, at prepare time, before any operation runs on any host.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import runpy
import stat
import unicodedata
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pyinfra.api.exceptions import PyinfraError

from labhub import cluster, tls
from labhub.pyinfra_api import after_inventory_loaded, memo

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = ROOT / "group_data" / "all.py"

# pyinfra's global arguments (``_sudo``...) and connector settings share host data with ours.
GLOBAL_ARGUMENT_PREFIX = "_"

# Matched whole (re.fullmatch): "$" would let a trailing newline through.
LINUX_USER_RE = re.compile(r"[a-z_][a-z0-9_-]*\$?")
HUB_USER_RE = re.compile(r"[a-z][a-z0-9_-]*")
MAX_ACCOUNT_NAME = 32
USERS_GID = 100

# The one list of paths labhub never mounts over, writes into or owns, on the server and in lab
# containers: each of SYSTEM_TREES and everything under it, and each of SYSTEM_FOLDERS itself
# (a folder under /opt or /srv is fine; /opt or /srv is not).
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/snap",
    "/sys",
    "/usr",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/mail",
    "/var/run",
    "/var/spool",
    # The Python environment of the Jupyter images.
    "/opt/conda",
)
SYSTEM_FOLDERS = (
    "/",
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/srv",
    "/tmp",
    "/var",
    "/var/opt",
    "/var/tmp",
)

# Groups a hub user must never be added to, by name, so that they are refused on a fresh server
# too, where some are made only later by a task (docker, by Docker's package): Debian's static
# system groups (base-passwd) and those of the packages labhub installs or a Debian server runs.
SYSTEM_GROUPS = frozenset(
    (
        "root",
        "daemon",
        "bin",
        "sys",
        "adm",
        "tty",
        "disk",
        "lp",
        "mail",
        "news",
        "uucp",
        "man",
        "proxy",
        "kmem",
        "dialout",
        "fax",
        "voice",
        "cdrom",
        "floppy",
        "tape",
        "sudo",
        "audio",
        "dip",
        "www-data",
        "backup",
        "operator",
        "list",
        "irc",
        "src",
        "shadow",
        "utmp",
        "video",
        "sasl",
        "plugdev",
        "staff",
        "games",
        "users",
        "nogroup",
        "input",
        "kvm",
        "render",
        "sgx",
        "netdev",
        "crontab",
        "messagebus",
        "ssh",
        "_ssh",
        "systemd-journal",
        "systemd-network",
        "systemd-resolve",
        "systemd-timesync",
        "docker",
        "wheel",
        "lxd",
        "libvirt",
    )
)

# The image reference grammar of the distribution project (reference/regexp.go), whole.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = (
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])"
    r"(?::[0-9]+)?"
)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*"
_REPOSITORY = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE_RE = re.compile(rf"(?:{_DOMAIN}/)?{_REPOSITORY}(?::{_TAG})?(?:@{_DIGEST})?")
REPOSITORY_RE = re.compile(_REPOSITORY)
DNS_NAME_RE = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*"
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
)
TAG_RE = re.compile(_TAG)


class SettingsError(PyinfraError):
    """Invalid labhub settings; the message names each bad setting and its problem."""


def load_defaults() -> dict[str, Any]:
    values = runpy.run_path(str(DEFAULTS_FILE))
    return {k: v for k, v in values.items() if not k.startswith("_")}


def _matching(pattern: re.Pattern, problem: str):
    """A validator of strings ``pattern`` matches whole; ``problem`` says what the value is not
    (``{value!r} is not ...``)."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {problem}")
        return value

    return check


def _linux_user_name(value: str) -> str:
    if not LINUX_USER_RE.fullmatch(value) or len(value) > MAX_ACCOUNT_NAME:
        raise ValueError(
            f"{value!r} is not a valid Linux user name (lower case letters, digits, '_' and '-', "
            f"starting with a letter or '_', at most {MAX_ACCOUNT_NAME} characters)"
        )
    return value


def _group_name(value: str) -> str:
    if not LINUX_USER_RE.fullmatch(value) or len(value) > MAX_ACCOUNT_NAME:
        raise ValueError(f"{value!r} is not a valid Linux group name")
    if value in SYSTEM_GROUPS:
        raise ValueError(
            f"{value!r} is a system group: labhub does not add hub users to it "
            "(it would give them the group's powers); name a group of the lab's own"
        )
    return value


def normal_path(value: str) -> str:
    """
    The one spelling of a path, which every check and every task uses: ``//etc/``, ``/./etc``
    and ``/etc`` are all ``/etc`` (the kernel reads them alike; a check of the spelling would
    not). Raises ValueError for an empty path and for ``..``, which would climb out of a folder
    a check approved.
    """
    if not value:
        raise ValueError("is empty: give a path")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{value!r} must be a path without '..'")
    root = "/" if value.startswith("/") else ""
    return root + "/".join(parts) or "."


def _absolute_path(value: str) -> str:
    if value and not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path without '..'")
    return normal_path(value)


def system_path_problem(path: str) -> str | None:
    """Why ``path`` (absolute) is a system folder labhub must not use, or None."""
    for tree in SYSTEM_TREES:
        if path == tree or path.startswith(tree + "/"):
            return f"{path!r} is {'' if path == tree else 'inside '}the system folder {tree}"
    if path in SYSTEM_FOLDERS:
        return f"{path!r} is a system folder: use a folder inside it"
    return None


def _not_system_path(value: str) -> str:
    problem = system_path_problem(value) if value.startswith("/") else None
    if problem:
        raise ValueError(problem)
    return value


def _plain_path(value: str) -> str:
    # fstab, compose and mount options split on white space and commas, and so would these.
    if any(c.isspace() or c == "," or not c.isprintable() for c in value):
        raise ValueError(f"{value!r} may not contain spaces, commas or control characters")
    if ":" in value:
        raise ValueError(
            f"{value!r} may not contain ':': Docker reads a volume as host:container:mode"
        )
    if "\\" in value:
        raise ValueError(
            f"{value!r} may not contain '\\': fstab reads it as an escape (\\040 "
            "is a space), and the path would never match its fstab line"
        )
    return value


def _secret_file(value: str) -> tuple[Path, bytes]:
    """A file on the admin's machine holding a secret: absolute, outside the repository (never
    committed) and readable by its owner alone, as ssh wants a private key: a secret others on
    this machine can read is no longer one. Its content is never put in an error message."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ValueError(f"{value!r} must be an absolute path (or start with ~/)")
    if path.resolve().is_relative_to(ROOT):
        raise ValueError(
            f"{value!r} is inside the labhub repository: keep secret files outside it so "
            "that they are never committed"
        )
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{value!r}: no such file on this machine") from None
    except OSError as e:
        raise ValueError(f"{value!r} cannot be read: {e.strerror}") from None
    if mode & 0o077:
        raise ValueError(
            f"{value!r} can be read by others on this machine (mode {mode:04o}): "
            f"make it yours alone (chmod 600 {path})"
        )
    return path, data


def _credentials_file(value: str) -> str:
    """
    A CIFS credentials file on the admin's machine: absolute, outside the repository, and read
    right by mount.cifs, which takes each line's key by its first letters, in any case (``user``,
    ``pass``, ``dom``) and its value as everything after the first ``=`` up to the line end. Its
    content is never put in an error message.
    """
    path, data = _secret_file(value)
    if data.startswith(b"\xef\xbb\xbf"):
        raise ValueError(
            f"{value!r} starts with a byte-order mark, which mount.cifs reads as part "
            "of the first key: save it as UTF-8 without BOM"
        )
    if b"\r" in data:
        raise ValueError(
            f"{value!r} has Windows line ends (CR LF): mount.cifs would read the CR "
            "as part of each value; convert it (dos2unix) and deploy again"
        )
    try:
        lines = data.decode().split("\n")
    except UnicodeDecodeError:
        raise ValueError(f"{value!r} is not UTF-8 text") from None
    found: dict[str, str] = {}
    for line in lines:
        line = line.lstrip(" \t")
        if "=" not in line:
            continue
        for key, prefix in (("username", "user"), ("password", "pass"), ("domain", "dom")):
            if line[: len(prefix)].lower() == prefix:
                found[key] = line.split("=", 1)[1]
    missing = [key for key in ("username", "password") if not found.get(key)]
    if missing:
        raise ValueError(
            f"{value!r} has no {' and no '.join(k + '=' for k in missing)} line with a value (a "
            "credentials file holds username= and password= lines, and optionally domain=)"
        )
    return str(path)


def _password_file(value: str) -> str:
    """A secret (a password, a key) in a file on the admin's machine, not empty."""
    path, data = _secret_file(value)
    if not data.strip():
        raise ValueError(f"{value!r} is empty")
    return str(path)


def _ssh_key_file(value: str) -> str:
    """The private key a backup reaches its sftp repository with: unattended, so without a
    passphrase; the private half (the .pub file is the server's to know)."""
    path, data = _secret_file(value)
    if (
        re.match(rb"\s*(ssh-|ecdsa-|sk-)\S+ AAAA", data)
        or b"BEGIN SSH2 PUBLIC KEY" in data
        or b"PUBLIC KEY-----" in data
    ):
        raise ValueError(
            f"{value!r} is a public key: give the private key (the file without "
            ".pub); its public half goes in the repository server's authorized_keys"
        )
    loaders = (serialization.load_ssh_private_key, serialization.load_pem_private_key)
    for load in loaders:
        try:
            load(data, password=None)
            return str(path)
        except TypeError:
            raise ValueError(
                f"{value!r} has a passphrase: backups run unattended, with no one "
                "to type it; give a key without one (ssh-keygen -p -N '' -f "
                "KEY on a copy)"
            ) from None
        except (ValueError, UnsupportedAlgorithm):
            continue
    raise ValueError(f"{value!r} is not an SSH private key (as ssh-keygen writes them)")


# restic's remote backends, by the prefix of their repository URL.
BACKUP_BACKENDS = ("sftp:", "rest:", "s3:", "b2:", "azure:", "gs:", "swift:", "rclone:")


def _url_password(value: str) -> str:
    """Refuse a URL with a password in it: URLs are written into world-readable files, shown by
    --diff and logged."""
    # restic's sftp:user@host:/path form has no "//"; a password would sit before the "@".
    login = value.split("//", 1)[1] if "//" in value else value.partition(":")[2]
    login = login.split("/", 1)[0]
    if "@" in login and ":" in login.rsplit("@", 1)[0]:
        raise ValueError(
            "the URL holds a password (user:password@): it would be readable on the "
            "server and in the deploy's output; give the login through a secret "
            "file, never in the URL"
        )
    return value


def _backup_repository(value: str) -> str:
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"{value!r} may not contain spaces or control characters")
    _url_password(value)
    if value.startswith("/"):
        path = normal_path(value)
        problem = system_path_problem(path)
        if problem:
            raise ValueError(problem)
        return path
    if not value.startswith(BACKUP_BACKENDS):
        raise ValueError(
            f"{value!r} is not a restic repository: an absolute folder on the server "
            f"or a URL starting with one of {', '.join(BACKUP_BACKENDS)}"
        )
    return value


def _calendar(value: str) -> str:
    # systemd.time(7) calendar events: checked for characters here, by systemd on the server.
    if not re.fullmatch(r"[A-Za-z0-9*:/,.~ -]+", value) or not value.strip():
        raise ValueError(
            f"{value!r} is not a systemd calendar event (like daily, weekly, "
            "'*-*-* 02:30:00' or 'Mon..Fri 23:00')"
        )
    return value


def _snapshot(value: str) -> str:
    if value == "latest" or re.fullmatch(r"[0-9a-f]{8,64}", value):
        return value
    if re.fullmatch(r"[0-9a-fA-F]{8,64}", value):
        raise ValueError(
            f"{value!r} has upper case letters: restic writes snapshot IDs in lower "
            f"case ({value.lower()!r})"
        )
    if re.fullmatch(r"[0-9a-fA-F]+", value):
        raise ValueError(
            f"{value!r} is {len(value)} hex digits: give at least 8 of the ID "
            "(restic snapshots lists them), or 'latest'"
        )
    raise ValueError(
        f"{value!r} is not a snapshot ID (8 to 64 hex digits, as restic snapshots "
        "lists them) or 'latest'"
    )


def _build_folder(value: str) -> str:
    """A build folder on the admin's machine; relative paths are relative to the project."""
    path = Path(value).expanduser()
    path = path if path.is_absolute() else ROOT / path
    if not (path / "Dockerfile").is_file():
        raise ValueError(f"{value!r} is not a build folder with a Dockerfile on this machine")
    return str(path)


def _public_file(value: str) -> tuple[Path, bytes]:
    """A file on the admin's machine that labhub uploads world-readable (and --diff shows):
    certificates only, never a private key."""
    path = Path(value).expanduser()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{value!r} cannot be read on this machine: {e.strerror}") from None
    if re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----", data):
        raise ValueError(
            f"{value!r} holds a private key: this file is uploaded readable by "
            "all and shown by --diff; keep only the certificates in it (the hub's "
            "key goes in tls_key)"
        )
    return path, data


def _ca_bundle(value: str) -> str:
    path, data = _public_file(value)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError(f"{value!r} is not a PEM CA bundle (no BEGIN CERTIFICATE)")
    return str(path)


def _tls_file(value: str, read, parse) -> str:
    """A certificate or key file on the admin's machine, ``read`` (as public or secret) and
    ``parse``d by labhub.tls, whose problem is the setting's."""
    path, data = read(value)
    try:
        parse(data)
    except tls.CertificateProblem as e:
        raise ValueError(f"{value!r} {e}") from None
    return str(path)


def _certificate_file(value: str) -> str:
    return _tls_file(value, _public_file, tls.leaf)


def _key_file(value: str) -> str:
    return _tls_file(value, _secret_file, tls.key_public_bytes)


def _host_name(value: str) -> str:
    """A DNS name or an IP address that users open the hub at."""
    if value.startswith("[") and value.endswith("]"):
        # An IPv6 address as URLs write it.
        value = value[1:-1]
    if "%" in value:
        raise ValueError(
            f"{value!r} is a link-local address with a zone, which only this "
            "machine's own network card can reach: give the server's name or a "
            "routable address"
        )
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is not None:
        if address.is_unspecified:
            raise ValueError(
                f"{value!r} is the unspecified address, which no browser opens: "
                "give the server's name or one of its addresses"
            )
        return str(address)
    if value.endswith(".") and DNS_NAME_RE.fullmatch(value[:-1]):
        raise ValueError(
            f"{value!r} ends with a dot: browsers send the name without it and the "
            f"certificate would not match; write {value[:-1]!r}"
        )
    odd = next((c for c in value if not c.isascii()), None)
    if odd is not None:
        raise ValueError(
            f"{value!r} has the non-ASCII character {odd!r} "
            f"({unicodedata.name(odd, f'U+{ord(odd):04X}')}): type the name in "
            "ASCII, or give an internationalized name in its xn-- form"
        )
    if len(value) > 253 or not DNS_NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a DNS name (letters, digits and '-' between dots, "
            "like hub.lab.example.org) or an IP address"
        )
    return value.lower()


def _no_placeholder(value: str) -> str:
    # Caddy replaces {...} in its configuration's values with placeholders at run time.
    if "{" in value or "}" in value:
        raise ValueError(
            f"{value!r} may not contain '{{' or '}}': Caddy reads them as a placeholder"
        )
    return value


def _email(value: str) -> str:
    _no_placeholder(value)
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s.]+", value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _https_url(value: str) -> str:
    if not re.fullmatch(r"https://[^\s'\"]+", value):
        raise ValueError(f"{value!r} is not an https:// URL")
    _no_placeholder(value)
    return _url_password(value)


def _http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s'\"]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return _url_password(value).rstrip("/")


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"{value!r} is not a valid regular expression: {e}") from None
    return value


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if value.startswith("[") and value.endswith("]"):
        # The form of a URL; a bind address is the address alone.
        return _ip_address(value[1:-1])
    raise ValueError(
        f"{value!r} is not an IP address (a bind address is one of the server's "
        "addresses, 0.0.0.0 for all, or 127.0.0.1 for the server alone)"
    )


def _advertise_address(value: str) -> str:
    """An address of the server that the other servers of the lab reach its engine at."""
    address = ipaddress.ip_address(value)
    if address.is_unspecified or address.is_loopback or address.is_multicast:
        raise ValueError(
            f"{value!r} is not an address the other servers of the lab can reach this one at: "
            "give one of its addresses on the lab's network"
        )
    return value


# Docker's recommended form of a label key (lower case, dots and dashes inside), which a swarm
# constraint (node.labels.KEY==VALUE) reads whole.
NODE_LABEL_KEY_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")
# What a swarm constraint's value may hold, less white space and its operators' characters.
NODE_LABEL_VALUE_RE = re.compile(r"[A-Za-z0-9:._/-]+")


def _node_labels(value: dict[str, str]) -> dict[str, str]:
    for key, label in value.items():
        if not NODE_LABEL_KEY_RE.fullmatch(key) or len(key) > 128:
            raise ValueError(
                f"{key!r} is not a node label key (lower case letters, digits, '.', '_' and "
                "'-', starting and ending with a letter or digit), as node.labels.KEY in a "
                "swarm constraint reads it"
            )
        if not NODE_LABEL_VALUE_RE.fullmatch(label):
            raise ValueError(
                f"{key}: {label!r} is not a node label value a swarm constraint can match "
                "(letters, digits, ':', '.', '_', '/' and '-', not empty)"
            )
    return value


def _string_from_command_line(value: Any) -> Any:
    """pyinfra's --data reads ``restore_snapshot=12345678`` as a number, dropping leading zeros
    and reading ``1234e567`` as a float: no number can be turned back into the ID the admin
    typed, so say how to write it instead (in the message of its setting)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(
            f"{value!r} is a number, not the snapshot ID you typed (the command line "
            "reads digits as a number): write it as a JSON string, in both quotes: "
            "--data 'restore_snapshot=\"01234567\"'"
        )
    return value


def _not_empty_groups(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is not None and not value:
        raise ValueError("an empty list gives it to nobody; leave groups out for all hub users")
    return value


# --- lab_placement: swarm placement constraints (docker service create --constraint) ---
# The node attributes swarm places by, with the values each may take (None: any name).
_CONSTRAINT_KEYS = {
    "node.id": None,
    "node.hostname": None,
    "node.role": ("manager", "worker"),
    "node.platform.os": None,
    "node.platform.arch": None,
}
_CONSTRAINT_RE = re.compile(r"\s*(?P<key>[^\s=!]+)\s*(?P<op>==|!=)\s*(?P<value>[^\s=!]+)\s*")
# Swarm's own label and value syntax, narrowed to what an inventory's node_labels hold.
_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CONSTRAINT_VALUE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")


def _constraint(value: str) -> str:
    """A swarm placement constraint, ``node.labels.gpu==a100``, as swarm reads it (spaces
    around the operator dropped)."""
    match = _CONSTRAINT_RE.fullmatch(value)
    if not match:
        raise ValueError(
            f"{value!r} is not a swarm constraint: write <key>==<value> or <key>!=<value>, "
            "such as node.labels.gpu==a100"
        )
    key, op, wanted = match.group("key", "op", "value")
    label = next(
        (key[len(p) :] for p in ("node.labels.", "engine.labels.") if key.startswith(p)), None
    )
    if label is None and key not in _CONSTRAINT_KEYS:
        raise ValueError(
            f"{value!r}: swarm places by node.labels.<label>, engine.labels.<label>, "
            f"{', '.join(_CONSTRAINT_KEYS)}, not {key!r}"
        )
    if label is not None and not _LABEL_RE.fullmatch(label):
        raise ValueError(f"{value!r}: {label!r} is not a valid label name (a-z, 0-9, '_.-')")
    if not _CONSTRAINT_VALUE_RE.fullmatch(wanted):
        raise ValueError(f"{value!r}: {wanted!r} is not a valid value (a-z, 0-9, '_.:-')")
    allowed = _CONSTRAINT_KEYS.get(key)
    if allowed and wanted not in allowed:
        raise ValueError(f"{value!r}: {key} is {' or '.join(allowed)}, not {wanted!r}")
    return f"{key}{op}{wanted}"


def _not_empty_placement(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError("an empty list places nothing: leave the group out to run it anywhere")
    return value


Constraint = Annotated[str, AfterValidator(_constraint)]
Placement = Annotated[tuple[Constraint, ...], AfterValidator(_not_empty_placement)]
# --- end lab_placement ---


# The types of settings: each checks its values once, wherever a setting of that type appears.
LinuxUserName = Annotated[str, AfterValidator(_linux_user_name)]
GroupName = Annotated[str, AfterValidator(_group_name)]
HubUserName = Annotated[
    str,
    AfterValidator(
        _matching(
            HUB_USER_RE,
            "a valid hub user name: use lower case letters, digits, '_' and '-', starting "
            "with a letter",
        )
    ),
]
AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]
# A folder labhub owns or mounts over: never a system folder.
OwnedPath = Annotated[AbsolutePath, AfterValidator(_plain_path), AfterValidator(_not_system_path)]
# A path inside lab containers: relative means in the notebook user's home (lab_home).
ContainerPath = Annotated[
    str, AfterValidator(normal_path), AfterValidator(_plain_path), AfterValidator(_not_system_path)
]
CredentialsFile = Annotated[str, AfterValidator(_credentials_file)]
SecretFile = Annotated[str, AfterValidator(_password_file)]
SshKeyFile = Annotated[str, AfterValidator(_ssh_key_file)]
BackupRepository = Annotated[str, AfterValidator(_backup_repository)]
Calendar = Annotated[str, AfterValidator(_calendar)]
SnapshotId = Annotated[str, BeforeValidator(_string_from_command_line), AfterValidator(_snapshot)]
BuildFolder = Annotated[str, AfterValidator(_build_folder)]
CaBundle = Annotated[str, AfterValidator(_ca_bundle)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Regex = Annotated[str, AfterValidator(_regex)]
ImageName = Annotated[
    str,
    AfterValidator(
        _matching(REPOSITORY_RE, "a valid image repository name (lower case, a-z0-9._-/)")
    ),
]
ImageTag = Annotated[
    str,
    AfterValidator(
        _matching(
            TAG_RE,
            "a valid image tag (letters, digits, '_', '.', '-', at most 128, not starting with "
            "'.' or '-')",
        )
    ),
]
ImageReference = Annotated[
    str,
    AfterValidator(
        _matching(
            IMAGE_REFERENCE_RE,
            "an image reference like registry:2 or quay.io/jupyter/base-notebook:2025-01-20",
        )
    ),
]
IpAddress = Annotated[str, AfterValidator(_ip_address)]
AdvertiseAddress = Annotated[IpAddress, AfterValidator(_advertise_address)]
NodeLabels = Annotated[dict[str, str], AfterValidator(_node_labels)]
HostName = Annotated[str, AfterValidator(_host_name)]
Email = Annotated[str, AfterValidator(_email)]
HttpsUrl = Annotated[str, AfterValidator(_https_url)]
CertificateFile = Annotated[str, AfterValidator(_certificate_file)]
KeyFile = Annotated[str, AfterValidator(_key_file)]
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[int, Field(ge=0)]
# Host groups that select who gets a share or lab volume; None: every hub user.
SelectingGroups = Annotated[tuple[GroupName, ...] | None, AfterValidator(_not_empty_groups)]


def _split_options(value: Any) -> Any:
    """Mount options as a list or as fstab writes them, one string with commas."""
    if isinstance(value, str):
        return tuple(o.strip() for o in value.split(",") if o.strip())
    return tuple(value) if isinstance(value, list) else value


def _mount_options(value: tuple[str, ...]) -> tuple[str, ...]:
    for option in value:
        if any(c.isspace() for c in option) or "," in option:
            raise ValueError(f"mount option {option!r} may not contain spaces or commas")
        if option in ("noauto", "auto"):
            raise ValueError(
                f"mount option {option!r} is not allowed: labhub mounts every share and home at "
                "boot through a systemd automount"
            )
    return value


def _cifs_options(value: tuple[str, ...]) -> tuple[str, ...]:
    for option in value:
        refused = cifs_option_owner(option.split("=", 1)[0])
        if refused:
            raise ValueError(
                f"mount option {option.split('=', 1)[0]!r} is not allowed "
                f"(mount.cifs reads it as {refused[0]}): {refused[1]}"
            )
    return value


def _cifs_source(value: str) -> str:
    if not re.fullmatch(r"//[^/\s,]+/[^\s,]+", value) or not value.isprintable():
        raise ValueError(f"{value!r} is not a CIFS source like //server/share (no spaces)")
    return value


def _nfs_source(value: str) -> str:
    server, sep, path = value.rpartition(":")
    if server.startswith("[") and server.endswith("]"):
        server = server[1:-1]
    if (
        not sep
        or not (_is_ip(server) or DNS_NAME_RE.fullmatch(server))
        or not path.startswith("/")
        or any(c.isspace() or c in ",\\" or not c.isprintable() for c in path)
    ):
        raise ValueError(
            f"{value!r} is not an NFS export like server:/export (a server name or address, "
            "then an absolute path without spaces or commas)"
        )
    return f"{value[: len(value) - len(path)]}{normal_path(path)}"


MountOptions = Annotated[
    tuple[str, ...], BeforeValidator(_split_options), AfterValidator(_mount_options)
]
# A CIFS mount's own options: never those labhub sets from the settings (the login, ro/rw...).
CifsOptions = Annotated[MountOptions, AfterValidator(_cifs_options)]
CifsSource = Annotated[str, AfterValidator(_cifs_source)]
NfsSource = Annotated[str, AfterValidator(_nfs_source)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class HubUser(_Model):
    name: HubUserName
    uid: int | None = Field(default=None, ge=1000, le=2**31 - 2)
    groups: tuple[GroupName, ...] = ()


class Share(_Model):
    name: str
    source: CifsSource
    mountpoint: OwnedPath
    mode: Literal["ro", "rw"]
    credentials: CredentialsFile
    options: CifsOptions = ()
    groups: SelectingGroups = None
    container_path: ContainerPath | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", value):
            raise ValueError(f"{value!r} is not a valid share name (a-z, 0-9, '_', '.', '-')")
        return value

    @property
    def host_path(self) -> str:
        return self.mountpoint


# The options mount.cifs takes from labhub's own settings, as its parse_opt_token reads option
# names: by their first letters (``passwd``, ``password2`` and ``pass`` are all the password, and
# ``rwpidforward`` is ``rw``), in order, with any case (newer releases compare without case). A
# login in the options would land in /etc/fstab, which every account on the server can read.
_CIFS_OWNED = (
    (("users", "user_xattr"), None, ""),
    (("user",), "the user name", "put the login in the credentials file"),
    (("pass",), "the password", "put the login in the credentials file"),
    (("sec", "ip"), None, ""),
    (("unc", "target", "path"), "the share's source", "set the share's source instead"),
    (("dom", "workg"), "the domain", "put domain= in the credentials file"),
    (("cred",), "the credentials file", "labhub writes the share's credentials file itself"),
    (
        (
            "uid",
            "cruid",
            "gid",
            "fmask",
            "file_mode",
            "dmask",
            "dir_mode",
            "dirm",
            "nosuid",
            "suid",
            "nodev",
            "nobrl",
            "nolock",
            "mand",
            "nomand",
            "dev",
            "noexec",
            "exec",
            "guest",
        ),
        None,
        "",
    ),
    (("ro",), "ro", "set the share's mode instead"),
    (("rw",), "rw", "set the share's mode instead"),
)


def cifs_option_owner(key: str) -> tuple[str, str] | None:
    """(what mount.cifs reads an option name as, what to do instead) when the option would
    override a share setting labhub owns; None for an option of the admin's own."""
    key = key.lower()
    for prefixes, meaning, advice in _CIFS_OWNED:
        if key.startswith(prefixes):
            return (meaning, advice) if meaning else None
    return None


class CifsExport(_Model):
    """An existing CIFS export of the homes, given like a share: its source, credentials and
    own options (never those labhub sets: the login, ro/rw, ownership)."""

    source: CifsSource
    credentials: CredentialsFile
    options: CifsOptions = ()


def _home_storage(value: Any) -> Any:
    """ "export" is the storage with no export of the lab's own: the hub server's disk."""
    if value == "export":
        return {}
    if isinstance(value, dict) and not value:
        raise ValueError('an empty mapping: give "export", {"nfs": ...} or {"cifs": {...}}')
    if not isinstance(value, dict):
        raise ValueError(
            f'{value!r} is not "export" (the hub server exports the homes over NFS), '
            '{"nfs": "server:/export"} or {"cifs": {"source": ..., "credentials": ...}}'
        )
    return value


class HomeStorage(_Model):
    """
    Where the hub users' homes are: on the hub server's disk, exported over NFS to the lab
    nodes (neither ``nfs`` nor ``cifs``: the setting's ``"export"``), or on an existing NFS or
    CIFS export holding one folder per account, mounted at each home on every server.
    """

    nfs: NfsSource | None = None
    cifs: CifsExport | None = None
    options: MountOptions = ()

    @model_validator(mode="after")
    def _one_export(self) -> HomeStorage:
        if self.nfs is not None and self.cifs is not None:
            raise ValueError("give nfs or cifs, not both")
        if self.options and self.nfs is None:
            raise ValueError("options go with nfs (a CIFS export's options go in its own mapping)")
        return self

    @property
    def kind(self) -> Literal["export", "nfs", "cifs"]:
        return "nfs" if self.nfs is not None else "cifs" if self.cifs is not None else "export"


class LabVolume(_Model):
    host_path: OwnedPath
    container_path: ContainerPath
    mode: Literal["ro", "rw"] = "rw"
    groups: SelectingGroups = None


class LabImage(_Model):
    name: ImageName
    version: ImageTag
    context: BuildFolder | None = None
    base_image: ImageReference | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def build_folder(self) -> str:
        """The name of the image's build folder on the server (under hub_dir/build)."""
        return f"lab-{self.name.replace('/', '-')}-{self.version}"


class PrunePolicy(_Model):
    keep_last: int = Field(ge=1)
    keep_tags: tuple[Regex, ...]
    older_than_days: int | None = Field(ge=0)


# --- Lab limits and GPUs (lab_limits, lab_gpus, lab_shm_size) -----------------------------------

# The key of lab_limits for users none of whose groups has an entry: never a group name.
DEFAULT_LIMITS = "*"
# Binary units, as Docker reads --memory and --shm-size (512M, 8G, 1.5G).
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)([KMGT]?)(?:I?B)?", re.IGNORECASE)
# A GPU as nvidia-smi -L and Docker's --gpus device= name it: an index, a GPU or MIG UUID.
GPU_ID_RE = re.compile(r"\d+|GPU-[0-9a-fA-F-]+|MIG-[0-9a-zA-Z/-]+")
# The smallest memory limit Docker accepts for a container.
MIN_MEMORY = 6 * 1024**2


def _size(value: Any) -> Any:
    """A size as Docker writes it (``512M``, ``8G``, ``1.5G``; binary units) or a number of
    bytes, as bytes."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _SIZE_RE.fullmatch(value.strip())
        if match:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
        raise ValueError(
            f"{value!r} is not a size: a number of bytes, or one with K, M, G or T "
            "(binary units, as Docker reads them: '512M', '8G', '1.5G')"
        )
    return value


def _gpu_request(value: Any) -> Any:
    if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    if isinstance(value, (tuple, list)) and value:
        for device in value:
            if not isinstance(device, str) or not GPU_ID_RE.fullmatch(device):
                raise ValueError(
                    f"{device!r} is not a GPU as nvidia-smi -L names it: an index as a string "
                    "('0') or a UUID ('GPU-...', 'MIG-...')"
                )
        if len(set(value)) != len(value):
            raise ValueError("lists a GPU twice")
        return tuple(value)
    raise ValueError(
        f'{value!r} is not a GPU request: "all", a number of GPUs of the lab\'s own (1 or '
        "more), or a list of GPUs ['0', 'GPU-...'] as nvidia-smi -L names them"
    )


def _memory(value: int) -> int:
    if value < MIN_MEMORY:
        raise ValueError(
            f"{format_size(value)} is less than Docker's smallest memory limit, "
            f"{format_size(MIN_MEMORY)} (a number alone is bytes: write '512M', '8G')"
        )
    return value


Size = Annotated[int, BeforeValidator(_size), Field(ge=1)]
MemorySize = Annotated[int, BeforeValidator(_size), AfterValidator(_memory)]
Cpus = Annotated[float, Field(gt=0)]
GpuRequest = Annotated[Literal["all"] | int | tuple[str, ...], BeforeValidator(_gpu_request)]


class LabLimits(_Model):
    """One group's lab limits and guarantees; a key left out is the default's (``"*"``)."""

    mem_limit: MemorySize | None = None
    cpu_limit: Cpus | None = None
    mem_guarantee: MemorySize | None = None
    cpu_guarantee: Cpus | None = None

    def completed(self, default: LabLimits | None) -> LabLimits:
        """These limits with what they leave out taken from ``default``."""
        if default is None:
            return self
        return LabLimits(
            **{key: value if value is not None else getattr(default, key) for key, value in self}
        )

    def problems(self, where: str) -> list[str]:
        problems = []
        for kind, unit in (("mem", format_size), ("cpu", format_cpus)):
            limit, guarantee = getattr(self, f"{kind}_limit"), getattr(self, f"{kind}_guarantee")
            if limit is not None and guarantee is not None and guarantee > limit:
                problems.append(
                    f"{where}.{kind}_guarantee: {unit(guarantee)} is more than the "
                    f"{kind}_limit of {unit(limit)}: a lab cannot be guaranteed more than it may use"
                )
        return problems


def format_size(value: int) -> str:
    for unit in ("T", "G", "M", "K"):
        size = value / _SIZE_UNITS[unit]
        if size >= 1 and round(size, 2) == size:
            return f"{size:g}{unit}"
    return f"{value} bytes"


def format_cpus(value: float) -> str:
    return f"{value:g} CPU" + ("" if value == 1 else "s")


class Settings(_Model):
    docker_source: Literal["docker", "distro"]
    docker_apt_url: HttpUrl
    docker_users: tuple[LinuxUserName, ...] | None
    hub_users: tuple[HubUser, ...]
    hub_admins: tuple[str, ...]
    user_prefix: str
    shares: tuple[Share, ...]
    home_storage: Annotated[HomeStorage, BeforeValidator(_home_storage)]
    hub_dir: OwnedPath
    hub_port: Port
    hub_bind: IpAddress
    tls: Literal["acme", "files", "internal", "off"]
    hub_domain: HostName | None
    acme_email: Email | None
    acme_directory: HttpsUrl
    acme_ca_root: CaBundle | None
    acme_wait: int = Field(ge=10, le=3600)
    tls_cert: CertificateFile | None
    tls_key: KeyFile | None
    https_port: Port
    http_port: Port
    proxy_image: ImageReference
    hub_base_image: ImageReference
    min_password_length: int = Field(ge=1)
    first_login: Literal["invite", "open"]
    invite_days: int = Field(ge=1, le=365)
    failed_logins: int = Field(ge=0)
    failed_login_wait: int = Field(ge=1, le=86400)
    reissue_invites: tuple[str, ...]
    reset_passwords: tuple[str, ...]
    registry_image: ImageReference
    registry_bind: IpAddress
    registry_port: Port
    node_registry_port: Port
    lab_images: tuple[LabImage, ...] = Field(min_length=1)
    lab_base_image: ImageReference
    lab_default_image: str | None
    lab_home: Annotated[AbsolutePath, AfterValidator(_plain_path), AfterValidator(_not_system_path)]
    lab_volumes: tuple[LabVolume, ...]
    lab_placement: dict[GroupName, Placement]
    idle_timeout: Seconds
    max_age: Seconds
    metrics_token: bool
    build_ca_bundle: CaBundle | None
    pip_index_url: HttpUrl | None
    registry_prune: PrunePolicy
    registry_prune_apply: bool
    backup_repository: BackupRepository | None
    backup_password_file: SecretFile | None
    backup_ssh_key: SshKeyFile | None
    backup_homes: bool
    backup_registry: bool
    backup_schedule: Calendar | None
    backup_keep: dict[
        Literal["last", "hourly", "daily", "weekly", "monthly", "yearly"],
        Annotated[int, Field(ge=1)],
    ]
    restore_snapshot: SnapshotId
    lab_limits: dict[str, LabLimits]
    lab_gpus: dict[GroupName, GpuRequest]
    lab_shm_size: Size | None
    # Processes and threads in one lab (a fork bomb stops there): Jupyter itself needs some 60.
    lab_pids_limit: int = Field(ge=128, le=4_194_304)
    # Not a setting: whether the host's inventory has lab nodes (labhub.cluster), which some
    # settings need or leave unused. ``validate`` sets it from the inventory.
    with_lab_nodes: bool = False
    node_labels: NodeLabels
    swarm_advertise_address: AdvertiseAddress | None
    swarm_encrypted: bool

    @field_validator("hub_users", mode="before")
    @classmethod
    def _names_to_users(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            # A number is a name written without quotes: its error is the name's.
            return tuple(
                {"name": v} if isinstance(v, (str, int, float)) and not isinstance(v, bool) else v
                for v in value
            )
        return value

    @field_validator("user_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if value and not re.fullmatch(r"[a-z][a-z0-9_-]*", value):
            raise ValueError(f"{value!r} must start with a lower case letter and use a-z0-9_-")
        return value

    @model_validator(mode="after")
    def _check_cross(self) -> Settings:
        problems: list[str] = []
        seen: set[str] = set()
        for i, user in enumerate(self.hub_users):
            if user.name in seen:
                problems.append(f"hub_users[{i}]: {user.name!r} is listed twice")
            seen.add(user.name)
            account = self.account_name(user.name)
            if len(account) > MAX_ACCOUNT_NAME:
                problems.append(
                    f"hub_users[{i}]: account name {account!r} is {len(account)} characters, "
                    f"more than {MAX_ACCOUNT_NAME}"
                )
        uids = [u.uid for u in self.hub_users if u.uid is not None]
        for uid in sorted({u for u in uids if uids.count(u) > 1}):
            problems.append(f"hub_users: uid {uid} is pinned for more than one user")
        for i, admin in enumerate(self.hub_admins):
            if admin not in seen:
                problems.append(f"hub_admins[{i}]: {admin!r} is not in hub_users")
        problems += self._login_problems(seen)
        names: set[str] = set()
        user_groups = sorted({g for user in self.hub_users for g in user.groups})
        for i, share in enumerate(self.shares):
            if share.name in names:
                problems.append(f"shares[{i}].name: {share.name!r} is used by another share")
            names.add(share.name)
        for where, item in self._mounts():
            for group in item.groups or ():
                # A group no user is in gives the share or volume to nobody: most likely a typo.
                if group not in user_groups:
                    problems.append(
                        f"{where}.groups: {group!r} is not a group of any hub user "
                        f"(their groups: {', '.join(user_groups) or 'none'})"
                    )
        for group in self.lab_placement:
            # A group no user is in places nobody: most likely a typo.
            if group not in user_groups:
                problems.append(
                    f"lab_placement.{group}: {group!r} is not a group of any hub user "
                    f"(their groups: {', '.join(user_groups) or 'none'})"
                )
        problems += self._path_problems()
        problems += self._address_problems()
        problems += self._tls_problems()
        problems += self._backup_problems()
        problems += self._unused_problems()
        problems += self._limits_problems(user_groups)
        refs = [image.ref for image in self.lab_images]
        for ref in sorted({r for r in refs if refs.count(r) > 1}):
            problems.append(f"lab_images: {ref!r} is listed twice")
        folders: dict[str, str] = {}
        for i, image in enumerate(self.lab_images):
            other = folders.setdefault(image.build_folder, image.ref)
            if other != image.ref:
                problems.append(
                    f"lab_images[{i}]: {image.ref!r} would be built in the folder of "
                    f"{other!r} ({image.build_folder}): rename one of them"
                )
        if self.lab_default_image is not None and self.lab_default_image not in refs:
            problems.append(
                f"lab_default_image: {self.lab_default_image!r} is not one of lab_images "
                f"({', '.join(refs)})"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _login_problems(self, users: set[str]) -> list[str]:
        """Invitations and resets asked for names that are not hub users, or twice; invitations
        asked for where first logins need none."""
        problems = []
        for setting in ("reissue_invites", "reset_passwords"):
            names = getattr(self, setting)
            for i, name in enumerate(names):
                if name not in users:
                    problems.append(f"{setting}[{i}]: {name!r} is not in hub_users")
                elif names.index(name) != i:
                    problems.append(f"{setting}[{i}]: {name!r} is listed twice")
        if self.first_login == "open" and self.reissue_invites:
            problems.append(
                'reissue_invites: set, but first_login is "open": a first login needs no '
                'invitation (first_login "invite" makes them)'
            )
        return problems

    def _limits_problems(self, user_groups: list[str]) -> list[str]:
        """lab_limits and lab_gpus naming groups no hub user is in, guarantees above limits (a
        group's own, or with the default's limits it takes), lab_shm_size with no GPU labs."""
        problems = []
        default = self.lab_limits.get(DEFAULT_LIMITS)
        for group, limits in self.lab_limits.items():
            where = f"lab_limits.{group}"
            if group != DEFAULT_LIMITS:
                try:
                    _group_name(group)
                except ValueError as e:
                    problems.append(
                        f"lab_limits: {e} (the default for users in no group is {DEFAULT_LIMITS!r})"
                    )
                    continue
                if group not in user_groups:
                    problems.append(
                        f"{where}: {group!r} is not a group of any hub user "
                        f"(their groups: {', '.join(user_groups) or 'none'})"
                    )
            own = limits.problems(where)
            problems += own or [
                f"{line} (with the default's, lab_limits.{DEFAULT_LIMITS})"
                for line in limits.completed(default).problems(where)
            ]
        for group in self.lab_gpus:
            if group not in user_groups:
                problems.append(
                    f"lab_gpus.{group}: {group!r} is not a group of any hub user "
                    f"(their groups: {', '.join(user_groups) or 'none'})"
                )
        if self.lab_shm_size is not None and not self.lab_gpus:
            problems.append(
                "lab_shm_size: set, but used only for GPU labs (lab_gpus is empty): remove it, "
                "or give a group GPUs"
            )
        return problems

    @property
    def group_limits(self) -> dict[str, dict]:
        """lab_limits as the hub reads them: each group's completed with the default's, in
        bytes and CPUs (None: no limit, no guarantee)."""
        default = self.lab_limits.get(DEFAULT_LIMITS)
        return {
            group: limits.completed(default).model_dump()
            for group, limits in self.lab_limits.items()
        }

    def _mounts(self) -> list[tuple[str, Share | LabVolume]]:
        """Shares and lab volumes, each with the setting that declares it."""
        return [(f"shares[{i}]", share) for i, share in enumerate(self.shares)] + [
            (f"lab_volumes[{i}]", volume) for i, volume in enumerate(self.lab_volumes)
        ]

    def _path_problems(self) -> list[str]:
        """Host folders that overlap (a share over hub_dir, one host path twice, a mount inside
        another or inside a hub user's home) and container paths that collide."""
        problems = []
        homes = {f"/home/{self.account_name(user.name)}" for user in self.hub_users}
        host_paths: dict[str, str] = {"hub_dir": self.hub_dir}
        container_paths: dict[str, str] = {"lab_home": self.lab_home}
        for where, item in self._mounts():
            is_share = isinstance(item, Share)
            host_setting = f"{where}.{'mountpoint' if is_share else 'host_path'}"
            host = item.host_path
            for other_setting, other in host_paths.items():
                inside = _inside(host, other) or _inside(other, host)
                # Nested mount points would race their automounts; hub_dir is labhub's own.
                nested_mount = is_share and other_setting.startswith("shares")
                if host == other or (inside and (nested_mount or other_setting == "hub_dir")):
                    problems.append(
                        f"{host_setting}: {host!r} overlaps {other_setting} ({other!r})"
                    )
            for home in sorted(homes):
                if host == home or _inside(host, home):
                    problems.append(f"{host_setting}: {host!r} is in the home of a hub user")
            host_paths[host_setting] = host
            container = (
                self.share_container_path(item)
                if is_share
                else self.container_path(item.container_path)
            )
            for other_setting, other in container_paths.items():
                if container == other:
                    problems.append(
                        f"{where}.container_path: {container!r} in labs is also {other_setting}'s"
                    )
            container_paths[f"{where}.container_path"] = container
        return problems

    def _tls_problems(self) -> list[str]:
        """What the chosen way of getting the hub's certificate still needs."""
        if self.tls == "off":
            if self.with_lab_nodes:
                # The proxy is what serves the registry to the nodes over TLS; without it the
                # nodes could only pull over plain HTTP, an insecure-registries entry.
                return [
                    'tls: "off" with lab nodes: the nodes pull lab images from the hub '
                    "server's registry over TLS with a login, which the HTTPS proxy serves "
                    'with the hub\'s certificate; choose "internal", "files" or "acme"'
                ]
            return []
        if self.hub_domain is None:
            return [
                f"hub_domain: needed with tls {self.tls!r}: the inventory's name of the "
                "server is not a DNS name or an IP address; set the name users open the "
                'hub at (or tls: "off" for plain HTTP)'
            ]
        problems = []
        if self.tls == "acme":
            if _is_ip(self.hub_domain) or "." not in self.hub_domain:
                problems.append(
                    f"hub_domain: {self.hub_domain!r} is not a full DNS name: ACME "
                    "CAs certify names like hub.lab.example.org; set hub_domain, or "
                    'use tls "internal" or "files"'
                )
            if self.acme_email is None:
                problems.append(
                    'acme_email: needed with tls "acme": the CA writes there '
                    "before the certificate expires"
                )
        if self.tls == "files":
            missing = [s for s in ("tls_cert", "tls_key") if getattr(self, s) is None]
            problems += [f'{s}: needed with tls "files" (a file on this machine)' for s in missing]
            if not missing:
                problems += tls.served_problems(
                    self.certificate,
                    tls.key_public_bytes(Path(self.tls_key).read_bytes()),
                    self.hub_domain,
                )
        return problems

    @cached_property
    def certificate(self) -> tls.Certificate:
        """The leaf of tls_cert (tls "files")."""
        return tls.leaf(Path(self.tls_cert).read_bytes())

    @property
    def published_ports(self) -> list[tuple[str, str, int]]:
        """(setting, bind address, port) of each port the stack publishes on the host."""
        web = (
            [("hub_port", self.hub_bind, self.hub_port)]
            if self.tls == "off"
            else [
                ("https_port", self.hub_bind, self.https_port),
                ("http_port", self.hub_bind, self.http_port),
            ]
        )
        nodes = (
            [("node_registry_port", self.hub_bind, self.node_registry_port)]
            if self.with_lab_nodes and self.tls != "off"
            else []
        )
        return [*web, *nodes, ("registry_port", self.registry_bind, self.registry_port)]

    def _unused_problems(self) -> list[str]:
        """Settings given a value of their own that the other settings leave unused: refused,
        so that nothing an admin set is silently ignored."""
        defaults = load_defaults()
        needs = {
            'tls "files"': (self.tls == "files", ("tls_cert", "tls_key")),
            'tls "acme"': (
                self.tls == "acme",
                (
                    "acme_email",
                    "acme_directory",
                    "acme_ca_root",
                    "acme_wait",
                ),
            ),
            'tls "off"': (self.tls == "off", ("hub_port",)),
            'tls other than "off"': (self.tls != "off", ("https_port", "http_port")),
            'first_login "invite"': (self.first_login == "invite", ("invite_days",)),
            "lab nodes": (self.with_lab_nodes, ("node_registry_port",)),
            "backup_repository": (
                self.backup_repository is not None,
                (
                    "backup_password_file",
                    "backup_ssh_key",
                    "backup_schedule",
                    "backup_keep",
                    "backup_homes",
                    "backup_registry",
                    "restore_snapshot",
                ),
            ),
        }
        problems = []
        for condition, (used, names) in needs.items():
            for name in names:
                if not used and _values_differ(getattr(self, name), defaults[name]):
                    now = {
                        "backup_repository": "backup_repository is not set",
                        "lab nodes": f"the inventory has no group {cluster.LAB_NODES}",
                        'first_login "invite"': f"first_login is {self.first_login!r}",
                    }.get(condition, f"tls is {self.tls!r}")
                    problems.append(
                        f"{name}: set, but used only with {condition} ({now}): "
                        "remove it, or set what it needs"
                    )
        return problems

    def _backup_problems(self) -> list[str]:
        problems = []
        repository = self.backup_repository or ""
        if repository.startswith("/"):
            if (
                repository == self.hub_dir
                or _inside(repository, self.hub_dir)
                or _inside(self.hub_dir, repository)
            ):
                problems.append(
                    f"backup_repository: {repository!r} overlaps hub_dir "
                    f"({self.hub_dir!r}): the backup would back up itself and be "
                    "lost with the hub; put it outside, best on another disk"
                )
            if _inside(repository, "/home"):
                problems.append(
                    f"backup_repository: {repository!r} is inside /home, where "
                    "users' homes are (and are backed up): put it outside /home"
                )
        if self.backup_repository is not None and self.backup_password_file is None:
            problems.append(
                "backup_password_file: not set: backups need the repository's "
                "password, in a file on this machine"
            )
        if self.backup_ssh_key is not None and not (self.backup_repository or "").startswith(
            "sftp:"
        ):
            problems.append(
                "backup_ssh_key: only an sftp: backup_repository is reached with an SSH key"
            )
        if self.backup_repository is not None and not self.backup_keep:
            problems.append(
                "backup_keep: empty: give at least one of last, hourly, daily, "
                "weekly, monthly, yearly (restic would keep nothing)"
            )
        return problems

    def _address_problems(self) -> list[str]:
        """Ports published twice on one address, and a registry published off loopback."""
        problems = []
        published = self.published_ports
        for i, (setting, bind, port) in enumerate(published):
            for other_setting, other_bind, other_port in published[:i]:
                if port == other_port and _same_address(bind, other_bind):
                    problems.append(
                        f"{setting}: port {port} on {bind} is {other_setting}'s "
                        f"already (on {other_bind})"
                    )
        if not ipaddress.ip_address(self.registry_bind).is_loopback:
            problems.append(
                f"registry_bind: {self.registry_bind!r} is off loopback: the registry has no TLS "
                "and no login, and Docker engines only pull over plain HTTP from loopback; keep "
                "it on 127.0.0.1 (labs on this server pull through it)"
            )
        return problems

    def account_name(self, hub_user: str) -> str:
        """The host account of a hub user: ``jupyter-alice`` for ``alice``."""
        return f"{self.user_prefix}{hub_user}"

    def container_path(self, path: str) -> str:
        """A path inside lab containers: relative paths are in the notebook user's home."""
        return str(PurePosixPath(self.lab_home, path))

    def share_container_path(self, share: Share) -> str:
        """Where a share appears inside lab containers (default: its name, in the home)."""
        return self.container_path(share.container_path or share.name)

    def share_users(self, share: Share) -> tuple[str, ...]:
        """The hub users whose labs get a share: all, or those in one of its groups."""
        return tuple(user.name for user in self.hub_users if _selects(share.groups, user))

    def lab_mounts(self, user: HubUser) -> dict[str, dict[str, str]]:
        """The shares and lab volumes a hub user's lab mounts, as DockerSpawner's ``volumes``
        take them: ``{host path: {"bind": container path, "mode": "ro" or "rw"}}``."""
        mounts = {}
        for share in self.shares:
            if _selects(share.groups, user):
                mounts[share.mountpoint] = {
                    "bind": self.share_container_path(share),
                    "mode": share.mode,
                }
        for volume in self.lab_volumes:
            if _selects(volume.groups, user):
                mounts[volume.host_path] = {
                    "bind": self.container_path(volume.container_path),
                    "mode": volume.mode,
                }
        return mounts

    def lab_placement_of(self, user: HubUser) -> tuple[str, tuple[str, ...]] | None:
        """Where a hub user's labs run on a swarm: (the group that places them, its
        constraints), from the first group of ``lab_placement`` the user is in; None: anywhere."""
        for group, constraints in self.lab_placement.items():
            if group in user.groups:
                return group, constraints
        return None

    @cached_property
    def host_groups(self) -> tuple[str, ...]:
        """Host groups named by users, shares or lab volumes, in first-seen order."""
        groups: dict[str, None] = {}
        for user in self.hub_users:
            groups.update(dict.fromkeys(user.groups))
        for item in (*self.shares, *self.lab_volumes):
            groups.update(dict.fromkeys(item.groups or ()))
        return tuple(groups)

    def group_setting(self, group: str) -> str:
        """The setting that first names a host group, as an error names it
        (``hub_users[0].groups``)."""
        named = [(f"hub_users[{i}].groups", user.groups) for i, user in enumerate(self.hub_users)]
        named += [(f"{where}.groups", item.groups or ()) for where, item in self._mounts()]
        return next(where for where, groups in named if group in groups)

    @property
    def default_image(self) -> LabImage:
        for image in self.lab_images:
            if image.ref == self.lab_default_image:
                return image
        return self.lab_images[0]

    @property
    def registry_address(self) -> str:
        """The registry as the host's engine addresses it for push and pull."""
        return f"{url_host(local_host(self.registry_bind))}:{self.registry_port}"

    @property
    def hub_url(self) -> str:
        """The hub as users open it."""
        if self.tls == "off":
            host = url_host(self.hub_domain or local_host(self.hub_bind))
            return f"http://{host}:{self.hub_port}"
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{url_host(self.hub_domain)}{port}"


def _selects(groups: tuple[str, ...] | None, user: HubUser) -> bool:
    """Whether a share or lab volume with these groups goes to a user's lab (None: to all)."""
    return groups is None or bool(set(groups) & set(user.groups))


def _inside(path: str, folder: str) -> bool:
    return PurePosixPath(path).is_relative_to(folder) and path != folder


def _values_differ(value: Any, default: Any) -> bool:
    return _lists_to_tuples(default) != value and default != value


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _same_address(a: str, b: str) -> bool:
    """Whether ports published on two bind addresses collide (a wildcard takes every address of
    its family)."""
    a_ip, b_ip = ipaddress.ip_address(a), ipaddress.ip_address(b)
    return a_ip == b_ip or (a_ip.is_unspecified or b_ip.is_unspecified)


def url_host(host: str) -> str:
    """A host as URLs and image references write it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def local_host(bind: str) -> str:
    """The address the server itself uses for a port published on ``bind``: loopback for the
    wildcard addresses, the address itself otherwise."""
    return "127.0.0.1" if bind in ("0.0.0.0", "127.0.0.1", "::", "") else bind


# pydantic's words for the types of host data, in an inventory's words.
_TYPE_WORDS = {
    "tuple_type": "should be a list",
    "dict_type": "should be a mapping",
    "model_type": "should be a mapping",
    "list_type": "should be a list",
    "string_type": "should be a string",
    "int_type": "should be a whole number",
    "bool_type": "should be true or false",
}


def _format_error(error: ValidationError) -> list[str]:
    lines = []
    errors = error.errors()
    for item in errors:
        if item["type"] == "too_short" and any(
            other["loc"][: len(item["loc"])] == item["loc"] and other is not item
            for other in errors
        ):
            # pydantic counts the items left after the bad ones are dropped: the bad item's own
            # error is the one to fix.
            continue
        loc = ""
        for part in item["loc"]:
            # pydantic's own steps, and the key of a mapping's entry (its value's error is the
            # same entry's): never a setting's name.
            if isinstance(part, str) and part.startswith(("function-", "tagged-union", "[")):
                continue
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        value = item["input"]
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        elif (
            item["type"] == "string_type"
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        ):
            # YAML and Python read 1.10 as the number 1.1: converting it back would change it.
            message = f"{value!r} is a number: write it as a string, in quotes"
            if len(item["loc"]) == 1:
                # pyinfra's --data reads digits as a number unless they are a JSON string.
                message += f" (on the command line: --data '{loc}=\"...\"')"
        elif item["type"] in _TYPE_WORDS:
            message = _TYPE_WORDS[item["type"]]
        elif item["type"] == "too_short":
            message = f"should have at least {item['ctx']['min_length']} item"
        if "\n" in message or not loc:
            lines.extend(message.splitlines())
        else:
            lines.append(
                f"{loc}: {message} (got {value!r})"
                if item["type"] not in ("value_error", "extra_forbidden", "missing")
                and not message.startswith(repr(value))
                and not isinstance(value, (dict, list, tuple))
                else f"{loc}: {message}"
            )
    return lines


def connector_keys() -> frozenset[str]:
    """Host data keys that pyinfra's connectors read (``ssh_user``, ``fake_responses``...)."""
    from pyinfra.api.connectors import get_all_connectors

    return frozenset(
        key for connector in get_all_connectors().values() for key in connector.data_meta
    )


def validate(
    data: dict[str, Any],
    host_name: str = "host",
    hub_name: str | None = None,
    node: bool = False,
    lab_nodes: bool = False,
) -> Settings:
    """
    Validate raw host data (defaults filled in) into ``Settings``, or raise ``SettingsError``.
    ``hub_name`` is the inventory name of the lab's hub server (default: ``host_name``): what
    the settings that default to the server's name take on a lab node; ``node`` says the host
    is a lab node, and ``lab_nodes`` that its lab has lab nodes.
    """
    from pyinfra.api.arguments import all_argument_meta

    defaults = load_defaults()
    foreign = connector_keys() | frozenset(all_argument_meta)
    problems: list[str] = []
    ours: dict[str, Any] = {}
    for key, value in data.items():
        if key in foreign:
            continue
        if key not in defaults:
            hint = _did_you_mean(key, defaults, foreign)
            what = (
                "unknown pyinfra argument"
                if key.startswith(GLOBAL_ARGUMENT_PREFIX)
                else "unknown setting"
            )
            problems.append(f"{key}: {what}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            continue
        ours[key] = value
    values = {**defaults, **ours, "with_lab_nodes": lab_nodes}
    if values.get("hub_domain") is None and values.get("tls") != "off":
        # The name the inventory gives the server is, most often, the one users open.
        try:
            values["hub_domain"] = _host_name(hub_name or host_name)
        except ValueError:
            pass
    if not node and ours.get("node_labels"):
        problems.append(
            f"node_labels: set on {host_name}, the hub server, which is not a lab node: node "
            f"labels say where labs may run, on the lab nodes (the inventory group "
            f"{cluster.LAB_NODES}); set them in a node's host data"
        )
    if not lab_nodes and ours.get("swarm_advertise_address") is not None:
        problems.append(
            "swarm_advertise_address: set, but used only with lab nodes (the inventory has no "
            f"group {cluster.LAB_NODES}): remove it, or add the lab's nodes"
        )
    # (Every host has the default, true: group_data/all.py is pyinfra's group data too.)
    if not lab_nodes and ours.get("swarm_encrypted") is False:
        problems.append(
            "swarm_encrypted: false, but used only with lab nodes (the inventory has no group "
            f"{cluster.LAB_NODES}): remove it, or add the lab's nodes"
        )
    if not lab_nodes and ours.get("lab_placement"):
        problems.append(
            "lab_placement: set, but used only with lab nodes (the inventory has no group "
            f"{cluster.LAB_NODES}): every lab runs on the one server; remove it, or add the "
            "lab's nodes"
        )
    if isinstance(values.get("registry_prune"), dict):
        values["registry_prune"] = {**defaults["registry_prune"], **values["registry_prune"]}
    try:
        settings = Settings.model_validate(_lists_to_tuples(values))
    except ValidationError as e:
        problems.extend(_format_error(e))
        problems.extend(_cross_problems(e, values, defaults))
        settings = None
    if problems:
        raise SettingsError(f"invalid labhub settings for {host_name}:\n  " + "\n  ".join(problems))
    assert settings is not None
    return settings


def _did_you_mean(key: str, defaults: dict[str, Any], foreign: frozenset[str]) -> list[str]:
    """The setting a misspelt key most likely meant: a labhub setting for a labhub-looking key,
    pyinfra's own names (``_sudo``, ``ssh_user``) only for keys that look like theirs."""
    if key.startswith(GLOBAL_ARGUMENT_PREFIX):
        return difflib.get_close_matches(key, sorted(foreign), n=1)
    first = key.split("_", 1)[0]
    # Among labhub's, one of the same family (tls_key for tls_key_password) before another that
    # shares more letters (reset_passwords).
    family = [name for name in defaults if name.split("_", 1)[0] == first]
    ours = difflib.get_close_matches(key, family, n=1) or difflib.get_close_matches(
        key, list(defaults), n=1
    )
    theirs = difflib.get_close_matches(
        key, sorted(k for k in foreign if not k.startswith(GLOBAL_ARGUMENT_PREFIX)), n=1
    )
    # A key that starts like labhub's settings (tls_, backup_, hub_...) meant one of them; one
    # that starts like a connector's (ssh_, docker_ssh_...) meant the connector's.
    if first in {name.split("_", 1)[0] for name in defaults}:
        return ours
    if first in {name.split("_", 1)[0] for name in foreign}:
        return theirs
    return ours or theirs


def _cross_problems(
    error: ValidationError, values: dict[str, Any], defaults: dict[str, Any]
) -> list[str]:
    """The cross-setting problems a field error hides (pydantic checks the whole only when every
    field is right): the model checked again with each bad setting at its default, so that one
    run reports everything; problems of the bad settings themselves are left out (they are
    reported as they are)."""
    bad = {item["loc"][0] for item in error.errors() if item["loc"]}
    if not bad:
        return []
    again = {**values, **{key: defaults[key] for key in bad if key in defaults}}
    try:
        Settings.model_validate(_lists_to_tuples(again))
    except ValidationError as e:
        return [
            line
            for line in _format_error(e)
            if not any(re.search(rf"\b{key}\b", line) for key in bad)
        ]
    return []


def _lists_to_tuples(value: Any) -> Any:
    # Inventories and --data JSON give lists; the frozen model holds tuples.
    if isinstance(value, list):
        return tuple(_lists_to_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _lists_to_tuples(v) for k, v in value.items()}
    return value


def validate_before_connecting(state) -> None:
    """
    Have a pyinfra CLI run validate every host's settings as soon as it has loaded the
    inventory, before it connects to any host: a typo is reported even when the server is down.
    Called from config.py, which pyinfra runs before it loads the inventory.
    """

    def validate_all(inventory) -> None:
        problems = []
        for host in inventory:
            if state.is_host_in_limit(host):
                try:
                    get_settings(host)
                except SettingsError as e:
                    if str(e) not in problems:
                        problems.append(str(e))
        if problems:
            raise SettingsError("\n".join(problems))

    after_inventory_loaded(state, validate_all)


# The settings each server of a lab has of its own; every other setting is the lab's, the same on
# the hub server and on every lab node (the users, their shares, the labs' volumes and homes).
PER_SERVER_SETTINGS = frozenset(
    ("docker_source", "docker_apt_url", "docker_users", "node_labels", "swarm_advertise_address")
)


def lab_wide_problems(hub: Settings, hub_name: str, node: Settings, node_name: str) -> list[str]:
    """The lab-wide settings a lab node has other values of than its hub server."""
    problems = []
    for field in Settings.model_fields:
        if field in PER_SERVER_SETTINGS or getattr(hub, field) == getattr(node, field):
            continue
        values = ""
        hub_value, node_value = getattr(hub, field), getattr(node, field)
        if len(repr(hub_value)) + len(repr(node_value)) < 120:
            values = f" ({node_value!r} there, {hub_value!r} on the hub server)"
        problems.append(
            f"{field}: lab node {node_name} has another value than the hub server "
            f"{hub_name}{values}: it is a setting of the whole lab, the same on every server; "
            "set it once for all of them (group_data/all.py) or alike on each"
        )
    return problems


def get_settings(host) -> Settings:
    """
    The validated settings of a pyinfra host, validated once per run. On a lab node they are
    checked against the hub server's too: the lab-wide settings must agree.
    """
    kept = memo(host)
    if "settings" not in kept:
        try:
            hub = cluster.hub_server(host)
        except cluster.ClusterError as e:
            raise SettingsError(f"invalid labhub inventory: {e}") from None
        node = cluster.is_node(host)
        settings = validate(
            host.data.dict(),
            host.name,
            hub_name=hub.name,
            node=node,
            lab_nodes=bool(cluster.lab_nodes(host)),
        )
        if node:
            try:
                hub_settings = get_settings(hub)
            except SettingsError:
                # The hub server's own problems are reported as its own.
                hub_settings = None
            problems = (
                lab_wide_problems(hub_settings, hub.name, settings, host.name)
                if hub_settings is not None
                else []
            )
            if problems:
                raise SettingsError(
                    f"invalid labhub settings for {host.name}:\n  " + "\n  ".join(problems)
                )
        kept["settings"] = settings
    return kept["settings"]
