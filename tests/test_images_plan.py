"""
Lab image builds and pushes, the hub stack's gates and the rendered hub configuration, without a
host: pyinfra's @fake connector answers the facts, and the dry-run plan shows what would run.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from registry_server import LocalRegistry, free_port, make_image

import labhost
from labhub import stack
from labhub.registry import CLIENT_SOURCE_FILE
from labhub.settings import validate
from labhub.stack import CONTEXT_HASH_LABEL

REGISTRY = "127.0.0.1:5000"
LAB = f"{REGISTRY}/lab:1.0"


def settings_data(**extra) -> dict:
    return {
        "hub_users": ["alice", {"name": "bob", "groups": ["leem"]}],
        "hub_admins": ["alice"],
        "hub_domain": "hub.lab.example.org",
        **extra,
    }


def lab_hash(settings) -> str:
    return stack.lab_builds(settings)[0].content_hash


def dry_run(tmp_path: Path, task: str, responses: dict) -> labhost.PyinfraRun:
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        f"hosts = [('@fake', {{'fake_delay': 0, 'fake_delay_jitter': 0, "
        f"'fake_responses': {responses!r}, **{settings_data()!r}}})]\n"
    )
    run = labhost.run_pyinfra(inventory, task, dry=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def plan(tmp_path: Path, task: str, responses: dict) -> list[str]:
    return dry_run(tmp_path, task, responses).planned_changes


def image_fact(labels: dict, repo_digests: list[str]) -> str:
    """What ``docker image inspect`` prints (pyinfra's DockerImage fact reads it)."""
    return json.dumps(
        [{"Id": "sha256:1", "Config": {"Labels": labels}, "RepoDigests": repo_digests}]
    )


def registry_answer(digest: str | None) -> list[str]:
    if digest is None:
        return ["HTTP/1.1 404 Not Found"]
    return ["HTTP/1.1 200 OK", f"Docker-Content-Digest: {digest}"]


@pytest.fixture
def settings():
    return validate(settings_data())


def test_nothing_built_or_pushed_when_image_and_registry_are_current(tmp_path, settings):
    planned = plan(
        tmp_path,
        "tasks/images.py",
        {
            "docker image inspect": image_fact(
                {CONTEXT_HASH_LABEL: lab_hash(settings)}, [f"{REGISTRY}/lab@sha256:aa"]
            ),
            "/v2/lab/manifests/1.0": registry_answer("sha256:aa"),
        },
    )
    assert f"Build {LAB}" not in planned
    assert f"Push {LAB} to the registry" not in planned


def test_push_only_when_the_registry_lacks_the_tag(tmp_path, settings):
    planned = plan(
        tmp_path,
        "tasks/images.py",
        {
            "docker image inspect": image_fact({CONTEXT_HASH_LABEL: lab_hash(settings)}, []),
            "/v2/lab/manifests/1.0": registry_answer(None),
        },
    )
    assert f"Build {LAB}" not in planned
    assert f"Push {LAB} to the registry" in planned


def test_push_when_the_registry_tag_is_another_image(tmp_path, settings):
    planned = plan(
        tmp_path,
        "tasks/images.py",
        {
            "docker image inspect": image_fact(
                {CONTEXT_HASH_LABEL: lab_hash(settings)}, [f"{REGISTRY}/lab@sha256:aa"]
            ),
            "/v2/lab/manifests/1.0": registry_answer("sha256:bb"),
        },
    )
    assert f"Push {LAB} to the registry" in planned


def test_build_and_push_when_the_context_changed(tmp_path):
    planned = plan(
        tmp_path,
        "tasks/images.py",
        {
            "docker image inspect": image_fact(
                {CONTEXT_HASH_LABEL: "an-older-context"}, [f"{REGISTRY}/lab@sha256:aa"]
            ),
            "/v2/lab/manifests/1.0": registry_answer("sha256:aa"),
        },
    )
    assert f"Build {LAB}" in planned
    assert f"Push {LAB} to the registry" in planned


def test_compose_up_only_when_a_service_differs_and_the_dry_run_says_why(tmp_path):
    hub_image = stack.hub_build(validate(settings_data())).image
    up = "Bring up the hub stack (docker compose up)"

    def run(wanted: list[str], containers: list[str]) -> labhost.PyinfraRun:
        # ComposeProject reads the new file's hashes and the containers in one command.
        return dry_run(
            tmp_path,
            "tasks/hub.py",
            {"config --hash": [*wanted, "--labhub-compose-containers--", *containers]},
        )

    running = [
        f"hub running h1 {hub_image}",
        "registry running r1 registry:2",
        "proxy running p1 caddy:2",
        f"engine running e1 {hub_image}",
    ]
    others = ["registry r1", "proxy p1", "engine e1"]
    assert up not in run(["hub h1", *others], running).planned_changes
    changed = run(["hub h2", *others], running)
    assert up in changed.planned_changes
    assert "compose: hub recreated: its configuration changed" in changed.stderr
    assert "compose: registry" not in changed.stderr and "compose: proxy" not in changed.stderr
    new_image = run(["hub h2", *others], ["hub running h1 labhub/hub:0ld", *running[1:]])
    assert f"compose: hub recreated: new image {hub_image}" in new_image.stderr
    stopped = run(["hub h1", *others], [f"hub exited h1 {hub_image}", *running[1:]])
    assert "compose: hub started (it is exited)" in stopped.stderr
    orphan = run(["hub h1", *others], [*running, "old running o1 old:1"])
    assert "compose: old no longer in the compose file: removed" in orphan.stderr
    bare = run([], [])
    assert up in bare.planned_changes and "compose: hub created" in bare.stderr


def test_context_hash_covers_files_support_files_and_build_args(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    base = stack.context_hash(tmp_path, {"ca.crt": b""}, {"BASE_IMAGE": "a"})
    assert stack.context_hash(tmp_path, {"ca.crt": b""}, {"BASE_IMAGE": "a"}) == base
    assert stack.context_hash(tmp_path, {"ca.crt": b"ca"}, {"BASE_IMAGE": "a"}) != base
    assert stack.context_hash(tmp_path, {"ca.crt": b""}, {"BASE_IMAGE": "b"}) != base
    # The support files uploaded into the context on the host are not the context's own.
    (tmp_path / stack.BUILD_SUPPORT).mkdir()
    (tmp_path / stack.BUILD_SUPPORT / "ca.crt").write_text("stale")
    assert stack.context_hash(tmp_path, {"ca.crt": b""}, {"BASE_IMAGE": "a"}) == base
    (tmp_path / "requirements.txt").write_text("numpy\n")
    assert stack.context_hash(tmp_path, {"ca.crt": b""}, {"BASE_IMAGE": "a"}) != base


@pytest.mark.parametrize(
    "idle, age, expected",
    [
        (86400, 604800, ["--timeout=86400", "--max-age=604800", "--cull-every=600"]),
        (0, 3600, [f"--timeout={stack.NEVER}", "--max-age=3600", "--cull-every=600"]),
        (600, 0, ["--timeout=600", "--max-age=0", "--cull-every=300"]),
        (0, 0, None),
    ],
)
def test_culler_command(idle, age, expected):
    command = stack.culler_command(validate(settings_data(idle_timeout=idle, max_age=age)))
    assert (command[3:] if command else None) == expected


@pytest.fixture
def registry():
    with LocalRegistry() as reg:
        yield reg


def load_hub_config(settings, monkeypatch, tmp_path, registry_url: str, **extra) -> dict:
    """Run the hub image's jupyterhub_config.py as JupyterHub does, on the settings.json the
    deploy writes (with ``extra`` keys replaced), with a stand-in for traitlets' config object;
    the spawner lists the images of a real registry at ``registry_url``."""
    config_dir = tmp_path / "etc-labhub"
    config_dir.mkdir()
    data = {**stack.hub_settings(settings), "registry_internal": registry_url, **extra}
    (config_dir / "settings.json").write_text(json.dumps(data))

    class Section(dict):
        def __getattr__(self, key):
            return self[key]

        def __setattr__(self, key, value):
            self[key] = value

    class Config(dict):
        def __getattr__(self, key):
            return self.setdefault(key, Section())

    config = Config()
    monkeypatch.setenv("LABHUB_CONFIG_DIR", str(config_dir))
    # The hub image installs the spawner and the registry client next to the configuration.
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(stack.HUB_CONTEXT / "labhub_spawn.py", lib)
    shutil.copy(CLIENT_SOURCE_FILE, lib / "labhub_registry.py")
    monkeypatch.syspath_prepend(str(lib))
    for module in ("labhub_spawn", "labhub_registry"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    source = (stack.HUB_CONTEXT / "jupyterhub_config.py").read_text()
    namespace = {"get_config": lambda: config}
    exec(compile(source, "jupyterhub_config.py", "exec"), namespace)
    return {"c": config, **namespace}


def test_hub_config_offers_registry_images_newest_first(monkeypatch, tmp_path, registry):
    for repository, tag in (
        ("gpu", "2024.1"),
        ("lab", "1.9"),
        ("lab", "1.10"),
        ("lab", "1.0"),
        ("lab", "latest"),
    ):
        registry.push_image(repository, tag, make_image("2025-01-01T00:00:00Z", tag.encode()))
    settings = validate(
        settings_data(
            lab_images=[{"name": "lab", "version": "1.9"}],
            lab_volumes=[{"host_path": "/srv/data", "container_path": "data", "groups": ["leem"]}],
        )
    )
    c = load_hub_config(settings, monkeypatch, tmp_path, registry.url)["c"]
    assert c.FirstUseAuthenticator["create_users"] is False
    assert c.Authenticator["allowed_users"] == {"alice", "bob"}
    assert c.Authenticator["admin_users"] == {"alice"}
    assert c.JupyterHub["cleanup_servers"] is False
    assert c.Spawner["default_url"] == "/lab"
    assert c.DockerSpawner["image"] == f"{REGISTRY}/lab:1.9"
    images = list(c.DockerSpawner["allowed_images"]())
    # The same order as registry pruning's: "latest" names no version, so it is no newer.
    assert images == [
        f"{REGISTRY}/lab:1.10",
        f"{REGISTRY}/lab:1.9",
        f"{REGISTRY}/lab:1.0",
        f"{REGISTRY}/lab:latest",
        f"{REGISTRY}/gpu:2024.1",
    ]


def test_every_spawner_shares_the_image_list_even_while_it_is_read(
    monkeypatch, tmp_path, settings, registry
):
    registry.push_image("lab", "1.9", make_image("2025-01-01T00:00:00Z", b"1.9"))
    c = load_hub_config(settings, monkeypatch, tmp_path, registry.url)["c"]
    images = c.DockerSpawner["allowed_images"]

    async def new_users_during_a_read():
        reading = asyncio.ensure_future(images.current())
        await asyncio.sleep(0)  # the read is under way in its thread
        # What traitlets does with each configured value for each user's new spawner.
        copies = [copy.deepcopy(c.DockerSpawner["allowed_images"]) for _ in range(3)]
        return copies, await reading

    copies, listed = asyncio.run(new_users_during_a_read())
    assert all(copied is images for copied in copies)
    assert f"{REGISTRY}/lab:1.9" in [image["ref"] for image in listed]


def test_hub_config_falls_back_to_the_default_image(monkeypatch, tmp_path, settings):
    c = load_hub_config(settings, monkeypatch, tmp_path, f"http://127.0.0.1:{free_port()}")["c"]
    assert list(c.DockerSpawner["allowed_images"]()) == [LAB]


def test_hub_config_keeps_its_state_where_the_deploy_reads_it(monkeypatch, tmp_path, settings):
    hub = stack.Stack.from_settings(settings).hub
    c = load_hub_config(settings, monkeypatch, tmp_path, f"http://127.0.0.1:{free_port()}")["c"]
    # What the upgrade, the status and the backups read in the hub's data volume.
    assert c.JupyterHub["db_url"] == f"sqlite:///{hub.database_path}"
    assert c.FirstUseAuthenticator["dbm_path"] == hub.passwords_path
    assert c.JupyterHub["cookie_secret_file"].startswith(hub.data_path + "/")
    # The port compose publishes and the proxy dials.
    assert c.JupyterHub["bind_url"] == f"http://:{hub.port}"
    assert c.JupyterHub["hub_connect_url"] == "http://hub:8081"
    # Read from settings.json, not written in the image a second time.
    other = stack.HubImage(data_path="/var/hub", database="hub.db", passwords="pw.dbm", port=9000)
    (tmp_path / "other").mkdir()
    c = load_hub_config(
        settings,
        monkeypatch,
        tmp_path / "other",
        f"http://127.0.0.1:{free_port()}",
        stack=other.settings("lab-hub"),
    )["c"]
    assert c.JupyterHub["db_url"] == "sqlite:////var/hub/hub.db"
    assert c.FirstUseAuthenticator["dbm_path"] == "/var/hub/pw.dbm"
    assert c.JupyterHub["cookie_secret_file"] == "/var/hub/jupyterhub_cookie_secret"
    assert c.JupyterHub["bind_url"] == "http://:9000"
    assert c.JupyterHub["hub_connect_url"] == "http://lab-hub:8081"


def test_spawner_runs_labs_as_the_account_with_the_users_mounts(monkeypatch, tmp_path):
    settings = validate(
        settings_data(
            lab_volumes=[
                {"host_path": "/srv/data", "container_path": "data", "groups": ["leem"]},
                {"host_path": "/srv/ref", "container_path": "/opt/ref", "mode": "ro"},
            ]
        )
    )
    c = load_hub_config(settings, monkeypatch, tmp_path, f"http://127.0.0.1:{free_port()}")["c"]
    (tmp_path / "etc-labhub" / "accounts.json").write_text(
        json.dumps(
            {
                "alice": {
                    "name": "jupyter-alice",
                    "uid": 1001,
                    "home": "/home/jupyter-alice",
                    "gids": [100],
                    "groups": ["users"],
                },
                "bob": {
                    "name": "jupyter-bob",
                    "uid": 1002,
                    "home": "/home/jupyter-bob",
                    "gids": [100, 1003],
                    "groups": ["users", "leem"],
                },
            }
        )
    )
    volumes = {}
    for name in ("alice", "bob"):
        spawner = SimpleNamespace(user=SimpleNamespace(name=name))
        c.Spawner["pre_spawn_hook"](spawner)
        volumes[name] = spawner.volumes
    assert spawner.extra_create_kwargs == {"user": "1002:100"}
    assert spawner.extra_host_config == {"group_add": ["1003"]}
    assert volumes["alice"] == {
        "/home/jupyter-alice": {"bind": "/home/jovyan", "mode": "rw"},
        "/srv/ref": {"bind": "/opt/ref", "mode": "ro"},
    }
    assert volumes["bob"]["/srv/data"] == {"bind": "/home/jovyan/data", "mode": "rw"}
    assert spawner.lab_account == {
        "name": "jupyter-bob",
        "uid": 1002,
        "gecos": "bob",
        "groups": [("users", 100), ("leem", 1003)],
        "home": "/home/jovyan",
    }


IMAGE_PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "jovyan:x:1000:100::/home/jovyan:/bin/bash\n"
    "old:x:1002:100::/home/old:/bin/sh\n"
)
IMAGE_GROUP = "root:x:0:\nusers:x:100:jovyan\nleem:x:50:\n"


def test_lab_accounts_keep_the_images_and_name_the_user(monkeypatch, tmp_path, settings):
    load_hub_config(settings, monkeypatch, tmp_path, f"http://127.0.0.1:{free_port()}")
    from labhub_spawn import account_files

    account = {
        "name": "jupyter-bob",
        "uid": 1002,
        "gecos": "bob",
        "home": "/home/jovyan",
        "groups": [("users", 100), ("leem", 1003), ("staff", 1004)],
    }
    passwd, group = account_files(IMAGE_PASSWD, IMAGE_GROUP, account)
    # The image's accounts stay; the one holding the user's uid gives way.
    assert passwd.splitlines() == [
        "root:x:0:0:root:/root:/bin/bash",
        "jovyan:x:1000:100::/home/jovyan:/bin/bash",
        "jupyter-bob:x:1002:100:bob:/home/jovyan:/bin/bash",
    ]
    # Member of gid 100 as the image names it; a host group whose name the image uses for
    # another gid keeps its gid under another name.
    assert group.splitlines() == [
        "root:x:0:",
        "users:x:100:jovyan,jupyter-bob",
        "leem:x:50:",
        "leem-1003:x:1003:jupyter-bob",
        "staff:x:1004:jupyter-bob",
    ]
    # Written twice (a container reused), the same files.
    assert account_files(passwd, group, account) == (passwd, group)
    # An image without bash, or without any account files.
    passwd, group = account_files("", "", account)
    assert passwd == "jupyter-bob:x:1002:100:bob:/home/jovyan:/bin/sh\n"
    assert group.splitlines()[0] == "users:x:100:jupyter-bob"


def test_spawn_form_names_images_with_their_labels(monkeypatch, tmp_path, registry, settings):
    described = {
        "org.opencontainers.image.title": "Python lab",
        "org.opencontainers.image.description": "NumPy <and> pandas",
    }
    registry.push_image(
        "lab",
        "1.0",
        make_image(
            "2025-01-01T00:00:00Z",
            b"1.0",
            extra_config={"config": {"Cmd": ["/file0"], "Labels": described}},
        ),
    )
    registry.push_image("lab", "1.10", make_image("2025-01-02T00:00:00Z", b"1.10"))
    registry.push_image("gpu", "2024.1", make_image("2025-01-01T00:00:00Z", b"gpu"))
    c = load_hub_config(settings, monkeypatch, tmp_path, registry.url)["c"]
    spawner = SimpleNamespace(image=LAB, log=logging.getLogger("spawner"))
    form = asyncio.run(c.DockerSpawner["options_form"](spawner))
    names = re.findall(r'<strong class="labhub-image-name">([^<]*)</strong>', form)
    assert names == ["lab 1.10", "lab 1.0", "gpu 2024.1"]
    # The default preselected, with its description, escaped.
    checked = re.findall(r'value="([^"]*)" required checked', form)
    assert checked == [LAB]
    assert '<span class="labhub-image-title">Python lab</span>' in form
    assert "NumPy &lt;and&gt; pandas" in form


def test_spawns_at_once_share_one_read_of_the_registry(monkeypatch, tmp_path, registry, settings):
    registry.push_image("lab", "1.0", make_image("2025-01-01T00:00:00Z", b"1.0"))
    images = load_hub_config(settings, monkeypatch, tmp_path, registry.url)["c"].DockerSpawner[
        "allowed_images"
    ]
    reads = []
    read = images._read
    monkeypatch.setattr(images, "_read", lambda spawner=None: reads.append(1) or read(spawner))

    async def crowd():
        return await asyncio.gather(*(images.current() for _ in range(40)))

    offered = asyncio.run(crowd())
    assert len(reads) == 1
    assert all([i["ref"] for i in each] == [LAB] for each in offered)
    # An image pushed is offered once the freshness window has passed, with no restart.
    registry.push_image("lab", "2.0", make_image("2025-01-02T00:00:00Z", b"2.0"))
    assert list(images()) == [LAB]
    images._read_at -= images.FRESH_S
    assert list(images()) == [f"{REGISTRY}/lab:2.0", LAB]
    assert len(reads) == 2


def test_health_check_failure_names_the_service_and_shows_its_logs(tmp_path):
    """A real (not dry) run against @fake: the hub never answers, the run fails and says why."""
    responses = {
        "cat /etc/passwd": [
            "jupyter-alice:x:1001:100::/home/jupyter-alice:/bin/bash",
            "jupyter-bob:x:1002:100::/home/jupyter-bob:/bin/bash",
        ],
        "cat /etc/group": ["users:x:100:", "leem:x:1003:jupyter-bob"],
        "/hub/health": ["000"],
        "logs --no-color": ["hub-1  | ValueError: the hub could not start"],
    }
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        f"hosts = [('@fake', {{'fake_delay': 0, 'fake_delay_jitter': 0, "
        f"'fake_responses': {responses!r}, **{settings_data(tls='off')!r}}})]\n"
    )
    run = labhost.run_pyinfra(inventory, "tasks/hub.py")
    assert run.returncode != 0
    assert (
        "hub: http://127.0.0.1:8000/hub/health did not answer within 120 s, the stack did "
        "not come up"
    ) in run.stderr
    assert "docker compose -f /opt/labhub/compose.yaml logs hub" in run.stderr
    assert "ValueError: the hub could not start" in run.stderr
