"""
HTTPS for the hub on a fresh lab server, in each of the three ways of getting a certificate, as a
lab member's browser meets it: a certificate from a real ACME CA (Debian's pebble, validating the
lab server over HTTP-01/TLS-ALPN-01), the lab's own certificate files, and the proxy's local CA.
Each is checked by a client that trusts only the root it should: login, spawn, the contents API and
a kernel over wss:// all go through the proxy. Switching from one way to another recreates only
the proxy; the hub, the registry and a running lab stay as they are.

The name users open, hub.lab.test, resolves to the lab server in this test process (as a DNS
record would), and in pebble's DNS for its validation; first to a wrong address, as when the
record is not there yet, which fails the run loudly.

Who gets in, over HTTPS: a first login by invitation only (the link the deploy wrote on this
machine, mode 0600, its token never printed), used once, refused once expired and working when
reissued; FirstUse's change-password page; wrong passwords past the limit make the right one
wait, for that name alone; an admin's password reset.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from hubclient import Hub, form_images
from scenario import DOMAIN, IMAGES_FRESH_S, LOCAL_CA_ROOT, REGISTRY, URL

import labhost
from labhost.acme import running_pebble
from labhub import logins

pytestmark = [pytest.mark.e2e, pytest.mark.engine_installed]

PASSWORD = "alice-https-pw"
BOB_PASSWORDS = ("bob-chose-this-one", "bob-changed-it-since")
# Where the deploy writes the invitations' links on the admin's machine (this one).
INVITES = labhost.PROJECT_ROOT / ".labhub" / "invites"
INVITES_ON_SERVER = "/opt/labhub/hub/invites.json"
PUSHED_IMAGE = f"{REGISTRY}/pushed:1.0"
# How long the run that cannot get its certificate waits for it (acme_wait): the proxy's next
# try, after the DNS record is fixed, is a minute after its first.
ACME_WAIT = 20
# How long a name's logins wait after its failed ones (a minute by default).
FAILED_LOGIN_WAIT = 30


@pytest.fixture(scope="module")
def pebble(lab_server):
    with running_pebble(validates=lab_server.address) as ca:
        yield ca


@pytest.fixture(scope="module")
def site(lab_server, pebble, resolve, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("https")
    overrides = labhost.load_stack_images(lab_server)
    base = {
        "docker_source": "distro",
        "hub_users": ["alice", "bob"],
        "hub_admins": ["alice"],
        "hub_domain": DOMAIN,
        "metrics_token": True,
        "failed_login_wait": FAILED_LOGIN_WAIT,
        **overrides,
    }
    acme = {
        "tls": "acme",
        "acme_email": "admin@lab.test",
        "acme_directory": pebble.directory,
        "acme_ca_root": str(pebble.listener_ca),
    }
    inventory = lab_server.inventory_file({**base, **acme})
    # Links left by an earlier server at this address are not this one's.
    shutil.rmtree(INVITES / lab_server.address, ignore_errors=True)
    # The most common real failure first: the name does not reach the server yet (pebble's DNS
    # answers with this machine's address, where nothing serves the challenge).
    pebble.resolve_to(pebble.address)
    failing = lab_server.inventory_file(
        {**base, **acme, "acme_wait": ACME_WAIT}, path=tmp / "inventory-failing.py"
    )
    failed = labhost.run_pyinfra(failing, "deploy.py")
    # The DNS record fixed, the next run converges: the proxy's next attempt gets the certificate.
    pebble.resolve_to(lab_server.address)
    run = labhost.run_pyinfra(inventory, "deploy.py").check()
    root = tmp / "pebble-root.pem"
    root.write_text(pebble.root())
    return {
        "server": lab_server,
        "base": base,
        "acme": acme,
        "failed": failed,
        "run": run,
        "root": str(root),
        "tmp": tmp,
    }


def deploy(site, extra: tuple[str, ...] = (), dry: bool = False, **settings) -> labhost.PyinfraRun:
    inventory = site["server"].inventory_file({**site["base"], **settings})
    run = labhost.run_pyinfra(inventory, "deploy.py", extra=extra, dry=dry)
    return run if dry else run.check()


def link(site, user: str) -> str:
    """The invitation's link the deploy wrote for ``user`` (what the admin hands over)."""
    return (INVITES / site["server"].address / f"{user}.url").read_text().strip()


def token_of(link: str) -> str:
    return parse_qs(urlparse(link).query)["token"][0]


def logs_in(user: str, password: str, verify: str) -> bool:
    client = Hub(URL, user, verify=verify)
    client.login(password)
    return client.logged_in()


def status(site) -> str:
    """What tasks/status.py reports (whether or not it finds problems)."""
    inventory = site["server"].inventory_file({**site["base"], **site["acme"]})
    run = labhost.run_pyinfra(inventory, "tasks/status.py")
    return run.stdout + run.stderr


def containers(server) -> dict[str, str]:
    """The compose services' container ids."""
    lines = server.exec(
        "docker ps --filter label=com.docker.compose.project=labhub --format "
        "'{{.Label \"com.docker.compose.service\"}} {{.ID}}'"
    ).split("\n")
    return dict(line.split() for line in lines if line.strip())


def served_certificate(address: str, port: int = 443) -> bytes:
    """The DER certificate the proxy serves for hub.lab.test, whoever signed it."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((address, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            return tls.getpeercert(binary_form=True)


def openssl_certificate(tmp: Path, name: str, days: int, san: str) -> tuple[str, str]:
    cert, key = tmp / f"{name}.pem", tmp / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            str(days),
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            f"/CN={DOMAIN}",
            "-addext",
            f"subjectAltName={san}",
        ],
        check=True,
        capture_output=True,
    )
    # As an admin keeps a key (labhub refuses one others can read).
    key.chmod(0o600)
    return str(cert), str(key)


def test_an_acme_ca_that_cannot_validate_fails_the_run_loudly(site):
    """The run waits for the certificate, then fails naming it and showing the proxy's log,
    instead of going on with a fallback certificate."""
    failed = site["failed"]
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert f"no certificate for {DOMAIN} obtained within {ACME_WAIT} s" in output, output[-3000:]
    assert "Last log lines of the proxy" in output


def test_acme_certificate_chains_to_the_acme_ca(site):
    # A client trusting only pebble's root verifies the chain and the name.
    assert requests.get(f"{URL}/hub/health", verify=site["root"], timeout=10).status_code == 200
    # The system's CAs do not know pebble: the certificate is pebble's, not a public one.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{URL}/hub/health", timeout=10)


def test_http_redirects_to_https_and_the_hub_port_is_closed(site):
    response = requests.get(
        f"http://{DOMAIN}/hub/login?next=%2Fhub%2F", allow_redirects=False, timeout=10
    )
    assert response.status_code in (301, 308)
    assert response.headers["Location"] == f"{URL}/hub/login?next=%2Fhub%2F"
    # The hub's own port is no longer published: only the proxy answers.
    with pytest.raises(OSError):
        socket.create_connection((site["server"].address, 8000), timeout=5).close()
    assert sorted(containers(site["server"])) == ["engine", "hub", "proxy", "registry"]


def test_a_first_login_needs_the_invitation_that_only_the_admin_has(site):
    server = site["server"]
    for password in (PASSWORD, "anyone-elses-guess"):
        alice = Hub(URL, "alice", verify=site["root"])
        refused = alice.login(password)
        assert not alice.logged_in()
        assert "alice has no password yet: ask the lab&#39;s admin" in refused.text, refused.text
    output = site["run"].stdout + site["run"].stderr
    stored = server.exec(f"cat {INVITES_ON_SERVER}")
    for user in ("alice", "bob"):
        file = INVITES / server.address / f"{user}.url"
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert stat.S_IMODE(file.parent.stat().st_mode) == 0o700
        assert link(site, user).startswith(f"{URL}/hub/invite?")
        token = token_of(link(site, user))
        assert token not in output
        # The server keeps the token's hash alone.
        assert token not in stored and logins.token_hash(token) in stored
    assert server.exec(f"stat -c '%a %U' {INVITES_ON_SERVER}").strip() == "600 root"


def test_the_invitation_sets_the_password_once(site):
    alice = Hub(URL, "alice", verify=site["root"])
    claimed = alice.claim(link(site, "alice"), PASSWORD)
    assert alice.logged_in(), claimed.text[-1000:]
    again = Hub(URL, "alice", verify=site["root"]).claim(link(site, "alice"), "mallory-sets-it")
    assert again.status_code == 403 and "has a password already" in again.text
    assert logs_in("alice", PASSWORD, site["root"])
    assert not logs_in("alice", "mallory-sets-it", site["root"])
    # The next run drops alice's invitation, and changes nothing else.
    run = deploy(site, **site["acme"])
    changed = [name.rsplit(" | ", 1)[-1] for name in run.changed_operations]
    assert changed == ["Invite the hub users with no password yet"]
    assert "alice" not in json.loads(site["server"].exec(f"cat {INVITES_ON_SERVER}"))


def test_login_spawn_contents_and_kernel_through_the_proxy(site):
    alice = Hub(URL, "alice", verify=site["root"])
    response = alice.login(PASSWORD)
    assert alice.logged_in(), response.text[-500:]
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    session = {c.name: c for c in alice.session.cookies}["jupyterhub-session-id"]
    assert session.secure, "the hub's session cookie must be Secure behind HTTPS"
    alice.api_token()
    alice.start()
    saved = alice.lab(
        "PUT",
        "/api/contents/over-https.txt",
        json={"type": "file", "format": "text", "content": "through the proxy"},
    )
    assert saved.status_code in (200, 201), saved.text
    read = alice.lab("GET", "/api/contents/over-https.txt")
    assert read.json()["content"] == "through the proxy"
    # A kernel over wss://, through the proxy and the hub's proxy to the lab.
    assert alice.run("print(6 * 7)") == "42\n"
    # A wrong password is refused over HTTPS too.
    bob = Hub(URL, "alice", verify=site["root"])
    bob.login("not-alices-password")
    assert not bob.logged_in()


def test_a_monitoring_system_reads_the_metrics_with_its_token_and_nothing_else(site):
    server = site["server"]
    assert server.exec("stat -c '%a %U %G' /etc/labhub/metrics-token").strip() == "600 root root"
    token = server.exec("cat /etc/labhub/metrics-token").strip()
    assert len(token) == 48
    for run in (site["failed"], site["run"]):
        assert token not in run.stdout + run.stderr
    bearer = {"Authorization": f"Bearer {token}"}
    metrics = requests.get(f"{URL}/hub/metrics", headers=bearer, verify=site["root"], timeout=30)
    assert metrics.status_code == 200, metrics.text[-500:]
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE jupyterhub_active_users gauge" in metrics.text
    # Without the token, /hub/metrics answers no one; with it, nothing else answers.
    anonymous = requests.get(f"{URL}/hub/metrics", verify=site["root"], timeout=30)
    assert anonymous.status_code in (401, 403)
    for path in ("/hub/api/users", "/hub/api/users/alice", "/hub/api/services"):
        refused = requests.get(f"{URL}{path}", headers=bearer, verify=site["root"], timeout=30)
        assert refused.status_code == 403, (path, refused.status_code)


def kept(response: requests.Response) -> int:
    """How long a browser may keep the answer without asking again (seconds; 0: not at all)."""
    control = response.headers.get("Cache-Control", "")
    age = re.search(r"max-age=(\d+)", control)
    return 0 if not age or "no-cache" in control or "no-store" in control else int(age[1])


def test_text_is_compressed_and_jupyterlabs_hashed_files_are_kept(site):
    """As a browser asks: pages and scripts compressed (zstd or gzip, as it accepts), the lab's
    hashed static files kept, so that a second session takes them from its cache; the hub's
    and the lab's pages and API answers never kept."""
    alice = Hub(URL, "alice", verify=site["root"])
    alice.login(PASSWORD)
    alice.api_token()
    if not alice.server():
        alice.start()

    def get(path: str, encodings: str = "gzip", **headers) -> requests.Response:
        return alice.session.get(
            URL + path if path.startswith("/") else path,
            headers={"Accept-Encoding": encodings, **headers},
            verify=site["root"],
            timeout=60,
        )

    page = get("/user/alice/lab")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers.get("Content-Encoding") == "gzip"
    scripts = re.findall(r'<script[^>]+src="([^"]+/static/lab/[^"]+)"', page.text)
    assert scripts, page.text[:3000]
    script = get(scripts[0])
    assert script.status_code == 200, scripts[0]
    assert "javascript" in script.headers["Content-Type"]
    assert script.headers.get("Content-Encoding") == "gzip"
    assert get(scripts[0], "zstd, gzip").headers.get("Content-Encoding") == "zstd"
    assert kept(script) >= 30 * 24 * 3600, script.headers
    # Kept for its hashed name, not only for a "?v=" (the lab's fonts, as its styles name them).
    hashed = scripts[0].split("?")[0]
    assert re.search(r"\.[0-9a-f]{20}\.js$", hashed), hashed
    assert kept(get(hashed)) >= 30 * 24 * 3600
    for answer in (
        page,
        get("/hub/home"),
        get("/hub/spawn"),
        get("/hub/api/user", Authorization=f"token {alice.token}"),
        get("/user/alice/api/contents", Authorization=f"token {alice.token}"),
    ):
        assert answer.status_code == 200, answer.url
        assert kept(answer) == 0, (answer.url, answer.headers)
    assert get("/hub/home").headers.get("Content-Encoding") == "gzip"


def test_a_second_run_changes_nothing(site):
    inventory = site["server"].inventory_file({**site["base"], **site["acme"]})
    again = labhost.run_pyinfra(inventory, "deploy.py").check()
    assert again.changed == 0, again.changed_operations


def test_an_expired_invitation_is_refused_and_a_reissued_one_works(site):
    server, verify = site["server"], site["root"]
    old = link(site, "bob")
    server.exec(
        "python3 -c "
        + shlex.quote(
            "import json; p = " + repr(INVITES_ON_SERVER) + "; d = json.load(open(p)); "
            "d['bob']['expires'] = '2020-01-01T00:00:00Z'; json.dump(d, open(p, 'w'))"
        )
    )
    bob = Hub(URL, "bob", verify=verify)
    refused = bob.claim(old, BOB_PASSWORDS[0])
    assert refused.status_code == 403
    assert "this invitation expired on 2020-01-01T00:00:00Z" in refused.text
    assert not bob.logged_in()
    assert (
        "hub user bob: account jupyter-bob active, no password yet, its invitation expired on "
        "2020-01-01T00:00:00Z" in status(site)
    )
    run = deploy(site, extra=labhost.LOUDEST, reissue_invites=["bob"], **site["acme"])
    new = link(site, "bob")
    assert new != old
    assert token_of(new) not in run.stdout + run.stderr
    assert stat.S_IMODE((INVITES / server.address / "bob.url").stat().st_mode) == 0o600
    assert "bob: account jupyter-bob active, no password yet, invited until" in status(site)
    assert Hub(URL, "bob", verify=verify).claim(old, BOB_PASSWORDS[0]).status_code == 403
    bob.claim(new, BOB_PASSWORDS[0])
    assert bob.logged_in()
    # FirstUse's change-password page, over HTTPS.
    changed = bob.change_password(BOB_PASSWORDS[1])
    assert "changed successfully" in changed.text, changed.text[-1000:]
    assert logs_in("bob", BOB_PASSWORDS[1], verify)
    assert not logs_in("bob", BOB_PASSWORDS[0], verify)


def test_wrong_passwords_past_the_limit_make_the_right_one_wait(site):
    server, verify = site["server"], site["root"]
    for attempt in range(5):
        assert not logs_in("alice", f"not-alices-{attempt}", verify)
    locked_at = time.time()
    alice = Hub(URL, "alice", verify=verify)
    refused = alice.login(PASSWORD)
    assert not alice.logged_in()
    assert "Too many failed logins for alice" in refused.text
    assert "hub user alice: logins refused until" in status(site)
    # Another user is not kept waiting.
    assert logs_in("bob", BOB_PASSWORDS[1], verify)
    log = server.exec("docker logs labhub-hub-1 2>&1")
    assert re.search(r"failed login for alice from [\d.]+ \(5 in a row\)", log), log[-3000:]
    assert re.search(r"login for alice from [\d.]+ refused: too many failed logins", log)
    # Once the first wait (failed_login_wait) is over, the right password works.
    time.sleep(max(0, locked_at + FAILED_LOGIN_WAIT + 1 - time.time()))
    assert logs_in("alice", PASSWORD, verify)


def test_an_admin_resets_a_password_to_a_new_invitation(site):
    server, verify = site["server"], site["root"]
    server.exec("echo kept > /home/jupyter-bob/notes.txt")
    old = link(site, "bob")
    deploy(site, reset_passwords=["bob"], **site["acme"])
    assert not logs_in("bob", BOB_PASSWORDS[1], verify)
    assert link(site, "bob") != old
    bob = Hub(URL, "bob", verify=verify)
    bob.claim(link(site, "bob"), BOB_PASSWORDS[0])
    assert bob.logged_in()
    assert server.exec("cat /home/jupyter-bob/notes.txt") == "kept\n"


def test_an_image_pushed_is_offered_within_seconds(site):
    server = site["server"]
    # bob, whose lab is not running: the hub shows the spawn form (alice's would go to her lab);
    # after his reset, bob's password is the one he chose again with his new invitation.
    bob = Hub(URL, "bob", verify=site["root"])
    bob.login(BOB_PASSWORDS[0])
    assert bob.logged_in()
    assert f"{REGISTRY}/lab:1.0" in dict(form_images(bob.spawn_form()))
    assert PUSHED_IMAGE not in dict(form_images(bob.spawn_form()))
    dockerfile = f"FROM {REGISTRY}/lab:1.0\nLABEL org.opencontainers.image.title=Pushed\n"
    server.exec(
        f"printf %s {shlex.quote(dockerfile)} | docker build -q -t {PUSHED_IMAGE} - "
        f"&& docker push -q {PUSHED_IMAGE}"
    )
    pushed = time.monotonic()
    # Within the hub's freshness window, and the time the form itself takes to come.
    while PUSHED_IMAGE not in dict(form_images(bob.spawn_form())):
        assert time.monotonic() - pushed < IMAGES_FRESH_S + 10, "the pushed image is not offered"
        time.sleep(0.5)
    # Gone again, for the runs after this one (deleted by digest, as an admin would).
    manifests = f"http://{REGISTRY}/v2/pushed/manifests"
    accept = shlex.quote(
        "Accept: application/vnd.docker.distribution.manifest.v2+json, "
        "application/vnd.oci.image.manifest.v1+json"
    )
    server.exec(
        f"digest=$(curl -fsS -o /dev/null -w '%header{{docker-content-digest}}' "
        f"-H {accept} {manifests}/1.0) && curl -fsS -X DELETE {manifests}/$digest"
    )


def test_the_labs_own_certificate_files_replace_only_the_proxy(site):
    server, tmp = site["server"], site["tmp"]
    before = containers(server)
    cert, key = openssl_certificate(tmp, "lab-cert", 90, f"DNS:{DOMAIN}")
    # The key is never shown: not by --dry --diff, not at any verbosity of the run.
    dry = deploy(
        site, extra=("--diff", *labhost.LOUDEST), dry=True, tls="files", tls_cert=cert, tls_key=key
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "/opt/labhub/proxy/key.pem (a secret: content not shown)" in dry.stderr
    run = deploy(site, extra=labhost.LOUDEST, tls="files", tls_cert=cert, tls_key=key)
    for text in (dry.stdout + dry.stderr, run.stdout + run.stderr):
        assert not [part for part in labhost.secret_parts(Path(key)) if part in text]
    after = containers(server)
    assert after["hub"] == before["hub"] and after["registry"] == before["registry"]
    assert after["proxy"] != before["proxy"]
    # The deploy says how long the certificate lasts, and never shows the key.
    assert "89 days left" in run.stdout or "90 days left" in run.stdout, run.stdout[-3000:]
    assert server.exec("stat -c '%a %U' /opt/labhub/proxy/key.pem").strip() == "600 root"
    # The proxy serves exactly that certificate, which a client trusting it verifies.
    assert served_certificate(server.address) == ssl.PEM_cert_to_DER_cert(Path(cert).read_text())
    alice = Hub(URL, "alice", verify=cert)
    alice.login(PASSWORD)
    assert alice.logged_in()
    alice.api_token()
    # The lab started under ACME still runs, and its kernels answer through the new proxy.
    assert alice.server() and alice.server()["ready"]
    assert alice.run("print('files')") == "files\n"


def test_the_local_ca_root_the_deploy_points_to_is_what_browsers_need(site):
    server, tmp = site["server"], site["tmp"]
    before = containers(server)
    run = deploy(site, tls="internal")
    assert LOCAL_CA_ROOT in run.stdout, run.stdout[-3000:]
    after = containers(server)
    assert after["hub"] == before["hub"] and after["proxy"] != before["proxy"]
    # The key of the "files" certificate does not stay on the server.
    assert server.exec("test -e /opt/labhub/proxy/key.pem && echo left || true").strip() == ""
    root = tmp / "local-ca-root.crt"
    root.write_text(server.exec(f"cat {LOCAL_CA_ROOT}"))
    alice = Hub(URL, "alice", verify=str(root))
    alice.login(PASSWORD)
    assert alice.logged_in()
    alice.api_token()
    assert alice.run("print('internal')") == "internal\n"
    # pebble's root does not verify it: the certificate is the local CA's.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{URL}/hub/health", verify=site["root"], timeout=10)
    again = deploy(site, tls="internal")
    assert again.changed == 0, again.changed_operations
