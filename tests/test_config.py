"""Configuration: defaults, parsing, and one clear line per bad value."""

from __future__ import annotations

from datetime import time

import pytest

from bot.config import ConfigError, load_settings
from storage.outbox import Target


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # settings read the process environment and .env in the working directory
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith(
            ("RIA_", "TELEGRAM_", "SLACK_", "HTTP_", "LOG_", "SUMMARY_")
        ) or name in (
            "DATABASE_PATH",
            "TIMEZONE",
            "LANGUAGE",
            "PUBLIC_URL",
            "MISSED_STATUSES",
            "ALERT_MAX_AGE_MINUTES",
        ):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert s.database_path == "data/calls.db"
    assert s.timezone == "Europe/Kyiv" and s.language == "uk"
    assert s.http_port == 8080 and s.ria_poll_interval_minutes == 60
    assert s.missed_statuses == ("NOANSWER", "CANCEL", "BUSY")
    assert s.summary_time == time(20, 0)
    assert not s.polling_enabled and not s.telegram_enabled
    assert s.alert_targets() == [Target("console", "stdout")]


def test_lists_and_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", " -1001234567890, 42 ,@dealer_team")
    monkeypatch.setenv("MISSED_STATUSES", "noanswer,BYSY")
    s = load_settings()
    assert s.missed_statuses == ("NOANSWER", "BUSY")
    assert s.alert_targets() == [
        Target("telegram", "-1001234567890"),
        Target("telegram", "42"),
        Target("telegram", "@dealer_team"),
    ]


def test_dotenv_file(tmp_path) -> None:
    (tmp_path / ".env").write_text("LANGUAGE=en\nSUMMARY_TIME=\n")
    s = load_settings()
    assert s.language == "en" and s.summary_time is None


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("TELEGRAM_CHAT_IDS", "abc", 'TELEGRAM_CHAT_IDS: "abc" is not a chat id'),
        ("HTTP_PORT", "eighty", 'HTTP_PORT: "eighty" is not a number'),
        ("HTTP_PORT", "70000", "HTTP_PORT: "),
        ("TIMEZONE", "Mars/Base", 'TIMEZONE: "Mars/Base" is not a time zone'),
        ("LANGUAGE", "de", 'LANGUAGE: "de" is not one of the allowed values'),
        ("SUMMARY_TIME", "25:00", 'SUMMARY_TIME: "25:00" is not a time of day'),
        ("RIA_API_URL", "ftp://x", 'RIA_API_URL: "ftp://x" is not an http(s) URL'),
        ("RIA_USER_ID", "12ab", 'RIA_USER_ID: "12ab" is not a RIA user id'),
        ("RIA_WEBHOOK_SECRET", "short", "RIA_WEBHOOK_SECRET: expects 16-128 characters"),
        ("TELEGRAM_BOT_TOKEN", "nope", "TELEGRAM_BOT_TOKEN: is not a bot token"),
        ("RIA_POLL_INTERVAL_MINUTES", "0", "RIA_POLL_INTERVAL_MINUTES: "),
        ("RIA_POLL_SPREAD", "maybe", "RIA_POLL_SPREAD: expected on or off, got 'maybe'"),
        (
            "SLACK_CHANNEL_IDS",
            "#general",
            'SLACK_CHANNEL_IDS: "#general" is not a Slack channel id',
        ),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, name, value, line) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert len(info.value.lines) == 1
    assert info.value.lines[0].startswith(line)
    assert "Traceback" not in str(info.value)


def test_combinations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIA_API_KEY", "k" * 40)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.lines == [
        "RIA_API_KEY and RIA_USER_ID: set both to turn polling on, or neither",
        "TELEGRAM_CHAT_IDS: required when TELEGRAM_BOT_TOKEN is set",
    ]


def test_secrets_are_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIA_API_KEY", "SECRETKEY" * 4)
    monkeypatch.setenv("RIA_USER_ID", "1505029")
    s = load_settings()
    assert "SECRETKEY" not in repr(s)
    assert "SECRETKEY" * 4 in s.secrets()


def test_summary_weekly(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().summary_weekly is True
    for value, expected in [("off", False), ("OFF", False), ("", False), ("on", True)]:
        monkeypatch.setenv("SUMMARY_WEEKLY", value)
        assert load_settings().summary_weekly is expected
    monkeypatch.setenv("SUMMARY_WEEKLY", "sometimes")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert err.value.lines == ['SUMMARY_WEEKLY: "sometimes" is not on or off']
