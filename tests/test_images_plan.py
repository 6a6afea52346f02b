"""
Lab image builds and pushes, the hub stack's gates and the rendered hub configuration, without a
host: pyinfra's @fake connector answers the facts, and the dry-run plan shows what would run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from labhub import hub, labhost
from labhub.operations.images import CONTEXT_HASH_LABEL
from labhub.settings import validate

REGISTRY = "127.0.0.1:5000"
LAB = f"{REGISTRY}/lab:1.0"


def settings_data(**extra) -> dict:
    return {"hub_users": ["alice", {"name": "bob", "groups": ["leem"]}], "hub_admins": ["alice"],
            **extra}


def lab_hash(settings) -> str:
    return hub.context_hash(hub.LAB_CONTEXT, hub.ca_bundle(settings),
                            hub.build_args(settings, settings.lab_base_image))


def plan(tmp_path: Path, task: str, responses: dict) -> list[str]:
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        f"hosts = [('@fake', {{'fake_delay': 0, 'fake_delay_jitter': 0, "
        f"'fake_responses': {responses!r}, **{settings_data()!r}}})]\n"
    )
    run = labhost.run_pyinfra(inventory, task, dry=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.planned_changes


def image_fact(labels: dict, repo_digests: list[str]) -> str:
    return json.dumps({"id": "sha256:1", "labels": labels, "repo_digests": repo_digests})


def registry_answer(digest: str | None) -> list[str]:
    if digest is None:
        return ["HTTP/1.1 404 Not Found"]
    return ["HTTP/1.1 200 OK", f"Docker-Content-Digest: {digest}"]


@pytest.fixture
def settings():
    return validate(settings_data())


def test_nothing_built_or_pushed_when_image_and_registry_are_current(tmp_path, settings):
    planned = plan(tmp_path, "tasks/images.py", {
        "docker image inspect": image_fact({CONTEXT_HASH_LABEL: lab_hash(settings)},
                                           [f"{REGISTRY}/lab@sha256:aa"]),
        "/v2/lab/manifests/1.0": registry_answer("sha256:aa"),
    })
    assert f"Build {LAB}" not in planned
    assert f"Push {LAB} to the registry" not in planned


def test_push_only_when_the_registry_lacks_the_tag(tmp_path, settings):
    planned = plan(tmp_path, "tasks/images.py", {
        "docker image inspect": image_fact({CONTEXT_HASH_LABEL: lab_hash(settings)}, []),
        "/v2/lab/manifests/1.0": registry_answer(None),
    })
    assert f"Build {LAB}" not in planned
    assert f"Push {LAB} to the registry" in planned


def test_push_when_the_registry_tag_is_another_image(tmp_path, settings):
    planned = plan(tmp_path, "tasks/images.py", {
        "docker image inspect": image_fact({CONTEXT_HASH_LABEL: lab_hash(settings)},
                                           [f"{REGISTRY}/lab@sha256:aa"]),
        "/v2/lab/manifests/1.0": registry_answer("sha256:bb"),
    })
    assert f"Push {LAB} to the registry" in planned


def test_build_and_push_when_the_context_changed(tmp_path):
    planned = plan(tmp_path, "tasks/images.py", {
        "docker image inspect": image_fact({CONTEXT_HASH_LABEL: "an-older-context"},
                                           [f"{REGISTRY}/lab@sha256:aa"]),
        "/v2/lab/manifests/1.0": registry_answer("sha256:aa"),
    })
    assert f"Build {LAB}" in planned
    assert f"Push {LAB} to the registry" in planned


def test_compose_up_only_when_a_service_differs(tmp_path):
    running = ("hub running h1\nregistry running r1")
    current = plan(tmp_path, "tasks/hub.py", {
        "config --hash": ["hub h1", "registry r1"],
        "docker ps --all": running.splitlines(),
    })
    assert "Bring up the hub stack (docker compose up)" not in current
    changed = plan(tmp_path, "tasks/hub.py", {
        "config --hash": ["hub h2", "registry r1"],
        "docker ps --all": running.splitlines(),
    })
    assert "Bring up the hub stack (docker compose up)" in changed
    stopped = plan(tmp_path, "tasks/hub.py", {
        "config --hash": ["hub h1", "registry r1"],
        "docker ps --all": ["hub exited h1", "registry running r1"],
    })
    assert "Bring up the hub stack (docker compose up)" in stopped


def test_context_hash_covers_files_ca_and_build_args(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    base = hub.context_hash(tmp_path, b"", {"BASE_IMAGE": "a"})
    assert hub.context_hash(tmp_path, b"", {"BASE_IMAGE": "a"}) == base
    assert hub.context_hash(tmp_path, b"ca", {"BASE_IMAGE": "a"}) != base
    assert hub.context_hash(tmp_path, b"", {"BASE_IMAGE": "b"}) != base
    (tmp_path / "requirements.txt").write_text("numpy\n")
    assert hub.context_hash(tmp_path, b"", {"BASE_IMAGE": "a"}) != base


@pytest.mark.parametrize("idle, age, expected", [
    (86400, 604800, ["--timeout=86400", "--max-age=604800", "--cull-every=600"]),
    (0, 3600, [f"--timeout={hub.NEVER}", "--max-age=3600", "--cull-every=600"]),
    (600, 0, ["--timeout=600", "--max-age=0", "--cull-every=300"]),
    (0, 0, None),
])
def test_culler_command(idle, age, expected):
    command = hub.culler_command(validate(settings_data(idle_timeout=idle, max_age=age)))
    assert (command[3:] if command else None) == expected


def load_hub_config(settings, monkeypatch, registry: dict[str, object]) -> dict:
    """Render jupyterhub_config.py and run it with a stand-in for traitlets' config object."""
    text = hub.render("jupyterhub_config.py.j2", settings=hub.hub_config_data(settings))

    class Section(dict):
        def __getattr__(self, key):
            return self[key]

        def __setattr__(self, key, value):
            self[key] = value

    class Config(dict):
        def __getattr__(self, key):
            return self.setdefault(key, Section())

    def urlopen(url, timeout):
        path = url.removeprefix(hub.REGISTRY_INTERNAL_URL)
        if path not in registry:
            raise OSError(f"no route to {url}")
        return _Response(json.dumps(registry[path]).encode())

    config = Config()
    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    # The hub image installs the spawner's module next to the configuration.
    monkeypatch.syspath_prepend(str(hub.HUB_CONTEXT))
    namespace = {"get_config": lambda: config, "__file__": "/etc/labhub/jupyterhub_config.py"}
    exec(compile(text, "jupyterhub_config.py", "exec"), namespace)
    return {"c": config, **namespace}


class _Response(io.BytesIO):
    """What urlopen answers: a body and headers (no Link: one catalog page)."""

    headers: dict = {}


def test_hub_config_offers_registry_images_newest_first(monkeypatch):
    settings = validate(settings_data(lab_images=[{"name": "lab", "version": "1.9"}]))
    config = load_hub_config(settings, monkeypatch, {
        "/v2/_catalog?n=1000": {"repositories": ["gpu", "lab"]},
        "/v2/lab/tags/list": {"tags": ["1.9", "1.10", "1.0"]},
        "/v2/gpu/tags/list": {"tags": ["2024.1"]},
    })
    c = config["c"]
    assert c.FirstUseAuthenticator["create_users"] is False
    assert c.Authenticator["allowed_users"] == {"alice", "bob"}
    assert c.Authenticator["admin_users"] == {"alice"}
    assert c.JupyterHub["cleanup_servers"] is False
    assert c.Spawner["default_url"] == "/lab"
    assert c.DockerSpawner["image"] == f"{REGISTRY}/lab:1.9"
    images = list(c.DockerSpawner["allowed_images"]())
    assert images == [f"{REGISTRY}/lab:1.10", f"{REGISTRY}/lab:1.9", f"{REGISTRY}/lab:1.0",
                      f"{REGISTRY}/gpu:2024.1"]


def test_hub_config_falls_back_to_the_default_image(monkeypatch, settings):
    config = load_hub_config(settings, monkeypatch, {})
    assert list(config["c"].DockerSpawner["allowed_images"]()) == [LAB]


def test_health_check_failure_names_the_service_and_shows_its_logs(tmp_path):
    """A real (not dry) run against @fake: the hub never answers, the run fails and says why."""
    responses = {
        "cat /etc/passwd": ["jupyter-alice:x:1001:100::/home/jupyter-alice:/bin/bash",
                            "jupyter-bob:x:1002:100::/home/jupyter-bob:/bin/bash"],
        "cat /etc/group": ["users:x:100:", "leem:x:1003:jupyter-bob"],
        "/hub/health": ["000"],
        "logs --no-color": ["hub-1  | ValueError: the hub could not start"],
    }
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        f"hosts = [('@fake', {{'fake_delay': 0, 'fake_delay_jitter': 0, "
        f"'fake_responses': {responses!r}, **{settings_data()!r}}})]\n"
    )
    run = labhost.run_pyinfra(inventory, "tasks/hub.py")
    assert run.returncode != 0
    assert ("hub: http://127.0.0.1:8000/hub/health did not answer within 120 s, the stack did "
            "not come up") in run.stderr
    assert "docker compose -f /opt/labhub/compose.yaml logs hub" in run.stderr
    assert "ValueError: the hub could not start" in run.stderr
