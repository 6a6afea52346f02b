"""
Where lab members wait: a class logging in for the first time at once, one spawn alone, and a
real browser's first JupyterLab load, over HTTPS through the hub's proxy as users reach it.

A fresh lab server (``labhost``) gets the whole deploy with the end-to-end tests' lab image and
hub users enough for every round. Then, each user new (a first login sets the password):

- N users at once (N = 10, 20, 40), each: the login form, the spawn form, a spawn of the image
  the form preselects, a file saved and read back through the contents API, a kernel answering.
  Reported: how many succeeded, the median and the slowest, from the start of the round. Each
  round's labs are stopped before the next;
- one user alone: the same, and the spawn itself (from the spawn request to the lab ready);
- a real browser (Debian's Chromium and chromedriver, through selenium) with an empty profile:
  the time from pressing Start on the spawn form to JupyterLab's launcher, and the bytes it
  received meanwhile (on the wire, and the content they carried), unthrottled and over a link
  like a lab member's at home (Chromium's network emulation: 20 Mbit/s down, 5 up, 40 ms).

    .venv/bin/python benchmarks/first_logins.py [--rounds 10,20,40] [--keep NAME] [--tag T]

``--keep NAME`` reuses (and leaves running) the lab server NAME: the deploy runs again (the code
of this checkout), and the users an earlier run logged in are no longer new: ``--tag T`` names
this run's users anew.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from hubclient import Hub, form_images, resolving  # noqa: E402
from scenario import DOMAIN, URL, deploy_data, local_ca_root  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

import labhost  # noqa: E402
from labhost.browser import chromium  # noqa: E402

# A lab member at home on the lab's VPN, in Chromium's units (bytes per second, milliseconds).
HOME_LINK = {
    "offline": False,
    "latency": 40,
    "downloadThroughput": 20_000_000 / 8,
    "uploadThroughput": 5_000_000 / 8,
}


def password(user: str) -> str:
    return f"{user}-first-login"


def first_login(user: str, verify: str) -> tuple[float, float]:
    """One user's first login to a kernel answering: (seconds in all, seconds of the spawn)."""
    start = time.monotonic()
    hub = Hub(URL, user, verify=verify)
    hub.login(password(user))
    if not hub.logged_in():
        raise RuntimeError(f"{user} is not logged in")
    hub.api_token()
    images = [ref for ref, checked in form_images(hub.spawn_form()) if checked]
    spawn = time.monotonic()
    hub.start(images[0] if images else None, timeout=600)
    spawned = time.monotonic() - spawn
    saved = hub.lab(
        "PUT",
        "/api/contents/hello.txt",
        json={"type": "file", "format": "text", "content": f"hello from {user}"},
    )
    saved.raise_for_status()
    if hub.lab("GET", "/api/contents/hello.txt").json()["content"] != f"hello from {user}":
        raise RuntimeError(f"{user}'s file did not come back")
    if hub.run("print(6 * 7)", timeout=300) != "42\n":
        raise RuntimeError(f"{user}'s kernel did not answer")
    return time.monotonic() - start, spawned


def stop_all(users: list[str], verify: str) -> None:
    def stop(user: str) -> None:
        hub = Hub(URL, user, verify=verify)
        hub.login(password(user))
        if not hub.logged_in():
            return
        hub.api_token()
        hub.api("DELETE", f"/hub/api/users/{user}/server")
        deadline = time.monotonic() + 120
        while hub.server() is not None and time.monotonic() < deadline:
            time.sleep(1)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(stop, users))


def crowd(users: list[str], verify: str) -> dict:
    """All of ``users`` at once; each one's seconds from the common start to its kernel."""
    gate = threading.Barrier(len(users))
    results: list[float | None] = []
    errors: list[str] = []
    start: list[float] = []
    lock = threading.Lock()

    def one(user: str) -> None:
        gate.wait()
        with lock:
            if not start:
                start.append(time.monotonic())
        try:
            first_login(user, verify)
            results.append(time.monotonic() - start[0])
        except Exception as e:  # a failed login counts as one, with why
            errors.append(f"{user}: {type(e).__name__}: {str(e)[:200]}")

    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(one, users))
    done = sorted(results)
    return {
        # The machine's load meanwhile: figures of a busy machine are not an idle one's.
        "load_1min": os.getloadavg()[0],
        "n": len(users),
        "ok": len(done),
        "median_s": statistics.median(done) if done else None,
        "slowest_s": done[-1] if done else None,
        "errors": errors[:5],
    }


def browser_load(user: str, address: str, throttled: bool) -> dict:
    """Start on the spawn form to JupyterLab's launcher in a new browser: seconds and bytes."""
    # The hub's name resolves to the lab server, as a DNS record would; the proxy's local CA is
    # not in this throwaway profile's trust (its first load caches nothing either way).
    with chromium(
        f"--host-resolver-rules=MAP {DOMAIN} {address}",
        "--ignore-certificate-errors",
        capabilities={"goog:loggingPrefs": {"performance": "ALL"}},
    ) as driver:
        driver.execute_cdp_cmd("Network.enable", {})
        if throttled:
            driver.execute_cdp_cmd("Network.emulateNetworkConditions", HOME_LINK)
        wait = WebDriverWait(driver, 180, poll_frequency=0.2)
        driver.get(f"{URL}/hub/login")
        wait.until(lambda d: d.find_elements(By.ID, "username_input"))
        driver.find_element(By.ID, "username_input").send_keys(user)
        driver.find_element(By.ID, "password_input").send_keys(password(user))
        driver.find_element(By.ID, "login_submit").click()
        wait.until(lambda d: "/hub/login" not in d.current_url)
        driver.get(f"{URL}/hub/spawn")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#spawn_form [type=submit]"))
        driver.get_log("performance")  # what came before Start is not counted
        start = time.monotonic()
        driver.find_element(By.CSS_SELECTOR, "#spawn_form [type=submit]").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Launcher"))
        seconds = time.monotonic() - start
        wire = content = 0
        encoded: dict[str, str] = {}
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.loadingFinished":
                wire += params.get("encodedDataLength", 0)
            elif message["method"] == "Network.dataReceived":
                content += params.get("dataLength", 0)
            elif message["method"] == "Network.responseReceived":
                headers = {k.lower(): v for k, v in params["response"]["headers"].items()}
                encoded[params["response"]["url"]] = headers.get("content-encoding", "")
        return {
            "seconds": seconds,
            "wire_bytes": wire,
            "content_bytes": content,
            "responses": len(encoded),
            "compressed": sum(1 for e in encoded.values() if e),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", default="10,20,40", help="users at once, each round")
    parser.add_argument("--keep", metavar="NAME", help="reuse and keep the lab server NAME")
    parser.add_argument("--tag", default="", help="a prefix of this run's user names")
    args = parser.parse_args()
    rounds = [int(n) for n in args.rounds.split(",") if n]
    tag = args.tag
    crowds = {n: [f"{tag}c{n}u{i:02d}" for i in range(n)] for n in rounds}
    solo, browsers = f"{tag}solo", {False: f"{tag}webfast", True: f"{tag}webslow"}
    users = [u for names in crowds.values() for u in names] + [solo, *browsers.values()]

    if args.keep:
        workdir = ROOT / ".labhub" / args.keep
        server = labhost.find_lab_server(args.keep, workdir)
        if server is None:
            server = labhost.start_lab_server(name=args.keep, workdir=workdir, stand_ins=True)
    else:
        server = labhost.start_lab_server(stand_ins=True)
    figures: dict = {}
    try:
        folder = Path(tempfile.mkdtemp(prefix="labhub-bench-"))
        # The scenario's settings (HTTPS at DOMAIN with the proxy's local CA), with these users.
        data = {**deploy_data(folder, labhost.load_stack_images(server)), "hub_users": users}
        for setting in ("hub_admins", "shares"):
            data.pop(setting)
        inventory = server.inventory_file(data)
        start = time.monotonic()
        labhost.run_pyinfra(inventory, "deploy.py").check()
        print(f"deploy: {time.monotonic() - start:.1f} s", flush=True)
        verify = local_ca_root(server, folder)
        with resolving(DOMAIN, lambda: server.address):
            for n, names in crowds.items():
                figures[f"crowd_{n}"] = result = crowd(names, verify)
                times = (
                    f", median {result['median_s']:.1f} s, slowest {result['slowest_s']:.1f} s"
                    if result["ok"]
                    else ""
                )
                print(
                    f"{n} at once: {result['ok']}/{n} succeeded{times} "
                    f"(load {result['load_1min']:.1f})"
                    + (f"; failures: {result['errors']}" if result["errors"] else ""),
                    flush=True,
                )
                stop_all(names, verify)
            total, spawn = first_login(solo, verify)
            figures["single"] = {"first_login_s": total, "spawn_s": spawn}
            print(f"one alone: {total:.1f} s to a kernel, the spawn {spawn:.1f} s", flush=True)
            stop_all([solo], verify)
            for throttled, user in browsers.items():
                try:
                    load = browser_load(user, server.address, throttled)
                except Exception as e:  # said, and the other figures still printed
                    print(f"browser, throttled={throttled}: {type(e).__name__} {e}", flush=True)
                    continue
                figures["browser_" + ("home_link" if throttled else "bridge")] = load
                print(
                    f"browser Start→launcher, {'20/5 Mbit/s 40 ms' if throttled else 'bridge'}: "
                    f"{load['seconds']:.1f} s, {load['wire_bytes'] / 1e6:.2f} MB on the wire "
                    f"for {load['content_bytes'] / 1e6:.2f} MB of content "
                    f"({load['compressed']} of {load['responses']} responses compressed)",
                    flush=True,
                )
                stop_all([user], verify)
    finally:
        if not args.keep:
            server.remove()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
