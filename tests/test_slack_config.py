"""Slack settings: tokens that say which is which, and combinations that need the bot token."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings
from storage.outbox import Target
from tests.test_config import clean_env  # noqa: F401  (autouse: no SLACK_* from the shell)


def test_slack_targets_beside_telegram() -> None:
    s = load_settings(
        telegram_bot_token="1:a",
        telegram_chat_ids="42",
        slack_bot_token="xoxb-1-2-abc",
        slack_channel_ids="C0123456789, G0123456789",
    )
    assert s.alert_targets() == [
        Target("telegram", "42"),
        Target("slack", "C0123456789"),
        Target("slack", "G0123456789"),
    ]


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            {"slack_bot_token": "xapp-1-A1-2-abc", "slack_channel_ids": "C0123456789"},
            "SLACK_BOT_TOKEN: is not a Slack bot token (expects xoxb-...)",
        ),
        (
            {
                "slack_bot_token": "xoxb-1",
                "slack_channel_ids": "C0123456789",
                "slack_app_token": "xoxb-2",
            },
            "SLACK_APP_TOKEN: is not a Slack app-level token (expects xapp-...)",
        ),
        (
            {"slack_signing_secret": "abc"},
            "SLACK_SIGNING_SECRET / SLACK_APP_TOKEN: need SLACK_BOT_TOKEN too",
        ),
        ({"slack_bot_token": "xoxb-1"}, "SLACK_CHANNEL_IDS: required when SLACK_BOT_TOKEN is set"),
    ],
)
def test_slack_mistakes_are_one_line_each(overrides: dict[str, str], line: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    assert info.value.lines == [line]
    for value in overrides.values():
        if value.startswith("x"):
            assert value not in line  # a token is never echoed back


def test_slack_bearer_urls_are_redacted_from_logs() -> None:
    from bot.logs import Redactor

    redact = Redactor()
    line = (
        "connect wss://wss-primary.slack.com/link/?ticket=9f8e-7d6c&app_id=A1 then POST "
        "https://hooks.slack.com/commands/T1/123/AbCdEf with xoxb-1-2-abc and xapp-1-A1-2-def"
    )
    out = redact(line)
    for secret in ("9f8e-7d6c", "T1/123/AbCdEf", "1-2-abc", "1-A1-2-def"):
        assert secret not in out
    assert "app_id=A1" in out  # only the secret part goes
