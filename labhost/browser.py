"""
A real browser for the end-to-end tests and the benchmarks: Debian's Chromium, headless, driven
through Debian's ChromeDriver (./dev installs both; nothing is downloaded for the browser), each
session in a throwaway profile, so that nothing is cached from one session to the next.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Without the background-networking flags Chromium keeps calling out of this closed network:
# nothing else on the wire than the hub's pages.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)


@contextmanager
def chromium(*flags: str, capabilities: dict | None = None) -> Iterator[webdriver.Chrome]:
    """A new Chromium session with ``CHROMIUM_FLAGS`` and ``flags``, quit and its profile
    removed afterwards."""
    profile = tempfile.mkdtemp(prefix="labhub-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, *flags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    for name, value in (capabilities or {}).items():
        options.set_capability(name, value)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
