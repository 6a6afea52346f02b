"""
The lab the end-to-end tests deploy, shared by their modules (and ``benchmarks/noop_deploy.py``):
two hub users (alice, an admin in group leem, and bob), a read-only share for every user and a
read-write one for group leem, the hub at ``DOMAIN`` over HTTPS with the proxy's local CA, and the
stand-in base images. A support module, not a test module: no test module imports another.
"""

from __future__ import annotations

from pathlib import Path

import labhost

PASSWORDS = {"alice": "alice-first-login", "bob": "bob-first-login-pw"}
DATA_SHARE = "/srv/shares/data"          # read-only, for every hub user
SCRATCH_SHARE = "/srv/shares/scratch"    # read-write, only for group leem
REGISTRY = "127.0.0.1:5000"
# The name users open the hub at (HTTPS, the proxy's local CA): it resolves to the lab server.
DOMAIN = "hub.lab.test"
URL = f"https://{DOMAIN}"
# What the deploy points the admin to for users' browsers.
LOCAL_CA_ROOT = "/opt/labhub/proxy/local-ca-root.crt"


def deploy_data(tmp: Path, overrides: dict) -> dict:
    """The scenario's settings; ``overrides``: the stand-in base images and this machine's CA
    bundle for pip in the image builds (``labhost.load_stack_images``), or any other setting."""
    credentials = tmp / "share-credentials"
    credentials.write_text("username=lab\npassword=not-used-here\n")
    return {
        "docker_source": "distro",
        "hub_users": [{"name": "alice", "groups": ["leem"]}, "bob"],
        "hub_admins": ["alice"],
        # The tests reach the hub from this machine; the registry stays on the server's loopback.
        "hub_bind": "0.0.0.0",
        "hub_domain": DOMAIN,
        "shares": [
            {"name": "data", "source": "//127.0.0.1/data", "mountpoint": DATA_SHARE,
             "mode": "ro", "credentials": str(credentials)},
            {"name": "scratch", "source": "//127.0.0.1/scratch",
             "mountpoint": SCRATCH_SHARE, "mode": "rw", "credentials": str(credentials),
             "groups": ["leem"]},
        ],
        **overrides,
    }


def make_shares_writable_as_mounted(server: labhost.LabServer) -> None:
    # A CIFS mount's owner and modes come from its mount options; a plain folder stands in, with
    # the share's automount stopped: a first access would mount CIFS, which fails here.
    server.automounts("stop", [DATA_SHARE, SCRATCH_SHARE])
    server.exec(f"mkdir -p {DATA_SHARE} {SCRATCH_SHARE} && echo shared > {DATA_SHARE}/README "
                f"&& chmod 0777 {SCRATCH_SHARE} {DATA_SHARE}")


def local_ca_root(server: labhost.LabServer, folder: Path) -> str:
    """What the deploy points the admin to for users' browsers, the proxy's local CA root, as a
    file a client here trusts."""
    root = folder / "local-ca-root.crt"
    root.write_text(server.exec(f"cat {LOCAL_CA_ROOT}"))
    return str(root)
