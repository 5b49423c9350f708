"""Issue 12 in Slack, through the CLI and the fake Slack (HTTP mode): a "✅ Called back"
press arrives as a signed block_actions post to /webhooks/slack; a forged one does nothing."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes.ria import make_call
from tests.fakes.slack import APP_ID, DEFAULT_SIGNING_SECRET, TEAM_ID, FakeSlack
from tests.reliability import caller, db_rows, e164, settled, until
from tests.service import Service
from tests.test_slack_e2e import CHANNEL, slack_env

OTHER = "C0RANDOM01"
OLENA = {"id": "U0OLENA001", "username": "olena", "name": "olena", "team_id": TEAM_ID}
MALLORY = {"id": "U0MALLORY1", "username": "mallory", "name": "mallory", "team_id": TEAM_ID}
QUIET = {"CALLBACK_WITHIN_MINUTES": "0"}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(channels=[CHANNEL, OTHER]) as fake:
        yield fake


def action_ids(blocks: list[dict[str, Any]] | None) -> list[str]:
    return [
        str(e.get("action_id"))
        for b in blocks or []
        if b.get("type") == "actions"
        for e in b.get("elements", [])
    ]


async def alert_for(slack: FakeSlack, call_id: int) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for m in slack.messages_for(CHANNEL):
            if e164(call_id) in (m["text"] or "") + (m["mrkdwn"] or "") and (
                f"called_back:{call_id}" in action_ids(m["blocks"])
            ):
                return m
        return None

    await until(lambda: find() is not None, 20, f"the alert of call {call_id} with its button")
    found = find()
    assert found is not None
    return found


def block_actions(channel: str, ts: str, call_id: int, user: dict[str, str]) -> str:
    """A block_actions request body as Slack posts it: form-encoded, a `payload` JSON field."""
    payload = {
        "type": "block_actions",
        "user": user,
        "api_app_id": APP_ID,
        "token": "fakeVerificationToken",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "team": {"id": TEAM_ID, "domain": "fakemotors"},
        "channel": {"id": channel, "name": "sales"},
        "message": {"type": "message", "ts": ts, "text": "alert"},
        "response_url": "https://hooks.slack.com/actions/T0/1/xyz",
        "actions": [
            {
                "action_id": f"called_back:{call_id}",
                "block_id": "cb",
                "text": {"type": "plain_text", "text": "✅ Called back", "emoji": True},
                "value": str(call_id),
                "type": "button",
                "action_ts": "1548426417.840180",
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


async def press(
    slack: FakeSlack, service: Service, body: str, *, bad_signature: bool = False
) -> int:
    status, _ = await slack.post_signed(
        f"{service.url}/webhooks/slack",
        DEFAULT_SIGNING_SECRET,
        body,
        bad_signature=bad_signature,
    )
    return status


def resolutions(db: str) -> list[tuple[Any, ...]]:
    return db_rows(db, "SELECT call_id, how, by_name, by_user, target FROM resolutions")


async def test_a_signed_press_marks_the_alert_and_a_forged_one_does_nothing(
    services, slack: FakeSlack
) -> None:
    service = await services(**slack_env(slack), **QUIET)
    db = service.env["DATABASE_PATH"]
    status, body = await service.post(
        service.webhook_url, json=[make_call(21, "NOANSWER", caller=caller(21))]
    )
    assert status == 200, body
    alert = await alert_for(slack, 21)
    ts = alert["ts"]

    # forged: refused before anything runs
    assert (
        await press(slack, service, block_actions(CHANNEL, ts, 21, MALLORY), bad_signature=True)
        == 401
    )
    assert resolutions(db) == []

    assert await press(slack, service, block_actions(CHANNEL, ts, 21, OLENA)) == 200
    await until(lambda: slack.updates, 15, "the alert updated (chat.update)")
    update = slack.updates[-1]
    assert update["ts"] == ts
    text = json.dumps(update["blocks"], ensure_ascii=False) + (update["text"] or "")
    assert "✅" in text and "olena" in text and e164(21) in text
    assert f"called_back:{21}" not in action_ids(update["blocks"])
    await until(lambda: slack.ephemeral, 10, "the presser's confirmation")
    assert slack.ephemeral[-1]["user"] == OLENA["id"]
    assert slack.ephemeral[-1]["text"].startswith("✅")
    assert resolutions(db) == [(21, "button", "olena", "slack:U0OLENA001", f"slack:{CHANNEL}")]

    # a press from a channel that is not configured: refused, only the presser sees it
    assert await press(slack, service, block_actions(OTHER, ts, 21, MALLORY)) == 200
    await until(lambda: len(slack.ephemeral) == 2, 10, "the refusal")
    assert slack.ephemeral[-1]["channel"] == OTHER
    assert not slack.ephemeral[-1]["text"].startswith("✅")
    await settled(db, slack)
    assert len(slack.updates) == 1
    assert len(resolutions(db)) == 1
