"""Strangers' chats (issue 15 item 7): refused once an hour, in a bounded memory.

Through the CLI and the fake Telegram: many commands from a chat that is not configured
get one refusal, so strangers cannot spend the 30 messages/s that alerts need.
"""

from __future__ import annotations

from handlers.chat.telegram import RefusalGate
from tests.conftest import GROUP, telegram_env
from tests.fakes.telegram import FakeTelegram

STRANGER = -1009999999999


async def test_a_stranger_chat_is_refused_once(services, telegram: FakeTelegram) -> None:
    await services(**telegram_env(telegram), LANGUAGE="en")
    for _ in range(12):
        telegram.push_command(STRANGER, "/stats", chat_type="supergroup")
    # the updates are handled in order: once the configured group has its answer, every
    # stranger's command before it has been dealt with
    update = telegram.push_command(int(GROUP), "/help", chat_type="supergroup")
    await telegram.wait_for_reply(int(GROUP), after_update_id=update, timeout=30)
    refusals = telegram.messages_for(STRANGER)
    assert len(refusals) == 1, [m.get("text") for m in refusals]
    assert "only answers" in refusals[0]["text"]


def test_the_gate_is_bounded_and_paced() -> None:
    now = [0.0]
    gate = RefusalGate(every=3600, per_minute=20, size=100, clock=lambda: now[0])
    assert gate.allow("a") and not gate.allow("a")
    now[0] = 3601.0
    assert gate.allow("a")  # an hour later, once more
    allowed = 0
    for i in range(1000):  # a stream of new strangers
        now[0] += 0.5
        allowed += gate.allow(f"chat{i}")
    assert allowed <= 20 * (500 / 60 + 1)  # at most 20 a minute overall
    assert len(gate) <= 100
