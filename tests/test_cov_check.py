"""`ria-calls-bot check` on the answers the feature tests never get: a Slack channel that is
archived, a direct message, a token without channels:read, Slack out of reach, a wrong app
token, Slack's HTTP mode and commands off; a Telegram chat the bot is not in; RIA's quota
spent and a key RIA refuses; a database that cannot be written. Through the real CLI against
the fake servers."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import GROUP, RIA_KEY, RIA_USER, telegram_env
from tests.fakes.ria import FakeRia
from tests.fakes.slack import DEFAULT_BOT_TOKEN, DEFAULT_SIGNING_SECRET, FakeChannel, FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.service import base_env, free_port, run_cli

ARCHIVED, DM, OK = "C0ARCHIVED1", "D0DIRECT001", "C0SALES0001"


def _slack_env(slack: FakeSlack, channels: str, **extra: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN,
        "SLACK_CHANNEL_IDS": channels,
        "SLACK_API_URL": slack.api_url,
        **extra,
    }


async def test_check_slack_channels_and_modes(tmp_path: Path) -> None:
    async with FakeSlack(
        channels=[
            FakeChannel(ARCHIVED, "old-sales", is_archived=True),
            FakeChannel(DM, "", is_member=False),
            FakeChannel(OK, "sales"),
        ]
    ) as slack:
        env = base_env(
            tmp_path,
            **_slack_env(
                slack, f"{ARCHIVED},{DM},{OK}", SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET
            ),
            PUBLIC_URL="https://calls.example.com/",
        )
        code, out, err = await run_cli(env, tmp_path, "check")
        assert code == 1, out + err
        assert f"Slack channel {ARCHIVED}: #old-sales is archived" in out
        assert f"Slack channel {DM}: a direct message, the bot can post" in out
        assert f"Slack channel {OK}: #sales, the bot can post" in out
        assert "Slack HTTP mode: Request URL https://calls.example.com/webhooks/slack" in out
        assert "1 problem(s)" in out

        # no signing secret, no app token: commands are off (alerts still work)
        slack.missing_scopes.add("channels:read")
        env = base_env(tmp_path, **_slack_env(slack, OK))
        code, out, err = await run_cli(env, tmp_path, "check")
        assert code == 0, out + err
        assert (
            f"Slack channel {OK}: not checked (the app lacks the channels:read and groups:read "
            "scopes)" in out
        )
        assert "Slack commands are off (set SLACK_SIGNING_SECRET or SLACK_APP_TOKEN)" in out
        assert "no chat configured" not in out

        # an app token Slack does not know: Socket Mode refused, named
        wrong_app = "xapp-1-A0OTHER001-3000000003-" + "0" * 30
        env = base_env(tmp_path, **_slack_env(slack, OK, SLACK_APP_TOKEN=wrong_app))
        code, out, err = await run_cli(env, tmp_path, "check")
        assert code == 1, out + err
        assert "Slack Socket Mode: invalid_auth (check SLACK_APP_TOKEN)" in out
        assert wrong_app not in out + err


async def test_check_slack_out_of_reach(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/api/"  # nothing listens there
    env = base_env(
        tmp_path,
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_CHANNEL_IDS=OK,
        SLACK_API_URL=closed,
    )
    code, out, err = await run_cli(env, tmp_path, "check", timeout=90)
    assert code == 1, out + err
    assert f"Slack: cannot reach {closed}: " in out
    assert DEFAULT_BOT_TOKEN not in out + err


async def test_check_telegram_chat_not_reachable_and_ria_refusals(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    # the bot is not in this chat: Telegram answers "chat not found" to getChat (the first
    # chat listed is asked first)
    stranger = "-1009999999999"
    telegram.fail_method("getChat", 1, status=400, description="Bad Request: chat not found")
    async with FakeRia(api_key="K" * 40, user_id=RIA_USER) as ria:
        env = base_env(
            tmp_path,
            **telegram_env(telegram, chats=f"{stranger},{GROUP}"),
            RIA_API_KEY=RIA_KEY,  # not the key RIA knows
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url,
        )
        code, out, err = await run_cli(env, tmp_path, "check")
        assert code == 1, out + err
        assert f"✓ Telegram chat {GROUP}: " in out
        assert f"Telegram chat {stranger}: Chat not found (add the bot to the chat" in out, out
        assert "(add the bot to the chat, or send it /start)" in out
        assert "RIA_API_KEY" in out  # the fix names the setting
        assert RIA_KEY not in out + err

        # the month's quota is spent: RIA is not asked at all
        before = ria.request_count
        env["RIA_MONTHLY_QUOTA"] = "0"
        code, out, err = await run_cli(env, tmp_path, "check")
        assert "polling every" in out and "(quota 0)" in out
        assert "RIA API not asked: " in out
        assert ria.request_count == before


async def test_check_database_that_cannot_be_written(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    env = base_env(tmp_path, DATABASE_PATH=str(folder))
    code, out, err = await run_cli(env, tmp_path, "check")
    assert code == 1, out + err
    assert f"database {folder}: " in out
    assert "Traceback" not in out + err
