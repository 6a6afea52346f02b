"""
The proxy's configuration (Caddy's own JSON), the files it reads beside it and where Caddy keeps
the certificate it obtains, from the settings: one case a file in ``tests/cases/proxy/`` (the
settings; parts of the configuration by their path in it, ``""`` the whole; the files by name
with the admin's file each holds; ``config`` null: no proxy at all).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from case_files import admin_files, cases, resolve

from labhub import caddy
from labhub.settings import validate


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    return admin_files(tmp_path_factory.mktemp("admin"))


def part(config, path: str):
    for key in filter(None, path.split("/")):
        config = config[int(key)] if isinstance(config, list) else config[key]
    return config


@pytest.mark.parametrize("case", cases("proxy"))
def test_proxy(case, files):
    settings = validate(resolve(case["settings"], files))
    text = caddy.config_text(settings)
    if case["config"] is None:
        assert text == ""
    else:
        config = json.loads(text)
        for path, expected in case["config"].items():
            assert part(config, path) == expected, path
    assert caddy.files(settings) == {
        name: Path(files[label]).read_bytes() for name, label in case["files"].items()
    }
    if "obtained_certificate" in case:
        assert caddy.obtained_certificate(settings) == case["obtained_certificate"]


def test_the_digest_changes_with_the_configuration_and_each_file():
    base = caddy.digest("{}", {"cert.pem": b"a", "key.pem": b"b"})
    assert caddy.digest("{}", {"key.pem": b"b", "cert.pem": b"a"}) == base
    assert caddy.digest("{ }", {"cert.pem": b"a", "key.pem": b"b"}) != base
    assert caddy.digest("{}", {"cert.pem": b"a", "key.pem": b"c"}) != base
    # A file's name counts, not only its content.
    assert caddy.digest("{}", {"cert.pem": b"a", "other.pem": b"b"}) != base
    assert caddy.digest("{}", {}) != base
