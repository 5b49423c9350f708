"""The Service's start-up wiring of the chat platforms: their channels, and the commands
and "✅ Called back" presses each one answers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from bot import i18n
from bot.config import Settings
from bot.delivery import render
from bot.delivery.channels.base import Channel
from bot.delivery.channels.console import ConsoleChannel
from bot.delivery.channels.slack import SlackChannel, build_client
from bot.delivery.channels.slack import message as slack_message
from bot.delivery.channels.telegram import TelegramChannel, build_application
from bot.routing_setup import routed_chats
from handlers.chat.callback import Callbacks
from handlers.chat.slack import register as register_slack
from handlers.chat.slack import register_callbacks as slack_callbacks
from handlers.chat.telegram import (
    COMMANDS,
    AnswerFn,
    RenderFn,
    RoutedFn,
    register,
    register_callbacks,
)

log = logging.getLogger("bot.app")  # the lines operators know come from the service


def make_channels(settings: Settings) -> dict[str, Channel]:
    # the console writes the summary's chart next to the database
    console = ConsoleChannel(image_dir=Path(settings.database_path).parent)
    channels: dict[str, Channel] = {"console": console}
    if settings.telegram_bot_token is not None:
        webhook_url = None
        secret = None
        if settings.telegram_webhook_mode:
            assert settings.public_url and settings.telegram_webhook_secret
            secret = settings.telegram_webhook_secret.get_secret_value()
            webhook_url = f"{settings.public_url.rstrip('/')}/webhooks/telegram/{secret}"
        application = build_application(
            settings.telegram_bot_token.get_secret_value(),
            settings.telegram_api_url,
            webhook_mode=settings.telegram_webhook_mode,
        )
        channels["telegram"] = TelegramChannel(
            application,
            commands=[
                (c, i18n.t(settings.language, f"command_{c}")) for c in COMMANDS if c != "start"
            ],
            webhook_url=webhook_url,
            webhook_secret=secret,
        )
    if settings.slack_bot_token is not None:
        channels["slack"] = SlackChannel(
            build_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url),
            signing_secret=secret_value(settings.slack_signing_secret),
            app_token=secret_value(settings.slack_app_token),
        )
    return channels


def secret_value(value: Any) -> str | None:
    return None if value is None else value.get_secret_value()


def register_chats(
    s: Settings,
    channels: dict[str, Channel],
    app: web.Application,
    *,
    answer: AnswerFn,
    callbacks: Callbacks,
) -> None:
    """Commands and presses on each platform configured; its webhook route when it has one."""
    refusal = i18n.t(s.language, "refusal")

    def renderer(markup: str) -> RenderFn:
        return lambda reply: render.reply(reply, markup, s.language, s.tz)

    def routed(platform: str) -> RoutedFn:
        return lambda: routed_chats(platform)

    telegram = channels.get("telegram")
    if isinstance(telegram, TelegramChannel):
        ids = s.telegram_chat_ids
        register(
            telegram.app,
            chat_ids=ids,
            answer=answer,
            render=renderer("html"),
            refusal=refusal,
            send=telegram.send_now,
            routed=routed("telegram"),
        )
        register_callbacks(
            telegram.app, chat_ids=ids, callbacks=callbacks, routed=routed("telegram")
        )
        if s.telegram_webhook_mode:
            app.add_routes(telegram.routes())
    slack = channels.get("slack")
    if isinstance(slack, SlackChannel):
        ids = s.slack_channel_ids
        register_slack(
            slack.app,
            channel_ids=ids,
            answer=answer,
            render=renderer("mrkdwn"),
            message=slack_message,
            refusal=refusal,
            send=slack.send_now,
            routed=routed("slack"),
        )
        slack_callbacks(slack.app, channel_ids=ids, callbacks=callbacks, routed=routed("slack"))
        if s.slack_signing_secret is not None:
            app.add_routes(slack.routes())
        if s.slack_signing_secret is None and s.slack_app_token is None:
            log.info(
                "slack: commands are off (set SLACK_SIGNING_SECRET for HTTP mode or "
                "SLACK_APP_TOKEN for Socket Mode); alerts go out"
            )
