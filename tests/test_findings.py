"""
What ``tasks/status.py`` reports, from the facts as a host answers them: one case a file in
``tests/cases/findings/`` (the settings, when the facts were read, what each fact read, with
``backup`` the ``BackupStatus`` fact where the case has backups, ``rolled_back`` the mark of a hub
upgrade that was rolled back, ``logins`` the ``HubLogins`` fact, and the findings expected, in
order, each ``[what was found, the problem or null]``). A fact a case leaves out is as
``LabStatus`` reads a host that answers nothing.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from case_files import admin_files, cases, resolve

from labhub import findings
from labhub.facts.status import LabStatus
from labhub.settings import validate
from labhub.stack import Stack


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    return admin_files(tmp_path_factory.mktemp("admin"))


@pytest.mark.parametrize("case", cases("findings"))
def test_findings(case, files):
    settings = validate(resolve(case["settings"], files))
    found = findings.findings(
        settings,
        Stack.from_settings(settings),
        {**LabStatus().process([]), **case["status"]},
        case["accounts"],
        case["mounts"],
        case["registry"],
        case["containers"],
        datetime.fromisoformat(case["now"]),
        case.get("backup"),
        case.get("rolled_back"),
        seen_logins=case.get("logins"),
    )
    assert [list(finding) for finding in found] == case["findings"]


def test_the_cases_cover_every_problem():
    """Each kind of problem status reports is in some case."""
    problems = [
        problem
        for case in cases("findings")
        for _, problem in case.values[0]["findings"]
        if problem
    ]
    for words in (
        "does not answer",
        "answers HTTP",
        "serves no certificate",
        "renew tls_cert",
        "has not renewed it",
        "there is no host account",
        "is locked",
        "not even its automount",
        "(its server does not answer?)",
        "the disk is nearly full",
        "cannot be read",
        "has no labhub snapshot",
        "older than backup_schedule",
        "the last backup failed",
        "backups do not run at backup_schedule",
        "is not there: deploy",
        "with its previous files",
    ):
        assert any(words in problem for problem in problems), words


def test_the_hub_is_asked_through_the_proxy_from_the_server():
    https = validate({"hub_domain": "hub.lab.example.org", "https_port": 8443})
    assert findings.hub_url(https) == "https://hub.lab.example.org:8443"
    assert findings.hub_curl_args(https) == (
        "--insecure",
        "--resolve",
        "hub.lab.example.org:8443:127.0.0.1",
    )
    plain = validate({"tls": "off", "hub_port": 8080})
    assert findings.hub_url(plain) == "http://127.0.0.1:8080"
    assert findings.hub_curl_args(plain) == ()
