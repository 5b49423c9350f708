"""Slack adapter for the chat commands: Bolt listeners around the neutral command core.

Two ways in, the same answers: a slash command (`/stats today`) and a mention of the bot
(`@bot stats today`). Slack wants every request acknowledged within 3 seconds, so a slash
command is acked at once and answered afterwards through its response_url; a mention (an
event, which Bolt acks by itself) is answered in its thread with chat.postMessage.

Rendering, Block Kit and sending come in from bot/ (this package does not import it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Set
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from handlers.chat.callback import Callbacks
from handlers.chat.commands import Reply, is_command, split_command
from storage.outbox import OutboxItem, Target

log = logging.getLogger(__name__)

COMMANDS = ("stats", "missed", "help")
# A workspace where /stats is taken can name the commands /ria-stats, /ria-missed, ...
_PREFIXES = ("ria-", "ria_")

# (command, argument, scope): scope None = every call (a channel of SLACK_CHANNEL_IDS), else
# ("slack", channel): the calls routed to that channel only (issue 13)
AnswerFn = Callable[[str, str, tuple[str, str] | None], Awaitable[Reply]]
# the channels the routing file sends alerts to (read at every event: SIGHUP may change them)
RoutedFn = Callable[[], Set[str]]


def _none() -> Set[str]:
    return frozenset()


RenderFn = Callable[[Reply], str]  # a reply as mrkdwn
MessageFn = Callable[[str], dict[str, Any]]  # mrkdwn -> {"text": ..., "blocks": [...]}
# posts to a channel within the channel's rate limit (it may be busy with alerts)
SendFn = Callable[..., Awaitable[object]]


def command_word(command: str) -> str:
    """'/stats' -> 'stats'; '/ria-stats' -> 'stats'."""
    word = command.strip().removeprefix("/").lower()
    for prefix in _PREFIXES:
        if word.startswith(prefix):
            return word.removeprefix(prefix)
    return word


def register(
    app: AsyncApp,
    *,
    channel_ids: Iterable[str],
    answer: AnswerFn,
    render: RenderFn,
    message: MessageFn,
    refusal: str,
    send: SendFn,
    routed: RoutedFn = _none,
) -> None:
    """Answer in the configured channels; a short refusal, seen only by the asker, elsewhere.

    A slash command is always ours (Slack routes only the app's own commands), so an unknown
    word gets "unknown command"; a mention whose first word is not a command gets nothing."""
    everything = frozenset(channel_ids)

    def scope_of(channel: str) -> tuple[str, str] | None:
        return None if channel in everything else ("slack", channel)

    async def on_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()  # within Slack's 3 s; the answer follows through response_url
        channel = str(command.get("channel_id", ""))
        word = command_word(str(command.get("command", "")))
        try:
            if channel not in everything and channel not in routed():
                log.info(
                    "slack: refused /%s from channel %s (not in SLACK_CHANNEL_IDS)", word, channel
                )
                result = await respond(text=refusal, response_type="ephemeral")
            else:
                reply = await answer(word, str(command.get("text", "")), scope_of(channel))
                # in_channel: the team sees the answer, as in a Telegram group
                result = await respond(response_type="in_channel", **message(render(reply)))
            if result.status_code != 200:
                log.warning(
                    "slack: could not answer /%s: response_url answered HTTP %s",
                    word,
                    result.status_code,
                )
        except Exception as exc:  # the platform's error, already worded for a log line
            log.warning("slack: could not answer /%s: %s", word, exc)

    async def on_mention(event: dict[str, Any], client: AsyncWebClient) -> None:
        channel = str(event.get("channel", ""))
        command, argument = split_command(str(event.get("text", "")))
        thread = event.get("thread_ts") or event.get("ts")
        if not is_command(command):
            # people mention the bot in conversation ("thanks @bot"): only commands get an answer
            log.debug("slack: a mention that is not a command (%r): no answer", command[:40])
            return
        try:
            if channel not in everything and channel not in routed():
                log.info(
                    "slack: refused a mention in channel %s (not in SLACK_CHANNEL_IDS)", channel
                )
                await client.chat_postEphemeral(
                    channel=channel, user=str(event.get("user", "")), text=refusal
                )
                return
            reply = await answer(command, argument, scope_of(channel))
            await send(channel, render(reply), thread_ts=thread)
        except Exception as exc:
            log.warning("slack: could not answer a mention (%s): %s", command or "help", exc)

    # every slash command of the app: unknown words get the neutral core's "unknown command"
    app.command(re.compile(r"^/"))(on_command)
    app.event("app_mention")(on_mention)


# action_id of "✅ Called back" (bot/delivery/render): unique per block, the call id only
ACTION_ID = re.compile(r"^called_back:(\d{1,18})$")


def register_callbacks(
    app: AsyncApp,
    *,
    channel_ids: Iterable[str],
    callbacks: Callbacks,
    routed: RoutedFn = _none,
) -> None:
    """block_actions of "✅ Called back": acked at once (Slack wants it within 3 s), counted
    in the configured channels only, confirmed to the presser alone (an ephemeral); the
    edit of the alert (chat.update) follows through the outbox."""
    allowed = frozenset(channel_ids)

    async def on_press(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        match = ACTION_ID.match(str(action.get("action_id", "")))
        container = body.get("container") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
        ts = str(container.get("message_ts") or (body.get("message") or {}).get("ts") or "")
        user = body.get("user") or {}
        user_id = str(user.get("id", ""))
        edits: list[OutboxItem] = []
        try:
            if match is None or not ts:
                return
            if channel not in allowed and channel not in routed():
                log.info("slack: refused a press in channel %s (not in SLACK_CHANNEL_IDS)", channel)
                answer = callbacks.refused()
            else:
                name = user.get("name") or user.get("username") or user_id or None
                answer, edits = await callbacks.press(
                    Target("slack", channel),
                    ts,
                    int(match.group(1)),
                    by_name=str(name) if name else None,
                    by_user=f"slack:{user_id}" if user_id else None,
                )
            if channel and user_id:
                await client.chat_postEphemeral(channel=channel, user=user_id, text=answer)
        except Exception as exc:  # the platform's error, already worded for a log line
            log.warning("slack: could not answer a press: %s", exc)
        finally:
            callbacks.hand_over(edits)  # recorded: the edit goes out even if the answer did not

    app.action(ACTION_ID)(on_press)
