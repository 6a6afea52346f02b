"""
Bad settings, tried as a new admin would write them, across every setting and every class of
mistake: each run of ``pyinfra inventory.py deploy.py`` stops before any operation, with a message
that names the setting and the problem. Refusals that need the server (an account labhub did not
make, an fstab line that is not labhub's) are in test_refusals_e2e.py.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

import labhost
from labhub.settings import validate

CREDENTIALS = {
    "good": b"username=lab\npassword=s3cret-pw\n",
    # mount.cifs reads keys by their first letters, in any case: the lab's original file.
    "short-keys": b"user=lab\npass=s3cret-pw\ndom=LAB\n",
    "upper-keys": b"Username=lab\nPASSWORD=s3cret-pw\n",
    "indented": b"  username=lab\n\tpassword=s3cret-pw\n",
    "crlf": b"username=lab\r\npassword=s3cret-pw\r\n",
    "bom": b"\xef\xbb\xbfusername=lab\npassword=s3cret-pw\n",
    "no-password": b"username=lab\n",
    "empty-password": b"username=lab\npassword=\n",
    "typo": b"username=lab\npasword=s3cret-pw\n",
    "latin1": b"username=lab\npassword=s\xe9cret\n",
    # A backup repository's password file.
    "empty": b"\n",
    # Secret files others on the admin's machine can read (written with mode 0644).
    "good-readable": b"username=lab\npassword=s3cret-pw\n",
}


def share(credentials: str = "good", **fields) -> dict:
    return {
        "name": "leem",
        "source": "//files.lab/leem",
        "mountpoint": "/mnt/leem",
        "mode": "ro",
        "credentials": credentials,
        **fields,
    }


def volume(**fields) -> dict:
    return {"host_path": "/srv/data", "container_path": "data", **fields}


# Settings naming a file on the admin's machine: given by name in CASES, as files made here.
FILE_SETTINGS = (
    "credentials",
    "tls_cert",
    "tls_key",
    "acme_ca_root",
    "backup_password_file",
    "backup_ssh_key",
    "build_ca_bundle",
)
DOMAIN = "hub.lab.example.org"
FILES = {"tls": "files", "tls_cert": "cert-good", "tls_key": "key-good"}

BACKUP = {"backup_repository": "/srv/backups/labhub", "backup_password_file": "good"}
USERS = {"hub_users": [{"name": "alice", "groups": ["leem"]}, "bob"]}

# (settings, what the message must say). Every message starts with the setting's name.
CASES = [
    # --- Values keep their meaning ---------------------------------------------------------------
    (
        {"lab_images": [{"name": "lab", "version": 1.10}]},
        "lab_images[0].version: 1.1 is a number: write it as a string, in quotes",
    ),
    (
        {"lab_images": [{"name": "lab", "version": 2}]},
        "lab_images[0].version: 2 is a number: write it as a string",
    ),
    ({"lab_default_image": 1.0}, "lab_default_image: 1.0 is a number: write it as a string"),
    ({"hub_users": [2001]}, "hub_users[0].name: 2001 is a number: write it as a string"),
    ({"hub_admins": [7]}, "hub_admins[0]: 7 is a number: write it as a string"),
    ({"user_prefix": 0}, "user_prefix: 0 is a number"),
    ({"hub_bind": 0}, "hub_bind: 0 is a number"),
    ({"registry_image": 2}, "registry_image: 2 is a number"),
    ({"hub_port": "8000"}, "hub_port: should be a whole number (got '8000')"),
    ({"hub_port": 8000.0}, "hub_port: should be a whole number"),
    ({"registry_port": True}, "registry_port: should be a whole number (got True)"),
    ({"idle_timeout": "1d"}, "idle_timeout: should be a whole number (got '1d')"),
    ({"max_age": -5}, "max_age: Input should be greater than or equal to 0"),
    ({"min_password_length": 0}, "min_password_length: Input should be greater than or equal to 1"),
    ({"registry_prune_apply": "yes"}, "registry_prune_apply: should be true or false (got 'yes')"),
    ({"registry_prune": {"keep_last": "3"}}, "registry_prune.keep_last: should be a whole number"),
    (
        {"registry_prune": {"older_than_days": -1}},
        "registry_prune.older_than_days: Input should be",
    ),
    (
        {"hub_users": [{"name": "alice", "uid": "2001"}]},
        "hub_users[0].uid: should be a whole number",
    ),
    (
        {"hub_users": [{"name": "alice", "uid": 999}]},
        "hub_users[0].uid: Input should be greater than or equal to 1000",
    ),
    # --- Errors in the admin's words ---------------------------------------------------------------
    ({"docker_users": "admin"}, "docker_users: should be a list (got 'admin')"),
    ({"hub_users": "alice"}, "hub_users: should be a list (got 'alice')"),
    ({"shares": {"name": "leem"}}, "shares: should be a list"),
    ({"lab_images": "lab:1.0"}, "lab_images: should be a list"),
    ({"registry_prune": ["keep_last"]}, "registry_prune: should be a mapping"),
    ({"hub_user": ["alice"]}, "hub_user: unknown setting (did you mean 'hub_users'?)"),
    ({"ssh_usr": "admin"}, "ssh_usr: unknown setting (did you mean 'ssh_user'?)"),
    ({"_sudoo": True}, "_sudoo: unknown pyinfra argument (did you mean '_sudo'?)"),
    ({"registry_prune": {"keep_tag": ["x"]}}, "registry_prune.keep_tag: unknown setting"),
    ({"lab_images": []}, "lab_images: should have at least 1 item"),
    # --- Names -------------------------------------------------------------------------------------
    ({"docker_source": "snap"}, "docker_source: Input should be 'docker' or 'distro'"),
    (
        {"docker_users": ["Admin User"]},
        "docker_users[0]: 'Admin User' is not a valid Linux user name",
    ),
    ({"docker_users": ["admin\n"]}, "docker_users[0]: 'admin\\n' is not a valid Linux user name"),
    ({"hub_users": ["Alice"]}, "hub_users[0].name: 'Alice' is not a valid hub user name"),
    ({"hub_users": ["alice\n"]}, "hub_users[0].name: 'alice\\n' is not a valid hub user name"),
    ({"hub_users": ["_alice"]}, "hub_users[0].name: '_alice' is not a valid hub user name"),
    ({"hub_users": ["a" * 30]}, "hub_users[0]: account name 'jupyter-aaaa"),
    ({"hub_users": ["alice", "alice"]}, "hub_users[1]: 'alice' is listed twice"),
    (
        {"hub_users": [{"name": "a", "uid": 2001}, {"name": "b", "uid": 2001}]},
        "hub_users: uid 2001 is pinned for more than one user",
    ),
    (
        {"hub_users": [{"name": "alice", "groups": ["Lab Group"]}]},
        "hub_users[0].groups[0]: 'Lab Group' is not a valid Linux group name",
    ),
    ({"hub_users": [{"name": "alice", "group": ["leem"]}]}, "hub_users[0].group: unknown setting"),
    ({"hub_admins": ["carol"], **USERS}, "hub_admins[0]: 'carol' is not in hub_users"),
    ({"user_prefix": "Jupyter-"}, "user_prefix: 'Jupyter-' must start with a lower case letter"),
    (
        {"user_prefix": "jupyter-\n"},
        "user_prefix: 'jupyter-\\n' must start with a lower case letter",
    ),
    # --- Image references --------------------------------------------------------------------------
    (
        {"registry_image": "registry:2\nservices: {}"},
        "registry_image: 'registry:2\\nservices: {}' is not an image reference",
    ),
    ({"registry_image": "Registry:2"}, "registry_image: 'Registry:2' is not an image reference"),
    (
        {"registry_image": "registry:2 --privileged"},
        "registry_image: 'registry:2 --privileged' is not an image reference",
    ),
    (
        {"hub_base_image": "quay.io/jupyterhub/jupyterhub:"},
        "hub_base_image: 'quay.io/jupyterhub/jupyterhub:' is not an image reference",
    ),
    (
        {"hub_base_image": "jupyterhub@sha256:abc"},
        "hub_base_image: 'jupyterhub@sha256:abc' is not an image reference",
    ),
    (
        {"lab_base_image": "quay.io//jupyter"},
        "lab_base_image: 'quay.io//jupyter' is not an image reference",
    ),
    ({"lab_base_image": ""}, "lab_base_image: '' is not an image reference"),
    (
        {"lab_images": [{"name": "lab", "version": "1.0", "base_image": "x y"}]},
        "lab_images[0].base_image: 'x y' is not an image reference",
    ),
    (
        {"lab_images": [{"name": "Lab", "version": "1"}]},
        "lab_images[0].name: 'Lab' is not a valid image repository name",
    ),
    (
        {"lab_images": [{"name": "lab/", "version": "1"}]},
        "lab_images[0].name: 'lab/' is not a valid image repository name",
    ),
    (
        {"lab_images": [{"name": "lab", "version": ".1"}]},
        "lab_images[0].version: '.1' is not a valid image tag",
    ),
    (
        {"lab_images": [{"name": "lab", "version": "1.0\n"}]},
        "lab_images[0].version: '1.0\\n' is not a valid image tag",
    ),
    ({"lab_images": [{"name": "lab", "version": "a" * 129}]}, "lab_images[0].version: 'aaaa"),
    ({"lab_images": [{"name": "lab"}]}, "lab_images[0].version: Field required"),
    (
        {"lab_images": [{"name": "lab", "version": "1"}, {"name": "lab", "version": "1"}]},
        "lab_images: 'lab:1' is listed twice",
    ),
    (
        {"lab_default_image": "lab:9"},
        "lab_default_image: 'lab:9' is not one of lab_images (lab:1.0)",
    ),
    (
        {"lab_images": [{"name": "lab", "version": "1", "context": "files/nolab"}]},
        "lab_images[0].context: 'files/nolab' is not a build folder with a Dockerfile",
    ),
    # --- URLs and files on the admin's machine ----------------------------------------------------
    (
        {"docker_apt_url": "download.docker.com"},
        "docker_apt_url: 'download.docker.com' is not an http(s) URL",
    ),
    (
        {"docker_apt_url": "https://x.org/linux\n"},
        "docker_apt_url: 'https://x.org/linux\\n' is not an http(s) URL",
    ),
    (
        {"pip_index_url": "ftp://pypi.lab/simple"},
        "pip_index_url: 'ftp://pypi.lab/simple' is not an http(s) URL",
    ),
    (
        {"build_ca_bundle": "/nonexistent/ca.pem"},
        "build_ca_bundle: '/nonexistent/ca.pem' cannot be read on this machine",
    ),
    (
        {"registry_prune": {"keep_tags": ["v[0-9"]}},
        "registry_prune.keep_tags[0]: 'v[0-9' is not a valid regular expression",
    ),
    # --- Addresses and ports -----------------------------------------------------------------------
    ({"hub_bind": "lab.example.org"}, "hub_bind: 'lab.example.org' is not an IP address"),
    ({"hub_bind": "localhost"}, "hub_bind: 'localhost' is not an IP address"),
    ({"hub_bind": "0.0.0.0:8000"}, "hub_bind: '0.0.0.0:8000' is not an IP address"),
    ({"registry_bind": "127.0.0.1 "}, "registry_bind: '127.0.0.1 ' is not an IP address"),
    ({"hub_port": 70000}, "hub_port: Input should be less than or equal to 65535"),
    ({"hub_port": 0}, "hub_port: Input should be greater than or equal to 1"),
    (
        {"tls": "off", "hub_port": 5000, "hub_bind": "127.0.0.1"},
        "registry_port: port 5000 on 127.0.0.1 is hub_port's already",
    ),
    (
        {"tls": "off", "hub_port": 5000, "hub_bind": "0.0.0.0"},
        "registry_port: port 5000 on 127.0.0.1 is hub_port's already (on 0.0.0.0)",
    ),
    (
        {"https_port": 5000, "hub_bind": "127.0.0.1"},
        "registry_port: port 5000 on 127.0.0.1 is https_port's already",
    ),
    ({"http_port": 443}, "http_port: port 443 on 0.0.0.0 is https_port's already"),
    ({"https_port": 0}, "https_port: Input should be greater than or equal to 1"),
    ({"http_port": "80"}, "http_port: should be a whole number (got '80')"),
    ({"registry_bind": "0.0.0.0"}, "registry_bind: '0.0.0.0' is off loopback"),
    ({"registry_bind": "10.0.0.5"}, "registry_bind: '10.0.0.5' is off loopback"),
    # --- System paths and overlaps -----------------------------------------------------------------
    ({"hub_dir": "/tmp"}, "hub_dir: '/tmp' is a system folder: use a folder inside it"),
    ({"hub_dir": "/etc/labhub"}, "hub_dir: '/etc/labhub' is inside the system folder /etc"),
    ({"hub_dir": "/"}, "hub_dir: '/' is a system folder"),
    ({"hub_dir": "/opt"}, "hub_dir: '/opt' is a system folder"),
    (
        {"hub_dir": "/var/lib/docker/labhub"},
        "hub_dir: '/var/lib/docker/labhub' is inside the system folder /var/lib",
    ),
    ({"hub_dir": "opt/labhub"}, "hub_dir: 'opt/labhub' must be an absolute path without '..'"),
    ({"hub_dir": "/opt/lab hub"}, "hub_dir: '/opt/lab hub' may not contain spaces"),
    ({"lab_home": "/"}, "lab_home: '/' is a system folder"),
    ({"lab_home": "/usr/local"}, "lab_home: '/usr/local' is inside the system folder /usr"),
    (
        {"shares": [share(mountpoint="/etc")]},
        "shares[0].mountpoint: '/etc' is the system folder /etc",
    ),
    ({"shares": [share(mountpoint="/home")]}, "shares[0].mountpoint: '/home' is a system folder"),
    (
        {"shares": [share(mountpoint="/boot/efi")]},
        "shares[0].mountpoint: '/boot/efi' is inside the system folder /boot",
    ),
    (
        {"shares": [share(mountpoint="/opt/labhub")]},
        "shares[0].mountpoint: '/opt/labhub' overlaps hub_dir ('/opt/labhub')",
    ),
    (
        {"shares": [share(mountpoint="/opt/labhub/hub")]},
        "shares[0].mountpoint: '/opt/labhub/hub' overlaps hub_dir",
    ),
    (
        {"shares": [share(mountpoint="/home/jupyter-alice/leem")], **USERS},
        "shares[0].mountpoint: '/home/jupyter-alice/leem' is in the home of a hub user",
    ),
    (
        {"shares": [share(), share(name="sub", mountpoint="/mnt/leem/sub")]},
        "shares[1].mountpoint: '/mnt/leem/sub' overlaps shares[0].mountpoint",
    ),
    (
        {"shares": [share(container_path="/etc/leem")]},
        "shares[0].container_path: '/etc/leem' is inside the system folder /etc",
    ),
    (
        {"shares": [share(container_path="/opt/conda")]},
        "shares[0].container_path: '/opt/conda' is the system folder /opt/conda",
    ),
    (
        {"shares": [share(container_path="../leem")]},
        "shares[0].container_path: '../leem' must be a path without '..'",
    ),
    (
        {"shares": [share(container_path="/home/jovyan")]},
        "shares[0].container_path: '/home/jovyan' in labs is also lab_home's",
    ),
    (
        {"lab_volumes": [volume(host_path="/var/lib/docker")]},
        "lab_volumes[0].host_path: '/var/lib/docker' is inside the system folder /var/lib",
    ),
    (
        {"lab_volumes": [volume(host_path="/opt/labhub/hub")]},
        "lab_volumes[0].host_path: '/opt/labhub/hub' overlaps hub_dir",
    ),
    (
        {"lab_volumes": [volume(host_path="/mnt/leem")], "shares": [share()]},
        "lab_volumes[0].host_path: '/mnt/leem' overlaps shares[0].mountpoint",
    ),
    (
        {"lab_volumes": [volume(), volume()]},
        "lab_volumes[1].host_path: '/srv/data' overlaps lab_volumes[0].host_path",
    ),
    (
        {"lab_volumes": [volume(), volume(host_path="/srv/other")]},
        "lab_volumes[1].container_path: '/home/jovyan/data' in labs is also lab_volumes[0].container_path's",
    ),
    (
        {"lab_volumes": [volume(container_path="leem")], "shares": [share()]},
        "lab_volumes[0].container_path: '/home/jovyan/leem' in labs is also shares[0].container_path's",
    ),
    (
        {"lab_volumes": [volume(container_path="/proc/x")]},
        "lab_volumes[0].container_path: '/proc/x' is inside the system folder /proc",
    ),
    ({"lab_volumes": [volume(mode="rx")]}, "lab_volumes[0].mode: Input should be 'ro' or 'rw'"),
    # --- One rule for siblings -------------------------------------------------------------------
    (
        {"shares": [share(groups=["lem"])], **USERS},
        "shares[0].groups: 'lem' is not a group of any hub user (their groups: leem)",
    ),
    (
        {"lab_volumes": [volume(groups=["lem"])], **USERS},
        "lab_volumes[0].groups: 'lem' is not a group of any hub user (their groups: leem)",
    ),
    ({"shares": [share(groups=[])]}, "shares[0].groups: an empty list gives it to nobody"),
    (
        {"lab_volumes": [volume(groups=[])]},
        "lab_volumes[0].groups: an empty list gives it to nobody",
    ),
    # --- Shares: sources, options, credentials files as mount.cifs reads them -----------------
    (
        {"shares": [share(source="\\\\files.lab\\leem")]},
        "shares[0].source: '\\\\\\\\files.lab\\\\leem' is not a CIFS source",
    ),
    (
        {"shares": [share(source="//files.lab/lab share")]},
        "shares[0].source: '//files.lab/lab share' is not a CIFS source",
    ),
    (
        {"shares": [share(source="//files.lab/leem,guest")]},
        "shares[0].source: '//files.lab/leem,guest' is not a CIFS source",
    ),
    ({"shares": [share(name="Leem")]}, "shares[0].name: 'Leem' is not a valid share name"),
    ({"shares": [share(mode="rx")]}, "shares[0].mode: Input should be 'ro' or 'rw'"),
    (
        {"shares": [share(options=["password=x"])]},
        "shares[0].options: mount option 'password' is not allowed",
    ),
    (
        {"shares": [share(options=["rw"])]},
        "shares[0].options: mount option 'rw' is not allowed (mount.cifs reads it as rw): set the share's mode",
    ),
    (
        {"shares": [share(options=["noauto"])]},
        "shares[0].options: mount option 'noauto' is not allowed",
    ),
    (
        {"shares": [share(options=["vers=3.0 sec=ntlm"])]},
        "shares[0].options: mount option 'vers=3.0 sec=ntlm' may not contain spaces",
    ),
    ({"shares": [share("crlf")]}, "shares[0].credentials: '{crlf}' has Windows line ends (CR LF)"),
    ({"shares": [share("bom")]}, "shares[0].credentials: '{bom}' starts with a byte-order mark"),
    (
        {"shares": [share("no-password")]},
        "shares[0].credentials: '{no-password}' has no password= line",
    ),
    (
        {"shares": [share("empty-password")]},
        "shares[0].credentials: '{empty-password}' has no password= line",
    ),
    ({"shares": [share("typo")]}, "shares[0].credentials: '{typo}' has no password= line"),
    ({"shares": [share("latin1")]}, "shares[0].credentials: '{latin1}' is not UTF-8 text"),
    (
        {"shares": [share("relative.cred")]},
        "shares[0].credentials: 'relative.cred' must be an absolute path",
    ),
    # --- HTTPS: a certificate the proxy can serve, and what each way of getting one needs -------
    ({"tls": "https"}, "tls: Input should be 'acme', 'files', 'internal' or 'off'"),
    ({"tls": True}, "tls: Input should be 'acme', 'files', 'internal' or 'off'"),
    ({"tls": "acme"}, 'acme_email: needed with tls "acme"'),
    (
        {"tls": "acme", "acme_email": "admin@lab.example.org", "hub_domain": "10.1.2.3"},
        "hub_domain: '10.1.2.3' is not a full DNS name",
    ),
    (
        {"tls": "acme", "acme_email": "admin@lab.example.org", "hub_domain": "labhub"},
        "hub_domain: 'labhub' is not a full DNS name",
    ),
    (
        {"tls": "acme", "acme_email": "admin at lab"},
        "acme_email: 'admin at lab' is not an e-mail address",
    ),
    (
        {"acme_directory": "http://ca.lab.example.org/directory"},
        "acme_directory: 'http://ca.lab.example.org/directory' is not an https:// URL",
    ),
    ({"acme_ca_root": "not-pem"}, "acme_ca_root: '{not-pem}' is not a PEM CA bundle"),
    (
        {"tls": "acme", "acme_email": "admin@lab.example.org", "acme_wait": 5},
        "acme_wait: Input should be greater than or equal to 10",
    ),
    (
        {"acme_wait": 300},
        "acme_wait: set, but used only with tls \"acme\" (tls is 'internal')",
    ),
    ({"hub_domain": "hub_lab.example.org"}, "hub_domain: 'hub_lab.example.org' is not a DNS name"),
    (
        {"hub_domain": "hub.lab.example.org\nextra: 1"},
        "hub_domain: 'hub.lab.example.org\\nextra: 1' is not a DNS name",
    ),
    ({"hub_domain": 10}, "hub_domain: 10 is a number: write it as a string, in quotes"),
    ({"tls": "files"}, 'tls_cert: needed with tls "files"'),
    ({"tls": "files", "tls_cert": "cert-good"}, 'tls_key: needed with tls "files"'),
    ({**FILES, "tls_key": "key-other"}, "tls_key: does not match tls_cert"),
    ({**FILES, "tls_cert": "cert-expired"}, "tls_cert: expired on"),
    (
        {**FILES, "tls_cert": "cert-other-name"},
        "tls_cert: is for www.lab.example.org, not for hub_domain 'hub.lab.example.org'",
    ),
    (
        {**FILES, "tls_cert": "cert-wildcard", "hub_domain": "a.b.lab.example.org"},
        "tls_cert: is for *.lab.example.org, not for hub_domain",
    ),
    ({**FILES, "tls_key": "key-encrypted"}, "tls_key: '{key-encrypted}' is encrypted"),
    ({**FILES, "tls_key": "not-pem"}, "tls_key: '{not-pem}' is not a PEM private key"),
    ({**FILES, "tls_cert": "not-pem"}, "tls_cert: '{not-pem}' is not a PEM certificate chain"),
    (
        {**FILES, "tls_key": "files/lab/Dockerfile"},
        "tls_key: 'files/lab/Dockerfile' must be an absolute path",
    ),
    (
        {**FILES, "tls_key": str(Path(__file__).resolve())},
        f"tls_key: {str(Path(__file__).resolve())!r} is inside the labhub repository",
    ),
    (
        {"proxy_image": "caddy:2\nprivileged: true"},
        "proxy_image: 'caddy:2\\nprivileged: true' is not an image reference",
    ),
    # --- Backups -------------------------------------------------------------------------------
    ({"backup_repository": "backups"}, "backup_repository: 'backups' is not a restic repository"),
    (
        {**BACKUP, "backup_repository": "/etc/backups"},
        "backup_repository: '/etc/backups' is inside the system folder /etc",
    ),
    (
        {**BACKUP, "backup_repository": "rest:https://lab:s3cret@backup.lab/"},
        "backup_repository: the URL holds a password",
    ),
    ({"backup_repository": "/srv/backups"}, "backup_password_file: not set"),
    (
        {**BACKUP, "backup_password_file": "password.txt"},
        "backup_password_file: 'password.txt' must be an absolute path",
    ),
    ({**BACKUP, "backup_password_file": "empty"}, "backup_password_file: '{empty}' is empty"),
    (
        {**BACKUP, "backup_ssh_key": "ssh-good"},
        "backup_ssh_key: only an sftp: backup_repository is reached with an SSH key",
    ),
    (
        {"backup_schedule": "daily; reboot"},
        "backup_schedule: 'daily; reboot' is not a systemd calendar event",
    ),
    ({"backup_keep": {"dayly": 7}}, "backup_keep.dayly"),
    (
        {"backup_keep": {"daily": 0}},
        "backup_keep.daily: Input should be greater than or equal to 1",
    ),
    ({**BACKUP, "backup_keep": {}}, "backup_keep: empty"),
    ({"backup_homes": "yes"}, "backup_homes: should be true or false"),
    ({"restore_snapshot": "HEAD"}, "restore_snapshot: 'HEAD' is not a snapshot ID"),
]
SFTP = {**BACKUP, "backup_repository": "sftp:restic@backup.lab:/srv/restic"}
ACME = {"tls": "acme", "acme_email": "admin@lab.example.org"}
# Round two (issue 22): classes of bad values that were accepted, and messages that misled. A
# third element, where given, is what the output must not say.
ACCEPTED_BEFORE = [
    # --- Paths in another spelling of a forbidden one: the normal form is checked ------------
    ({"hub_dir": "//etc/labhub"}, "hub_dir: '/etc/labhub' is inside the system folder /etc"),
    ({"hub_dir": "/opt/./"}, "hub_dir: '/opt' is a system folder"),
    ({"lab_home": "//usr/local"}, "lab_home: '/usr/local' is inside the system folder /usr"),
    (
        {"shares": [share(mountpoint="//opt/labhub/")]},
        "shares[0].mountpoint: '/opt/labhub' overlaps hub_dir",
    ),
    (
        {
            "shares": [share(mountpoint="/mnt//leem/.")],
            "lab_volumes": [volume(host_path="/mnt/leem")],
        },
        "lab_volumes[0].host_path: '/mnt/leem' overlaps shares[0].mountpoint ('/mnt/leem')",
    ),
    (
        {
            "lab_volumes": [
                volume(host_path="/srv/./data/"),
                volume(host_path="//srv/data", container_path="b"),
            ]
        },
        "lab_volumes[1].host_path: '/srv/data' overlaps lab_volumes[0].host_path",
    ),
    (
        {"lab_volumes": [volume(container_path="/opt//conda/")]},
        "lab_volumes[0].container_path: '/opt/conda' is the system folder /opt/conda",
    ),
    (
        {**BACKUP, "backup_repository": "//etc/backups"},
        "backup_repository: '/etc/backups' is inside the system folder /etc",
    ),
    # --- Characters another program reads as syntax ----------------------------------------------
    (
        {"lab_volumes": [volume(host_path="/srv/data:/etc")]},
        "lab_volumes[0].host_path: '/srv/data:/etc' may not contain ':'",
    ),
    (
        {"lab_volumes": [volume(container_path="data:ro")]},
        "lab_volumes[0].container_path: 'data:ro' may not contain ':'",
    ),
    (
        {"shares": [share(container_path="leem:/etc")]},
        "shares[0].container_path: 'leem:/etc' may not contain ':'",
    ),
    (
        {"shares": [share(mountpoint="/mnt/lab\\040share")]},
        "shares[0].mountpoint: '/mnt/lab\\\\040share' may not contain '\\'",
    ),
    (
        {**ACME, "acme_email": "admin@{env.HOME}.org"},
        "acme_email: 'admin@{env.HOME}.org' may not contain '{' or '}'",
    ),
    (
        {**ACME, "acme_directory": "https://ca.lab/{http.request.host}"},
        "acme_directory: 'https://ca.lab/{http.request.host}' may not contain '{'",
    ),
    # --- CIFS options read by prefix and in any case, as mount.cifs reads them ----------------
    (
        {"shares": [share(options=["PASS=x"])]},
        "shares[0].options: mount option 'PASS' is not allowed (mount.cifs reads it as the password)",
    ),
    (
        {"shares": [share(options=["passwd=x"])]},
        "shares[0].options: mount option 'passwd' is not allowed (mount.cifs reads it as the password)",
    ),
    (
        {"shares": [share(options=["Username=bob"])]},
        "shares[0].options: mount option 'Username' is not allowed (mount.cifs reads it as the user name)",
    ),
    (
        {"shares": [share(options=["cred=/root/other"])]},
        "shares[0].options: mount option 'cred' is not allowed (mount.cifs reads it as the credentials file)",
    ),
    (
        {"shares": [share(options=["unc=//other/share"])]},
        "shares[0].options: mount option 'unc' is not allowed (mount.cifs reads it as the share's source)",
    ),
    (
        {"shares": [share(options=["workgroup=LAB"])]},
        "shares[0].options: mount option 'workgroup' is not allowed (mount.cifs reads it as the domain)",
    ),
    (
        {"shares": [share(options=["rwpidforward"])]},
        "shares[0].options: mount option 'rwpidforward' is not allowed (mount.cifs reads it as rw)",
    ),
    # --- Secrets where they become public ---------------------------------------------------------
    ({**FILES, "tls_cert": "cert-with-key"}, "tls_cert: '{cert-with-key}' holds a private key"),
    (
        {**ACME, "acme_ca_root": "cert-with-key"},
        "acme_ca_root: '{cert-with-key}' holds a private key",
    ),
    (
        {**ACME, "acme_directory": "https://lab:s3cret@ca.lab/dir"},
        "acme_directory: the URL holds a password",
        "s3cret@",
    ),
    (
        {**BACKUP, "backup_repository": "sftp:restic:s3cret@backup.lab:/srv/restic"},
        "backup_repository: the URL holds a password",
    ),
    (
        {"pip_index_url": "https://lab:s3cret@pypi.lab/simple"},
        "pip_index_url: the URL holds a password",
    ),
    (
        {"shares": [share("good-readable")]},
        "shares[0].credentials: '{good-readable}' can be read by others on this machine (mode 0644): make it yours alone (chmod 600",
    ),
    ({**FILES, "tls_key": "key-readable"}, "tls_key: '{key-readable}' can be read by others"),
    (
        {**BACKUP, "backup_password_file": "good-readable"},
        "backup_password_file: '{good-readable}' can be read by others",
    ),
    (
        {**SFTP, "backup_ssh_key": "ssh-readable"},
        "backup_ssh_key: '{ssh-readable}' can be read by others",
    ),
    # --- Settings that would be silently ignored: refused --------------------------------------
    ({"tls": "internal", "tls_cert": "cert-good"}, 'tls_cert: set, but used only with tls "files"'),
    (
        {"tls": "acme", "acme_email": "admin@lab.example.org", "tls_key": "key-good"},
        'tls_key: set, but used only with tls "files"',
    ),
    (
        {"tls": "off", "acme_email": "admin@lab.example.org"},
        'acme_email: set, but used only with tls "acme"',
    ),
    ({"acme_ca_root": "cert-good"}, 'acme_ca_root: set, but used only with tls "acme"'),
    (
        {"tls": "off", "https_port": 8443},
        'https_port: set, but used only with tls other than "off"',
    ),
    ({"hub_port": 8080}, 'hub_port: set, but used only with tls "off"'),
    ({"backup_schedule": "weekly"}, "backup_schedule: set, but used only with backup_repository"),
    (
        {"backup_password_file": "good"},
        "backup_password_file: set, but used only with backup_repository",
    ),
    # --- Names and addresses nobody can open ----------------------------------------------------
    ({"hub_domain": "0.0.0.0"}, "hub_domain: '0.0.0.0' is the unspecified address"),
    ({"hub_domain": "::"}, "hub_domain: '::' is the unspecified address"),
    (
        {"hub_domain": "fe80::1%eth0"},
        "hub_domain: 'fe80::1%eth0' is a link-local address with a zone",
    ),
    # --- Two things in one place ----------------------------------------------------------------------
    (
        {"lab_images": [{"name": "lab/gpu", "version": "1"}, {"name": "lab-gpu", "version": "1"}]},
        "lab_images[1]: 'lab-gpu:1' would be built in the folder of 'lab/gpu:1' (lab-lab-gpu-1)",
    ),
    # --- Backups in the wrong place or of the wrong kind --------------------------------------------
    (
        {**BACKUP, "backup_repository": "/opt/labhub/backups"},
        "backup_repository: '/opt/labhub/backups' overlaps hub_dir",
    ),
    ({**BACKUP, "backup_repository": "/opt"}, "backup_repository: '/opt' is a system folder"),
    (
        {**BACKUP, "backup_repository": "/home/backups"},
        "backup_repository: '/home/backups' is inside /home",
    ),
    ({**SFTP, "backup_ssh_key": "ssh-public"}, "backup_ssh_key: '{ssh-public}' is a public key"),
    (
        {**SFTP, "backup_ssh_key": "ssh-passphrase"},
        "backup_ssh_key: '{ssh-passphrase}' has a passphrase",
    ),
    ({**SFTP, "backup_ssh_key": "good"}, "backup_ssh_key: '{good}' is not an SSH private key"),
    # --- Groups that exist only once a task made them (docker), or on any Debian ---------------
    (
        {"hub_users": [{"name": "alice", "groups": ["docker"]}]},
        "hub_users[0].groups[0]: 'docker' is a system group",
    ),
    (
        {"lab_volumes": [volume(groups=["sudo"])]},
        "lab_volumes[0].groups[0]: 'sudo' is a system group",
    ),
    # --- Messages that name the real problem -------------------------------------------------------
    (
        {"lab_images": [{"name": "Lab", "version": "1"}]},
        "lab_images[0].name: 'Lab' is not a valid image repository name",
        "at least 1 item",
    ),
    ({"registry_prune": 3}, "registry_prune: should be a mapping (got 3)", "write it as a string"),
    (
        {"tls_key_password": "x"},
        "tls_key_password: unknown setting (did you mean 'tls_key'?)",
        "ssh_key_password",
    ),
    ({"hub_dir": ""}, "hub_dir: is empty: give a path", "'..'"),
    (
        {"restore_snapshot": "1234ABCD", **BACKUP},
        "restore_snapshot: '1234ABCD' has upper case letters",
        "8 to 64",
    ),
    (
        {"restore_snapshot": "abc123", **BACKUP},
        "restore_snapshot: 'abc123' is 6 hex digits: give at least 8",
    ),
    (
        {"hub_domain": "hub.lab.example.org."},
        "hub_domain: 'hub.lab.example.org.' ends with a dot",
        "like hub.lab.example.org",
    ),
    (
        {"hub_domain": "hub.l\u0430b.example.org"},
        "hub_domain: 'hub.l\u0430b.example.org' has the non-ASCII character '\u0430' (CYRILLIC SMALL LETTER A)",
    ),
    (
        {**FILES, "tls_cert": "chain-reversed", "tls_key": "key-leaf"},
        "tls_cert: the chain is in the wrong order",
        "does not match",
    ),
    (
        {**FILES, "tls_cert": "cert-cn-only"},
        "tls_cert: has no subjectAltName names, only the subject CN 'hub.lab.example.org'",
        "no name",
    ),
    ({"backup_keep": {"dayly": 7}}, "backup_keep.dayly: Input should be", "[key]"),
    # A field error and a cross-setting error of the same run, reported together.
    (
        {"hub_dir": "/etc/labhub", "https_port": 5000, "hub_bind": "127.0.0.1"},
        "registry_port: port 5000 on 127.0.0.1 is https_port's already",
    ),
]
CASES += ACCEPTED_BEFORE
ACCEPTED_CREDENTIALS = ["good", "short-keys", "upper-keys", "indented"]


@pytest.fixture(scope="module")
def credentials(tmp_path_factory) -> dict[str, str]:
    """The credentials files, the certificates and keys of tls "files", and backup SSH keys, by
    name: secret files as an admin keeps them (mode 0600), those named -readable as one who
    forgot (0644)."""
    folder = tmp_path_factory.mktemp("credentials")
    paths = {}
    for name, content in {**CREDENTIALS, **certificates(), **ssh_keys()}.items():
        labhost.write_secret(folder / name, content)
        if name.endswith("-readable"):
            (folder / name).chmod(0o644)
        paths[name] = str(folder / name)
    return paths


def ssh_keys() -> dict[str, bytes]:
    """Backup SSH keys as ssh-keygen writes them."""
    key = ed25519.Ed25519PrivateKey.generate()

    def private(password: bytes | None = None) -> bytes:
        encryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
        )

    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return {
        "ssh-good": private(),
        "ssh-readable": private(),
        "ssh-passphrase": private(b"passphrase"),
        "ssh-public": public + b" admin@lab\n",
    }


def certificates() -> dict[str, bytes]:
    """What a lab's CA might hand an admin, right and wrong, made as openssl would."""
    now = datetime.now(UTC)
    key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))

    ca_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))

    def certificate(
        name: str,
        start: timedelta,
        end: timedelta,
        san: bool = True,
        public=None,
        signer=key,
        issuer: str | None = None,
    ) -> bytes:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or name)]))
            .public_key(public or key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + start)
            .not_valid_after(now + end)
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    ca = certificate(
        "Lab CA", timedelta(days=-1), timedelta(days=900), False, ca_key.public_key(), ca_key
    )
    leaf = certificate(
        DOMAIN,
        timedelta(days=-1),
        timedelta(days=90),
        True,
        leaf_key.public_key(),
        ca_key,
        "Lab CA",
    )

    def pem(k, password: bytes | None = None) -> bytes:
        encryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    return {
        "cert-good": certificate(DOMAIN, timedelta(days=-1), timedelta(days=90)),
        "cert-wildcard": certificate("*.lab.example.org", timedelta(days=-1), timedelta(days=9)),
        "cert-expired": certificate(DOMAIN, timedelta(days=-90), timedelta(days=-2)),
        "cert-other-name": certificate(
            "www.lab.example.org", timedelta(days=-1), timedelta(days=90)
        ),
        "key-good": pem(key),
        "key-readable": pem(key),
        "cert-with-key": certificate(DOMAIN, timedelta(days=-1), timedelta(days=90)) + pem(key),
        "cert-cn-only": certificate(DOMAIN, timedelta(days=-1), timedelta(days=90), False),
        # The CA's certificate before the hub's own: the order some CAs' downloads have.
        "chain-reversed": ca + leaf,
        "key-leaf": pem(leaf_key),
        "key-other": pem(other_key),
        "key-encrypted": pem(key, b"passphrase"),
        "not-pem": b"this is not a certificate\n",
    }


def resolve(value, credentials: dict[str, str]):
    """Settings with the credentials files' names turned into their paths on this machine."""
    if isinstance(value, dict):
        return {
            k: (credentials.get(v, v) if k in FILE_SETTINGS else resolve(v, credentials))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [resolve(v, credentials) for v in value]
    return value


def expected_text(expected: str, credentials: dict[str, str]) -> str:
    return re.sub(r"\{([a-z0-9-]+)\}", lambda m: credentials[m.group(1)], expected)


@pytest.fixture(scope="module")
def runs(credentials, tmp_path_factory) -> list[labhost.PyinfraRun]:
    """Every case as a dry run of the whole deploy, on a host that answers nothing (@fake): a
    refusal must come before the first fact or operation. Four at a time."""
    folder = tmp_path_factory.mktemp("inventories")

    def run(index: int) -> labhost.PyinfraRun:
        data = {
            "fake_delay": 0,
            "fake_delay_jitter": 0,
            "hub_domain": DOMAIN,
            **resolve(CASES[index][0], credentials),
        }
        inventory = folder / f"inventory_{index}.py"
        inventory.write_text(
            f"import json\nhosts = [('@fake', json.loads({json.dumps(data)!r}))]\n"
        )
        return labhost.run_pyinfra(inventory, "deploy.py", dry=True)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(run, range(len(CASES))))


def test_there_are_enough_cases():
    assert len(CASES) >= 80


@pytest.mark.parametrize(
    "index", range(len(CASES)), ids=[case[1].split(":", 1)[0] for case in CASES]
)
def test_bad_setting_stops_the_run_before_any_operation(index, runs, credentials):
    run = runs[index]
    expected = expected_text(CASES[index][1], credentials)
    assert run.returncode != 0
    assert "invalid labhub settings for @fake:\n" in run.stderr
    assert expected in run.stderr, run.stderr[-2000:]
    for never in CASES[index][2:]:
        assert never not in run.stderr, run.stderr[-2000:]
    # Nothing was planned, let alone run: pyinfra stopped after loading the inventory, before
    # it connected to the host.
    assert "Connecting to hosts" not in run.stderr and "Connected" not in run.stderr
    assert "Starting operation" not in run.stderr and '"plan"' not in run.stdout
    # The first line of the problems names the setting, in the admin's words.
    problems = run.stderr.split("invalid labhub settings for @fake:\n", 1)[1].splitlines()
    assert any(line.strip().startswith(expected.split(":", 1)[0]) for line in problems)
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("name", ACCEPTED_CREDENTIALS)
def test_credentials_files_mount_cifs_reads_are_accepted(name, credentials):
    settings = validate({"shares": [resolve(share(name), credentials)]})
    assert settings.shares[0].credentials == credentials[name]


def test_accepted_neighbours_of_refused_values():
    """What sits next to a refused value and is fine: nothing above refuses too much."""
    settings = validate(
        {
            "hub_dir": "/srv/labhub",
            "lab_home": "/home/lab",
            "tls": "off",
            "hub_bind": "10.1.2.3",
            "hub_port": 5000,
            "registry_port": 5001,
            "registry_image": "localhost:5000/mirror/registry:2.8@sha256:" + "a" * 64,
            "hub_users": [{"name": "alice", "groups": ["leem"]}],
            "lab_volumes": [
                {"host_path": "/srv/data", "container_path": "/opt/data"},
                {"host_path": "/srv/data/ref", "container_path": "ref", "groups": ["leem"]},
            ],
            "lab_images": [{"name": "lab/gpu", "version": "2025.01_cuda-12"}],
        }
    )
    assert settings.registry_address == "127.0.0.1:5001"
    assert settings.hub_url == "http://10.1.2.3:5000"


@pytest.mark.parametrize(
    "os_release, data, expected",
    [
        (
            ["ID=centos", "VERSION_ID=9"],
            {},
            "labhub supports Debian and Ubuntu hosts, not 'centos'",
        ),
        (
            ["ID=debian", "VERSION_ID=12", "VERSION_CODENAME=bookworm"],
            {"docker_source": "distro"},
            "docker_source 'distro': debian 12 has no compose v2 package",
        ),
        (["ID=debian", "VERSION_ID=13"], {}, "/etc/os-release names no release codename"),
    ],
)
def test_an_unsupported_os_or_release_is_one_line(os_release, data, expected, tmp_path):
    inventory = tmp_path / "inventory.py"
    host_data = {
        "fake_delay": 0,
        "fake_delay_jitter": 0,
        "hub_domain": DOMAIN,
        "fake_responses": {"os-release": os_release},
        **data,
    }
    inventory.write_text(
        f"import json\nhosts = [('@fake', json.loads({json.dumps(host_data)!r}))]\n"
    )
    run = labhost.run_pyinfra(inventory, "deploy.py", dry=True)
    assert run.returncode != 0
    assert expected in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr


def test_accepted_values_of_the_new_classes(credentials):
    """Values that only look like the refused ones: odd but normal paths, IPv6 literals in
    brackets, CIFS options of the admin's own, a backup folder beside hub_dir."""
    settings = validate(
        resolve(
            {
                "hub_dir": "/srv/labhub/",
                "hub_domain": "[2001:db8::5]",
                "registry_bind": "[::1]",
                "hub_users": [{"name": "alice", "groups": ["leem"]}],
                "shares": [
                    share(
                        mountpoint="/mnt/lab.data-1",
                        options=[
                            "vers=3.0",
                            "sec=ntlmssp",
                            "iocharset=utf8",
                            "nounix",
                            "file_mode=0640",
                            "dir_mode=0750",
                            "serverino",
                            "port=445",
                        ],
                    )
                ],
                "lab_volumes": [volume(host_path="/srv/..data/", container_path="./ref")],
                **SFTP,
                "backup_ssh_key": "ssh-good",
                "restore_snapshot": "0123abcd",
            },
            credentials,
        )
    )
    assert settings.hub_dir == "/srv/labhub"
    assert settings.hub_url == "https://[2001:db8::5]"
    assert settings.registry_address == "[::1]:5000"
    assert settings.lab_volumes[0].host_path == "/srv/..data"
    assert settings.container_path(settings.lab_volumes[0].container_path) == "/home/jovyan/ref"
    assert (
        validate(
            resolve({**BACKUP, "backup_repository": "/srv/labhub-backups"}, credentials)
        ).backup_repository
        == "/srv/labhub-backups"
    )
    assert validate({"tls": "off", "hub_bind": "::1"}).hub_url == "http://[::1]:8000"


def fake_inventory(folder: Path, data: dict) -> Path:
    inventory = folder / "inventory.py"
    host_data = {"fake_delay": 0, "fake_delay_jitter": 0, "hub_domain": DOMAIN, **data}
    inventory.write_text(
        f"import json\nhosts = [('@fake', json.loads({json.dumps(host_data)!r}))]\n"
    )
    return inventory


def test_a_snapshot_id_of_digits_on_the_command_line(credentials, tmp_path):
    """--data reads 01234567 as a number: refused with advice the shell can follow, which then
    works."""
    inventory = fake_inventory(tmp_path, resolve(BACKUP, credentials))
    run = labhost.run_pyinfra(
        inventory, "deploy.py", dry=True, extra=("--data", "restore_snapshot=01234567")
    )
    assert "restore_snapshot: 1234567 is a number, not the snapshot ID you typed" in run.stderr
    advice = re.search(r"--data '(restore_snapshot=[^']*)'", run.stderr).group(1)
    followed = labhost.run_pyinfra(
        inventory, "deploy.py", dry=True, extra=("--data", advice.replace("01234567", "0123abcd"))
    )
    assert "invalid labhub settings" not in followed.stderr, followed.stderr[-2000:]


def test_bad_settings_are_reported_when_the_server_cannot_be_reached(tmp_path):
    """Validated before connecting: a typo is reported even when the server is down. The
    address is TEST-NET-1 (RFC 5737), which nothing answers."""
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        "hosts = [('192.0.2.1', {'ssh_connect_retries': 0, 'hub_dir': '//etc/labhub'})]\n"
    )
    run = labhost.run_pyinfra(inventory, "deploy.py", dry=True, timeout=120)
    assert run.returncode != 0
    assert "invalid labhub settings for 192.0.2.1:\n" in run.stderr
    assert "hub_dir: '/etc/labhub' is inside the system folder /etc" in run.stderr
    assert "Connecting to hosts" not in run.stderr and "Traceback" not in run.stderr
