"""
The settings model: every bad input is refused with one message naming the setting and the
problem, before pyinfra runs any operation.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labhost.runner import pyinfra_env
from labhub.facts.services import CalendarProblem
from labhub.settings import SettingsError, load_defaults, validate

ROOT = Path(__file__).resolve().parent.parent


def error_of(**data) -> str:
    with pytest.raises(SettingsError) as excinfo:
        validate(data, "lab1")
    message = str(excinfo.value)
    assert message.startswith("invalid labhub settings for lab1:\n")
    return message


def test_defaults_are_valid_and_documented():
    settings = validate({})
    assert settings.docker_source == "docker"
    assert settings.docker_users is None
    assert settings.registry_prune.keep_last == 3
    text = (ROOT / "group_data" / "all.py").read_text()
    for key in load_defaults():
        # One comment a setting, right above it.
        line_before = text.split(f"\n{key} = ", 1)[0].rsplit("\n", 1)[-1]
        assert line_before.startswith("#"), f"{key} has no comment in group_data/all.py"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"hub_user": ["alice"]}, "hub_user: unknown setting (did you mean 'hub_users'?)"),
        (
            {"dokcer_source": "distro"},
            "dokcer_source: unknown setting (did you mean 'docker_source'?)",
        ),
        (
            {"docker_source": "snap"},
            "docker_source: Input should be 'docker' or 'distro' (got 'snap')",
        ),
        (
            {"docker_users": ["Admin User"]},
            "docker_users[0]: 'Admin User' is not a valid Linux user name",
        ),
        ({"docker_users": "admin"}, "docker_users: should be a list (got 'admin')"),
        ({"hub_port": "8000"}, "hub_port: should be a whole number (got '8000')"),
        ({"hub_port": 70000}, "hub_port: Input should be less than or equal to 65535 (got 70000)"),
        ({"registry_port": True}, "registry_port: should be a whole number (got True)"),
        ({"hub_dir": "opt/labhub"}, "hub_dir: 'opt/labhub' must be an absolute path without '..'"),
        (
            {"docker_apt_url": "download.docker.com"},
            "docker_apt_url: 'download.docker.com' is not an http(s) URL",
        ),
        ({"lab_images": []}, "lab_images: should have at least 1 item"),
        (
            {"lab_images": [{"name": "Lab", "version": "1"}]},
            "lab_images[0].name: 'Lab' is not a valid image repository name",
        ),
        ({"lab_images": [{"name": "lab"}]}, "lab_images[0].version: Field required"),
        (
            {"lab_default_image": "lab:9"},
            "lab_default_image: 'lab:9' is not one of lab_images (lab:1.0)",
        ),
        (
            {"lab_images": [{"name": "lab", "version": "1", "context": "files/nolab"}]},
            "lab_images[0].context: 'files/nolab' is not a build folder with a Dockerfile",
        ),
        (
            {"build_ca_bundle": "/nonexistent/ca.pem"},
            "build_ca_bundle: '/nonexistent/ca.pem' cannot be read on this machine",
        ),
        ({"build_ca_bundle": __file__}, "is not a PEM CA bundle (no BEGIN CERTIFICATE)"),
        ({"idle_timeout": -1}, "idle_timeout: Input should be greater than or equal to 0 (got -1)"),
        (
            {"registry_prune": {"keep_last": 0}},
            "registry_prune.keep_last: Input should be greater than or equal to 1 (got 0)",
        ),
        ({"registry_prune": {"keep_tag": ["x"]}}, "registry_prune.keep_tag: unknown setting"),
        (
            {"registry_prune": {"keep_tags": ["v[0-9"]}},
            "registry_prune.keep_tags[0]: 'v[0-9' is not a valid regular expression",
        ),
        (
            {"registry_prune_apply": "yes"},
            "registry_prune_apply: should be true or false (got 'yes')",
        ),
    ],
)
def test_bad_input_names_the_setting_and_problem(data, expected):
    assert expected in error_of(**data)


def test_every_problem_is_reported_at_once():
    message = error_of(hub_port="x", docker_source="snap", hub_usres=[])
    assert "hub_port:" in message and "docker_source:" in message and "hub_usres:" in message


def test_connector_settings_and_global_arguments_are_not_ours():
    settings = validate({"ssh_user": "admin", "ssh_key": "/k", "_sudo": True, "fake_delay": 0})
    assert settings.docker_source == "docker"


def test_partial_prune_policy_keeps_other_defaults():
    policy = validate({"registry_prune": {"keep_last": 5}}).registry_prune
    assert (policy.keep_last, policy.keep_tags, policy.older_than_days) == (5, ("^latest$",), None)


def test_cli_stops_before_any_operation():
    """Through pyinfra's own CLI: the error is shown and no operation starts."""
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("pyinfra")),
            "@fake/lab1",
            "deploy.py",
            "-y",
            "--data",
            'docker_source="snap"',
            "--data",
            'hub_users=["Alice"]',
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=pyinfra_env(),
    )
    assert proc.returncode != 0
    assert "invalid labhub settings for @fake/lab1:" in proc.stderr
    assert "docker_source: Input should be 'docker' or 'distro' (got 'snap')" in proc.stderr
    assert "hub_users[0].name: 'Alice' is not a valid hub user name" in proc.stderr
    assert "Starting operation" not in proc.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_calendar_fact_reports_what_systemd_does_not_parse():
    """The fact's command, run by a shell as the host runs it: systemd's own words for a bad
    schedule, nothing for a good one."""

    def run(event: str) -> str:
        command = CalendarProblem().command(event)
        output = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
        return CalendarProblem().process(output.stdout.splitlines())

    assert "Failed to parse calendar specification 'dayly'" in run("dayly")
    assert run("Mon..Fri 23:00") == "" and run("*-*-* 02:30:00") == ""
