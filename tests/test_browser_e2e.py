"""
The hub as a lab member sees it, in a real browser: Debian's Chromium driven by selenium through
Debian's chromedriver, against the shared lab server (conftest.py) with the whole deploy. Log in
through the form, pick an image on the spawn form, use JupyterLab (launcher, terminal, notebook,
file browser); a second user in a fresh browser; a package installed with pip in a terminal kept
across a lab restart; a broken image pushed to the registry.

Screenshots of each step are kept in artifacts/browser/ (ignored by git), numbered in order.

On the shared lab, where alice has logged in before (with the scenario's password): this module
adds a lab volume and plain HTTP, and leaves no lab running and no broken image behind.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shlex
import shutil
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hubclient import Hub
from scenario import (
    PASSWORDS,
    REGISTRY,
    ScenarioLab,
    make_shares_writable_as_mounted,
    until_images_fresh,
)
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

import labhost
from labhost.browser import chromium

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
LAB_VOLUME = "/srv/lab-volumes/projects"
LAB_IMAGE = f"{REGISTRY}/lab:1.0"
BROKEN_IMAGE = f"{REGISTRY}/broken:1.0"


def hub_url(server: labhost.LabServer) -> str:
    """Where a lab member's browser reaches the hub: the one place to change for HTTPS."""
    return f"http://{server.address}:8000"


@pytest.fixture(scope="module")
def hub(shared_lab):
    deployed = deploy_hub(shared_lab)
    yield deployed
    # For the modules after this one on the shared lab: no lab running and the registry as the
    # scenario has it (they deploy the scenario's settings again themselves).
    for user, password in PASSWORDS.items():
        client = Hub(deployed["url"], user)
        client.login(password)
        client.api_token()
        stop(client)
    delete_image(deployed["server"], BROKEN_IMAGE)


def deploy_hub(lab: ScenarioLab) -> dict:
    lab_server = lab.server
    # Plain HTTP on the hub's port: what a browser meets over HTTPS is tests/test_https_e2e.py's.
    lab.deploy_with(
        __name__, tls="off", lab_volumes=[{"host_path": LAB_VOLUME, "container_path": "projects"}]
    )
    make_shares_writable_as_mounted(lab_server)
    lab_server.exec(f"mkdir -p {LAB_VOLUME} && chmod 1777 {LAB_VOLUME}")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return {
        "server": lab_server,
        "url": hub_url(lab_server),
        "uids": {user: int(lab_server.exec(f"id -u jupyter-{user}")) for user in PASSWORDS},
    }


def delete_image(server: labhost.LabServer, image: str) -> None:
    """Delete an image from the registry by its API, as an admin who pushed it by mistake."""
    repository, tag = image[len(REGISTRY) + 1 :].rsplit(":", 1)
    manifests = f"http://{REGISTRY}/v2/{repository}/manifests"
    accept = shlex.quote(
        "Accept: application/vnd.docker.distribution.manifest.v2+json, "
        "application/vnd.oci.image.manifest.v1+json"
    )
    server.exec(
        f"digest=$(curl -fsS -o /dev/null -w '%header{{docker-content-digest}}' "
        f"-H {accept} {manifests}/{tag}) && curl -fsS -X DELETE {manifests}/$digest"
    )


def form_image(item) -> dict:
    """One image of the spawn form: name, title, description, value, checked."""

    def texts(css: str) -> str:
        return " ".join(e.text for e in item.find_elements(By.CSS_SELECTOR, css))

    choice = item.find_element(By.CSS_SELECTOR, "input")
    return {
        "name": item.find_element(By.CSS_SELECTOR, ".labhub-image-name").text,
        "title": texts(".labhub-image-title"),
        "description": texts(".labhub-image-description"),
        "value": choice.get_attribute("value"),
        "checked": choice.is_selected(),
    }


class Browser:
    """A lab member's browser session: one Chromium with an empty profile."""

    shots = 0

    def __init__(self, driver: WebDriver, url: str, user: str):
        self.driver, self.url, self.user = driver, url, user

    def shot(self, step: str) -> None:
        Browser.shots += 1
        self.driver.save_screenshot(str(ARTIFACTS / f"{Browser.shots:02d}-{self.user}-{step}.png"))

    def wait(self, condition, timeout: float = 60, step: str = "wait"):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.5).until(
                lambda driver: condition()
            )
        except TimeoutException:
            self.shot(f"timed-out-{step}")
            raise AssertionError(
                f"{self.user}: {step} did not happen within {timeout} s, at "
                f"{self.driver.current_url}:\n{self.text()[-2000:]}"
            ) from None

    def find(self, css: str):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def login(self, password: str) -> None:
        self.driver.get(f"{self.url}/hub/login")
        self.wait(lambda: self.find("#username_input"), step="login form")
        self.find("#username_input")[0].send_keys(self.user)
        self.find("#password_input")[0].send_keys(password)
        self.shot("login")
        self.find("#login_submit")[0].click()
        self.wait(lambda: "/hub/login" not in self.driver.current_url, step="login")

    def spawn_form(self) -> list[dict]:
        """The images the spawn form offers: name, title, description, value, checked."""
        self.driver.get(f"{self.url}/hub/spawn")

        def read() -> list[dict] | None:
            try:
                return [form_image(item) for item in self.find(".labhub-image")] or None
            except StaleElementReferenceException:  # the page was loaded again meanwhile
                return None

        return self.wait(read, step="spawn form")

    def start(self, image: str) -> None:
        """Pick an image on the (shown) spawn form and press Start."""
        self.driver.find_element(By.CSS_SELECTOR, f'input[name="image"][value="{image}"]').click()
        self.find("#spawn_form [type=submit]")[0].click()

    def wait_for_launcher(self) -> None:
        self.wait(lambda: self.find(".jp-Launcher"), timeout=180, step="JupyterLab's launcher")

    def launch(self, label: str) -> None:
        """Click a launcher card by its label (Terminal, Python 3 (ipykernel)...)."""
        cards = [
            card for card in self.find(".jp-LauncherCard") if card.text.strip().startswith(label)
        ]
        assert cards, [card.text for card in self.find(".jp-LauncherCard")]
        cards[0].click()

    def file_browser(self) -> list[str]:
        return [item.text for item in self.find(".jp-DirListing-item .jp-DirListing-itemText")]

    def terminal_text(self) -> str:
        # xterm.js draws on a canvas; with screenReaderMode (a user setting) it also keeps the
        # rows as text.
        return "\n".join(
            row.get_attribute("textContent")
            for row in self.find(".jp-Terminal .xterm-accessibility-tree")
        )

    def type_in_terminal(self, line: str) -> None:
        self.find(".jp-Terminal .xterm-screen")[0].click()
        ActionChains(self.driver).send_keys(line + Keys.ENTER).perform()


@contextmanager
def browser(url: str, user: str) -> Iterator[Browser]:
    with chromium() as driver:
        yield Browser(driver, url, user)


@pytest.fixture(scope="module")
def alice(hub):
    with browser(hub["url"], "alice") as session:
        yield session


@pytest.fixture(scope="module")
def alice_api(hub, alice):
    """alice's API client, once she has logged in (her first login set the password)."""
    client = Hub(hub["url"], "alice")
    client.login(PASSWORDS["alice"])
    client.api_token()
    return client


def probe_wheel() -> tuple[str, bytes]:
    """A pure-Python wheel made here, so pip installs it without any index."""
    files = {
        "labhub_probe.py": b"WHERE = 'installed by alice'\n",
        "labhub_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: labhub-probe\nVersion: 1.0\n",
        "labhub_probe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: labhub-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }

    def digest(data: bytes) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    record = "".join(f"{name},sha256={digest(data)},{len(data)}\n" for name, data in files.items())
    files["labhub_probe-1.0.dist-info/RECORD"] = (
        record + "labhub_probe-1.0.dist-info/RECORD,,\n"
    ).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return "labhub_probe-1.0-py3-none-any.whl", out.getvalue()


# --- The tests, in the order a lab member goes ---------------------------------------------------


def test_login_shows_the_spawn_form_with_image_names_and_descriptions(alice):
    alice.login(PASSWORDS["alice"])
    images = alice.spawn_form()
    alice.shot("spawn-form")
    assert images == [
        {
            "name": "lab 1.0",
            "title": "Python lab",
            "description": "JupyterLab with NumPy, pandas and Matplotlib, and git",
            "value": LAB_IMAGE,
            "checked": True,
        }
    ]
    assert REGISTRY not in alice.text()


def test_start_opens_jupyterlab_without_its_news_prompt(alice, alice_api):
    alice.start(LAB_IMAGE)
    alice.wait_for_launcher()
    alice.shot("launcher")
    news = alice_api.lab("GET", "/lab/api/settings/@jupyterlab/apputils-extension:notification")
    # The lab image's overrides.json is JupyterLab's default for every user.
    assert news.json()["schema"]["properties"]["fetchNews"]["default"] == "false"
    assert "official Jupyter news" not in alice.text()


def test_terminal_prompt_names_the_user_and_pip_installs_into_the_home(hub, alice, alice_api):
    server, uid = hub["server"], hub["uids"]["alice"]
    wheel, data = probe_wheel()
    put = alice_api.lab(
        "PUT",
        f"/api/contents/{wheel}",
        json={"type": "file", "format": "base64", "content": base64.b64encode(data).decode()},
    )
    assert put.status_code in (200, 201), put.text
    # A user setting: xterm.js then keeps its rows as text next to its canvas.
    setting = alice_api.lab(
        "PUT",
        "/lab/api/settings/@jupyterlab/terminal-extension:plugin",
        json={"raw": '{"screenReaderMode": true}'},
    )
    assert setting.status_code == 204, setting.text
    alice.driver.refresh()
    alice.wait_for_launcher()

    alice.launch("Terminal")
    alice.wait(lambda: "jupyter-alice@" in alice.terminal_text(), step="the terminal's prompt")
    alice.type_in_terminal("id")
    alice.wait(
        lambda: f"uid={uid}(jupyter-alice) gid=100(users)" in alice.terminal_text(), step="id"
    )
    assert "(leem)" in alice.terminal_text()
    alice.type_in_terminal(f"pip install --no-index ~/{wheel}")
    alice.wait(
        lambda: "Successfully installed labhub-probe-1.0" in alice.terminal_text(),
        timeout=90,
        step="pip install",
    )
    alice.shot("terminal")
    installed = server.exec(
        "find /home/jupyter-alice/.local -name labhub_probe.py -printf '%u %p\\n'"
    ).split()
    assert installed[0] == "jupyter-alice", installed


def test_a_notebook_cell_prints_the_users_name_and_uid(hub, alice, alice_api):
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": "import getpass, os\nprint(getpass.getuser(), os.getuid())",
            }
        ],
        "metadata": {
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            }
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    put = alice_api.lab(
        "PUT",
        "/api/contents/whoami.ipynb",
        json={"type": "notebook", "format": "json", "content": notebook},
    )
    assert put.status_code in (200, 201), put.text
    alice.driver.get(f"{alice.url}/user/alice/lab/tree/whoami.ipynb")

    def cell_editor():
        return [
            editor
            for editor in alice.find(".jp-Notebook .jp-Cell .jp-InputArea-editor")
            if editor.is_displayed()
        ]

    # Run once its kernel is idle: JupyterLab drops a run asked for while it connects.
    alice.wait(
        lambda: (
            accept_kernel_dialog(alice)
            or (cell_editor() and not alice.find(".jp-Dialog") and "| Idle" in alice.text())
        ),
        timeout=120,
        step="the notebook",
    )
    cell_editor()[0].click()
    ActionChains(alice.driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(
        Keys.SHIFT
    ).perform()
    # Run before its kernel is up, the cell waits for it.
    expected = f"jupyter-alice {hub['uids']['alice']}"
    alice.wait(
        lambda: (
            accept_kernel_dialog(alice)
            or any(expected in out.text for out in alice.find(".jp-OutputArea-output"))
        ),
        timeout=120,
        step="the cell's output",
    )
    alice.shot("notebook")


def accept_kernel_dialog(session: Browser) -> bool:
    """JupyterLab may ask which kernel a notebook runs: its own (Python 3), as a user answers."""
    for button in session.find(".jp-Dialog .jp-mod-accept"):
        button.click()
    return False


def test_git_takes_the_name_from_the_account(alice_api):
    out = alice_api.run(
        "import subprocess, tempfile\n"
        "repo = tempfile.mkdtemp()\n"
        "git = lambda *a: subprocess.run(['git', '-C', repo, *a], check=True,\n"
        "                                capture_output=True, text=True).stdout\n"
        "git('init', '-q')\n"
        "git('config', 'user.email', 'alice@example.org')\n"
        "git('commit', '-q', '--allow-empty', '-m', 'first')\n"
        "print(git('log', '--format=%an <%ae>'))"
    )
    assert out.strip() == "alice <alice@example.org>"


def test_the_file_browser_shows_the_lab_volume(alice):
    alice.driver.get(f"{alice.url}/user/alice/lab/tree/")
    alice.wait(lambda: "projects" in alice.file_browser(), step="the lab volume")
    assert {"projects", "data", "scratch", "whoami.ipynb"} <= set(alice.file_browser())
    alice.shot("file-browser")


def test_a_second_user_sees_their_own_home_only(hub):
    with browser(hub["url"], "bob") as bob:
        bob.login(PASSWORDS["bob"])
        assert [image["name"] for image in bob.spawn_form()] == ["lab 1.0"]
        bob.start(LAB_IMAGE)
        bob.wait_for_launcher()
        bob.driver.get(f"{bob.url}/user/bob/lab/tree/")
        bob.wait(lambda: "projects" in bob.file_browser(), step="bob's file browser")
        bob.shot("file-browser")
        listing = set(bob.file_browser())
        assert "whoami.ipynb" not in listing and "scratch" not in listing, listing
    bob_api = Hub(hub["url"], "bob")
    bob_api.login(PASSWORDS["bob"])
    bob_api.api_token()
    out = bob_api.run(
        "import getpass, importlib.util, os\n"
        "print(getpass.getuser(), os.getuid(), os.environ['HOME'],\n"
        "      importlib.util.find_spec('labhub_probe') is None)"
    )
    assert out.split() == ["jupyter-bob", str(hub["uids"]["bob"]), "/home/jovyan", "True"]
    bob_api.api("DELETE", "/hub/api/users/bob/server")


def stop(client: Hub) -> None:
    client.api("DELETE", f"/hub/api/users/{client.user}/server")
    deadline = time.monotonic() + 60
    while client.server() is not None:
        assert time.monotonic() < deadline, f"{client.user}'s lab did not stop"
        time.sleep(1)


def test_a_package_installed_with_pip_is_kept_across_a_lab_restart(alice_api):
    stop(alice_api)
    alice_api.start()
    out = alice_api.run("import labhub_probe\nprint(labhub_probe.WHERE, labhub_probe.__file__)")
    assert out.startswith("installed by alice /home/jovyan/.local/lib/python3"), out


def test_a_broken_image_fails_its_spawn_with_a_message_naming_it(hub, alice, alice_api):
    server = hub["server"]
    # An image pushed by mistake: it starts no Jupyter server.
    dockerfile = (
        f"FROM {LAB_IMAGE}\n"
        'LABEL org.opencontainers.image.title="Not a lab" '
        'org.opencontainers.image.description="Pushed by mistake"\n'
        'CMD ["false"]\n'
    )
    server.exec(
        f"printf %s {shlex.quote(dockerfile)} | docker build -q -t {BROKEN_IMAGE} - "
        f"&& docker push -q {BROKEN_IMAGE}"
    )
    pushed = time.monotonic()
    stop(alice_api)
    until_images_fresh(pushed)
    images = alice.spawn_form()
    assert [(i["name"], i["checked"]) for i in images] == [("lab 1.0", True), ("broken 1.0", False)]
    alice.start(BROKEN_IMAGE)
    # Shorter than the hub's http_timeout: the spawn fails as its container stops, not later;
    # on the spawn form when that is within the first second, else on the progress page.
    alice.wait(
        lambda: "cannot start a Jupyter server" in alice.text(), timeout=90, step="the failed spawn"
    )
    alice.shot("broken-image")
    assert "The image broken 1.0 cannot start a Jupyter server" in alice.text()

    # The next spawn, with the image the form offers first, works.
    images = alice.spawn_form()
    assert images[0]["name"] == "lab 1.0" and images[0]["checked"]
    alice.start(LAB_IMAGE)
    # JupyterLab again, with the tabs she left open.
    alice.wait(
        lambda: alice.find(".jp-LabShell #jp-main-dock-panel"),
        timeout=180,
        step="JupyterLab after the broken image",
    )
    alice.shot("after-broken-image")
