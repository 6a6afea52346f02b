"""
Who gets in, without a hub: the invitation and failed-login rules (labhub/logins.py, which the hub
image ships as labhub_logins), the settings that choose them, and what the deploy hands the hub.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from labhub import logins, stack
from labhub.settings import SettingsError, validate

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TOKEN = "a-token-from-the-admins-machine"
ENTRY = {"sha256": logins.token_hash(TOKEN), "expires": "2026-12-08T12:00:00Z"}


def tokens():
    count = iter(range(100))
    return lambda: f"token-{next(count)}"


# --- Invitations: the hub's check ---


def test_a_valid_invitation_lets_its_user_in():
    assert logins.invitation_problem(ENTRY, TOKEN, NOW) is None


@pytest.mark.parametrize(
    ("entry", "token", "used", "has_password", "words"),
    [
        (None, TOKEN, None, False, "not a valid invitation"),
        (ENTRY, "", None, False, "not a valid invitation"),
        (ENTRY, "another-token", None, False, "not a valid invitation"),
        ({"sha256": ENTRY["sha256"], "expires": "soon"}, TOKEN, None, False, "not a valid"),
        (ENTRY, TOKEN, logins.token_hash(TOKEN), False, "used already"),
        (ENTRY, TOKEN, None, True, "has a password already"),
    ],
)
def test_an_invitation_is_refused(entry, token, used, has_password, words):
    problem = logins.invitation_problem(entry, token, NOW, used, has_password)
    assert problem is not None and words in problem
    assert "admin" in problem


def test_an_invitation_expires():
    assert (
        logins.invitation_problem(ENTRY, TOKEN, datetime(2026, 12, 8, 11, 59, tzinfo=UTC)) is None
    )
    problem = logins.invitation_problem(ENTRY, TOKEN, datetime(2026, 12, 8, 12, 0, tzinfo=UTC))
    assert problem == (
        "this invitation expired on 2026-12-08T12:00:00Z: ask the lab's admin for a new one"
    )
    assert logins.expired(ENTRY, datetime(2026, 12, 8, 12, 0, tzinfo=UTC))
    assert not logins.expired(ENTRY, NOW)
    assert logins.expired({"expires": "never"}, NOW)


def test_a_used_invitation_of_an_earlier_token_does_not_block_a_new_one():
    assert logins.invitation_problem(ENTRY, TOKEN, NOW, logins.token_hash("older")) is None


def test_tokens_are_random_and_only_their_hash_is_kept():
    first, second = logins.new_token(), logins.new_token()
    assert first != second and len(first) >= 43
    entries, made = logins.invitations(["bob"], [], {}, {}, [], NOW, 7)
    assert made["bob"] not in json.dumps(entries)
    assert entries["bob"]["sha256"] == logins.token_hash(made["bob"])


def test_the_link_names_the_user_and_the_token():
    link = logins.invite_link("https://hub.lab.example.org", "bob", "to/k+en")
    parsed = urlparse(link)
    assert parsed.path == "/hub/invite"
    assert parse_qs(parsed.query) == {"user": ["bob"], "token": ["to/k+en"]}


# --- Invitations: the deploy's plan ---


def test_each_user_without_a_password_is_invited_for_invite_days():
    entries, made = logins.invitations(
        ["alice", "bob", "carol"], ["alice"], {}, {}, [], NOW, 7, tokens()
    )
    assert made == {"bob": "token-0", "carol": "token-1"}
    assert entries == {
        "bob": {"sha256": logins.token_hash("token-0"), "expires": "2026-12-08T12:00:00Z"},
        "carol": {"sha256": logins.token_hash("token-1"), "expires": "2026-12-08T12:00:00Z"},
    }


def test_a_second_plan_keeps_every_invitation():
    entries, _ = logins.invitations(["bob"], [], {}, {}, [], NOW, 7, tokens())
    later = NOW + timedelta(days=30)
    again, made = logins.invitations(["bob"], [], entries, {}, [], later, 7, tokens())
    # An expired invitation too: only the admin makes a new one.
    assert (again, made) == (entries, {})


def test_reissued_used_and_claimed():
    current = {"bob": ENTRY, "carol": ENTRY, "dave": ENTRY, "erin": ENTRY}
    entries, made = logins.invitations(
        ["bob", "carol", "dave", "erin"],
        ["dave"],
        current,
        {"carol": ENTRY["sha256"]},
        ["bob"],
        NOW,
        3,
        tokens(),
    )
    # bob asked for anew, carol's was used (her password since removed), dave has a password,
    # erin keeps hers.
    assert sorted(made) == ["bob", "carol"]
    assert "dave" not in entries
    assert entries["erin"] == ENTRY
    assert entries["bob"]["expires"] == "2026-12-04T12:00:00Z"


def test_a_user_no_longer_declared_loses_the_invitation():
    entries, made = logins.invitations(["bob"], [], {"bob": ENTRY, "zed": ENTRY}, {}, [], NOW, 7)
    assert entries == {"bob": ENTRY} and made == {}


# --- Failed logins ---


@pytest.mark.parametrize(
    ("count", "wait"),
    [(0, 0), (4, 0), (5, 60), (6, 120), (7, 240), (11, 3600), (100, 3600)],
)
def test_the_wait_after_failed_logins_grows(count, wait):
    assert logins.lockout_wait(count, 5, 60) == wait


def test_no_limit_and_long_first_waits():
    assert logins.lockout_wait(50, 0, 60) == 0
    assert logins.lockout_wait(6, 5, 7200) == 7200


def test_when_a_wait_is_over():
    record = {"count": 0}
    for moment in range(5):
        record = logins.failed(record, 1000.0 + moment, "192.0.2.7")
    assert record == {"count": 5, "last": 1004.0, "address": "192.0.2.7"}
    assert logins.locked_until(record, 5, 60) == 1064.0
    assert logins.locked_until({**record, "count": 4}, 5, 60) is None
    assert logins.locked_until(None, 5, 60) is None


# --- Settings, and what the hub reads ---


def test_the_defaults_invite():
    settings = validate({"hub_users": ["bob"]})
    assert settings.first_login == "invite"
    assert (settings.invite_days, settings.failed_logins, settings.failed_login_wait) == (7, 5, 60)
    hub = stack.hub_settings(settings)
    assert hub["logins"] == {
        "first_login": "invite",
        "failed_logins": 5,
        "failed_login_wait": 60,
        "invites": "invites.json",
        "state": "logins.json",
    }


def test_the_hub_image_ships_the_rules():
    build = stack.hub_build(validate({"hub_users": ["bob"]}))
    assert build.support["labhub_logins.py"] == (stack.ROOT / "labhub" / "logins.py").read_bytes()
    assert "labhub_auth.py" in (stack.HUB_CONTEXT / "Dockerfile").read_text()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"first_login": "closed"}, "first_login: Input should be 'invite' or 'open'"),
        ({"invite_days": 0}, "invite_days: Input should be greater than or equal to 1"),
        ({"failed_logins": -1}, "failed_logins: Input should be greater than or equal to 0"),
        ({"failed_login_wait": 0}, "failed_login_wait: Input should be greater than or equal"),
        ({"reissue_invites": ["carl"]}, "reissue_invites[0]: 'carl' is not in hub_users"),
        ({"reset_passwords": ["bob", "bob"]}, "reset_passwords[1]: 'bob' is listed twice"),
        (
            {"first_login": "open", "reissue_invites": ["bob"]},
            'reissue_invites: set, but first_login is "open"',
        ),
        (
            {"first_login": "open", "invite_days": 3},
            'invite_days: set, but used only with first_login "invite"',
        ),
    ],
)
def test_bad_login_settings_are_refused(data, message):
    with pytest.raises(SettingsError) as error:
        validate({"hub_users": ["bob"], **data})
    assert message in str(error.value)


def test_open_first_logins_and_resets_are_accepted():
    settings = validate({"hub_users": ["bob"], "first_login": "open", "reset_passwords": ["bob"]})
    assert settings.reset_passwords == ("bob",)


# --- What the deploy and the status read ---


def test_the_hosts_logins_as_read():
    from labhub.facts.logins import HubLogins

    fact = HubLogins()
    read = fact.process(
        [
            "#invites",
            json.dumps({"bob": ENTRY}),
            "#passwords",
            "alice",
            "#state",
            '{"failures": {"carol": {"count": 5, "last": 1.5, "address": "192.0.2.7"}}}',
        ]
    )
    assert read == {
        "invites": {"bob": ENTRY},
        "passwords": ["alice"],
        "state": {
            "used": {},
            "failures": {"carol": {"count": 5, "last": 1.5, "address": "192.0.2.7"}},
        },
    }
    # A fresh server: no hub, no invitations; a hub that does not run, with its state.
    assert fact.process(["#invites", "#passwords", "#state"]) == {
        "invites": {},
        "passwords": [],
        "state": {"used": {}, "failures": {}},
    }
    assert fact.process(["#invites", "#passwords", "#unreadable", "#state"])["passwords"] is None
    command = fact.command(
        "/opt/labhub/hub/invites.json",
        "labhub",
        "hub",
        "/srv/jupyterhub/data/passwords.dbm",
        "/srv/jupyterhub/data/logins.json",
        "labhub_hub-data",
    )
    assert "docker volume inspect labhub_hub-data" in command


# --- The task, planned on pyinfra's @fake host ---


def dry_run(tmp_path, **data):
    import labhost

    inventory = tmp_path / "inventory.py"
    host = {
        "fake_delay": 0,
        "fake_delay_jitter": 0,
        "hub_users": ["alice", "bob"],
        "hub_domain": "hub.lab.example.org",
        # A fresh server: no invitations, no hub.
        "fake_responses": {"echo '#invites'": ["#invites", "#passwords", "#state"]},
        **data,
    }
    inventory.write_text(f"hosts = [('@fake/hub1', {host!r})]\n")
    run = labhost.run_pyinfra(inventory, "tasks/logins.py", dry=True, extra=("--diff",))
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_a_dry_run_plans_the_invitations_and_writes_no_link(tmp_path):
    import labhost

    run = dry_run(tmp_path)
    assert [name.rsplit(" | ", 1)[-1] for name in run.planned_changes] == [
        "Invite the hub users with no password yet (alice, bob: new)"
    ]
    assert "/opt/labhub/hub/invites.json (a secret: content not shown)" in run.stderr
    assert not (labhost.PROJECT_ROOT / ".labhub" / "invites" / "@fake").exists()


def test_open_first_logins_warn_on_every_run(tmp_path):
    run = dry_run(tmp_path, first_login="open", reset_passwords=["bob"])
    assert 'first_login is "open"' in run.stderr
    # Nobody has a password on a host that answers nothing: there is none to reset.
    assert run.planned_changes == []
