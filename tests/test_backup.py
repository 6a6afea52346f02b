"""
What the backup settings become on the server (labhub.backup): the backup program's settings
file, read by the shell, and the timer, read by systemd.
"""

from __future__ import annotations

import configparser
import subprocess

import pytest

from labhost import write_secret
from labhub import backup
from labhub.settings import SettingsError, validate


@pytest.fixture
def password(tmp_path):
    path = tmp_path / "restic-password"
    return str(write_secret(path, "correct horse battery staple\n"))


def test_the_settings_file_reads_back_in_a_shell_as_given(password, tmp_path):
    settings = validate(
        {
            "backup_repository": "sftp:backup@files.lab:/srv/restic/lab's",
            "backup_password_file": password,
            "backup_keep": {"last": 3, "monthly": 12},
            "backup_homes": False,
        }
    )
    env = tmp_path / "backup.env"
    env.write_text(backup.env_text(settings))
    out = subprocess.run(
        [
            "bash",
            "-c",
            '. "$1"; printf "%s\\n" "$RESTIC_REPOSITORY" "$LABHUB_KEEP" '
            '"[$LABHUB_BACKUP_HOMES]" "$LABHUB_BACKUP_REGISTRY" "[$LABHUB_SSH_KEY]"',
            "x",
            str(env),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines() == [
        "sftp:backup@files.lab:/srv/restic/lab's",
        "--keep-last 3 --keep-monthly 12",
        "[]",
        "1",
        "[]",
    ]
    # The password is in its own root-only file, never in the settings file.
    assert "correct horse" not in env.read_text()
    assert f"RESTIC_PASSWORD_FILE={backup.PASSWORD_FILE}\n" in env.read_text()


def test_the_timer_runs_the_backup_at_the_schedule(password):
    settings = validate(
        {
            "backup_repository": "/srv/backups/labhub",
            "backup_password_file": password,
            "backup_schedule": "Mon..Fri 23:00",
        }
    )
    timer = configparser.ConfigParser(interpolation=None)
    timer.optionxform = str
    timer.read_string(backup.timer_text(settings))
    assert timer["Timer"]["OnCalendar"] == "Mon..Fri 23:00"
    assert timer["Timer"]["Unit"] == backup.SERVICE
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_a_password_in_the_repository_url_is_refused_without_showing_it(password):
    with pytest.raises(SettingsError) as error:
        validate(
            {
                "backup_repository": "rest:https://lab:hunter2-secret@backup.lab:8000/",
                "backup_password_file": password,
            }
        )
    assert "backup_repository: the URL holds a password" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_backups_are_off_by_default():
    settings = validate({})
    assert settings.backup_repository is None
    assert settings.backup_keep == {"daily": 7, "weekly": 4, "monthly": 6}
    assert settings.restore_snapshot == "latest"


def test_the_check_before_a_restore_reads_its_own_folder_and_the_hub_dir_rule(password, tmp_path):
    key = tmp_path / "backup_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    settings = validate(
        {
            "backup_repository": "sftp:backup@files.lab:/srv/restic/labhub",
            "backup_password_file": password,
            "backup_ssh_key": str(key),
        }
    )
    text = backup.env_text(settings, backup.CHECK_DIR)
    assert f"RESTIC_PASSWORD_FILE={backup.CHECK_DIR}/password\n" in text
    assert f"LABHUB_SSH_KEY={backup.CHECK_DIR}/ssh_key\n" in text
    assert backup.CONFIG_DIR not in text
    # The backup program's half of stack.hub_dir_state.
    assert "LABHUB_COMPOSE_FILE=/opt/labhub/compose.yaml\n" in text
    assert "LABHUB_STACK_FOLDERS='build hub proxy registry'\n" in text
