"""
The lab the end-to-end tests deploy, shared by their modules (and ``benchmarks/noop_deploy.py``):
two hub users (alice, an admin in group leem, and bob), a read-only share for every user and a
read-write one for group leem, the hub at ``DOMAIN`` over HTTPS with the proxy's local CA, and the
stand-in base images. A support module, not a test module: no test module imports another.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import labhost

logger = logging.getLogger(__name__)

PASSWORDS = {"alice": "alice-first-login", "bob": "bob-first-login-pw"}
DATA_SHARE = "/srv/shares/data"  # read-only, for every hub user
SCRATCH_SHARE = "/srv/shares/scratch"  # read-write, only for group leem
REGISTRY = "127.0.0.1:5000"
# The name users open the hub at (HTTPS, the proxy's local CA): it resolves to the lab server.
DOMAIN = "hub.lab.test"
URL = f"https://{DOMAIN}"
# What the deploy points the admin to for users' browsers.
LOCAL_CA_ROOT = "/opt/labhub/proxy/local-ca-root.crt"
# The hub reads the registry's images once for the forms and spawns of this many seconds
# (labhub_spawn.RegistryImages.FRESH_S).
IMAGES_FRESH_S = 5


def until_images_fresh(pushed: float) -> None:
    """Wait out the hub's freshness window from a push (``time.monotonic()`` once it was done):
    a spawn form shown after it lists what was pushed."""
    time.sleep(max(0.0, pushed + IMAGES_FRESH_S - time.monotonic()))


def deploy_data(tmp: Path, overrides: dict) -> dict:
    """The scenario's settings; ``overrides``: the stand-in base images and this machine's CA
    bundle for pip in the image builds (``labhost.load_stack_images``), or any other setting."""
    credentials = tmp / "share-credentials"
    labhost.write_secret(credentials, "username=lab\npassword=not-used-here\n")
    return {
        "docker_source": "distro",
        "hub_users": [{"name": "alice", "groups": ["leem"]}, "bob"],
        "hub_admins": ["alice"],
        # The first login sets the password: these modules are not about who gets in
        # (tests/test_https_e2e.py is, with invitations).
        "first_login": "open",
        # The tests reach the hub from this machine; the registry stays on the server's loopback.
        "hub_bind": "0.0.0.0",
        "hub_domain": DOMAIN,
        "shares": [
            {
                "name": "data",
                "source": "//127.0.0.1/data",
                "mountpoint": DATA_SHARE,
                "mode": "ro",
                "credentials": str(credentials),
            },
            {
                "name": "scratch",
                "source": "//127.0.0.1/scratch",
                "mountpoint": SCRATCH_SHARE,
                "mode": "rw",
                "credentials": str(credentials),
                "groups": ["leem"],
            },
        ],
        **overrides,
    }


def make_shares_writable_as_mounted(server: labhost.LabServer) -> None:
    # A CIFS mount's owner and modes come from its mount options; a tmpfs open to all stands in,
    # with the share's automount stopped: a first access would mount CIFS, which fails here. A
    # lab gets only a share that something is mounted at.
    server.automounts("stop", [DATA_SHARE, SCRATCH_SHARE])
    for share in (DATA_SHARE, SCRATCH_SHARE):
        server.exec(
            f"mkdir -p {share} && {{ mountpoint -q {share} || "
            f"mount -t tmpfs -o mode=0777 labhub-stand-in {share}; }}"
        )
    server.exec(f"echo shared > {DATA_SHARE}/README")


def local_ca_root(server: labhost.LabServer, folder: Path) -> str:
    """What the deploy points the admin to for users' browsers, the proxy's local CA root, as a
    file a client here trusts."""
    root = folder / "local-ca-root.crt"
    root.write_text(server.exec(f"cat {LOCAL_CA_ROOT}"))
    return str(root)


@dataclass
class ScenarioLab:
    """
    One lab server with the scenario deployed, which the modules of the shared-lab group
    (``tests/conftest.py``) use in turn: a cold deploy for all of them instead of one each. A
    module that deploys settings of its own says so (``deploy_with``), and the next module that
    wants the scenario's converges back to them first (``converge``).
    """

    server: labhost.LabServer
    folder: Path
    data: dict
    inventory: Path
    dry: labhost.PyinfraRun  # the dry run on the bare server, before the cold deploy
    left_by_dry: str  # what the dry run left under /opt/labhub ("": nothing)
    cold: labhost.PyinfraRun
    verify: str  # the proxy's local CA root, as a file a client here trusts
    timings: dict[str, float] = field(default_factory=dict)
    # The module whose own settings are deployed now; None: the scenario's are.
    changed_by: str | None = None

    @classmethod
    def deploy(cls, server: labhost.LabServer, folder: Path) -> ScenarioLab:
        """The stand-in images loaded, a dry run on the bare server, then the cold deploy."""
        timings = {}
        started = time.monotonic()
        data = deploy_data(folder, labhost.load_stack_images(server))
        timings["engine and image load"] = time.monotonic() - started
        inventory = server.inventory_file(data)
        dry = labhost.run_pyinfra(inventory, "deploy.py", dry=True)
        left = server.exec("test -e /opt/labhub && echo exists || true").strip()
        started = time.monotonic()
        cold = labhost.run_pyinfra(inventory, "deploy.py")
        timings["cold deploy"] = time.monotonic() - started
        cold.check()
        logger.warning("shared lab server %s: %s", server.address, timings)
        return cls(
            server, folder, data, inventory, dry, left, cold, local_ca_root(server, folder), timings
        )

    def deploy_with(self, module: str, **settings) -> labhost.PyinfraRun:
        """Deploy the scenario with ``module``'s own settings on top (its own inventory file)."""
        self.changed_by = module
        inventory = self.server.inventory_file(
            {**self.data, **settings}, path=self.server.workdir / f"{module}.py"
        )
        return labhost.run_pyinfra(inventory, "deploy.py").check()

    def converge(self) -> None:
        """The scenario's settings deployed again when a module before changed them (or left
        something it had broken to be put back)."""
        if self.changed_by is None:
            return
        logger.warning("converging the shared lab server back from %s", self.changed_by)
        labhost.run_pyinfra(self.server.inventory_file(self.data), "deploy.py").check()
        self.changed_by = None
        self.verify = local_ca_root(self.server, self.folder)
