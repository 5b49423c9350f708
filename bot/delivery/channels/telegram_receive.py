"""How Telegram's updates reach us: long polling (getUpdates) or webhook mode
(`/webhooks/telegram/{secret}`), and what we ask for (`ALLOWED_UPDATES`).

Webhook mode answers 503 while python-telegram-bot is not running (start-up, the Bot API
failing), so Telegram keeps the update and delivers it again instead of us dropping it; and
it checks the secret (path and header) before it reads at most 64 KiB of body.
"""

from __future__ import annotations

import hmac
import json
import logging
import weakref
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from telegram import ChatMember, Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes
from telegram.request import HTTPXRequest

from bot.delivery.channels.webhook_body import read_capped, refuse

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# my_chat_member: the bot was added to, or removed from, a chat (noticed at once, not at
# the next alert); callback_query: a press of "✅ Called back" (issue 12)
ALLOWED_UPDATES = ["message", "my_chat_member", "callback_query"]
CONNECT_S, READ_S, WRITE_S, POOL_S, POLL_READ_S = 5.0, 10.0, 20.0, 5.0, 35.0


class PollRequest(HTTPXRequest):
    """The connection getUpdates uses; `answered()` runs after every 200 answer, so that a
    polling error reported by python-telegram-bot (which has no callback for "works again")
    is cleared once polling works. `do_request` is the documented point to extend."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answered: Callable[[], None] = lambda: None

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        code, payload = await super().do_request(*args, **kwargs)
        if code == HTTPStatus.OK:
            self.answered()
        return code, payload


_POLL_REQUESTS: weakref.WeakKeyDictionary[Application, PollRequest] = weakref.WeakKeyDictionary()


def build_application(token: str, api_url: str, *, webhook_mode: bool) -> Application:
    api_url = api_url.rstrip("/")
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api_url}/bot")
        .base_file_url(f"{api_url}/file/bot")
        .connect_timeout(CONNECT_S)
        .read_timeout(READ_S)
        .write_timeout(WRITE_S)
        .pool_timeout(POOL_S)
    )
    if webhook_mode:
        return builder.updater(None).build()
    # one connection, as python-telegram-bot's own getUpdates request has
    poll = PollRequest(
        connection_pool_size=1,
        connect_timeout=CONNECT_S,
        read_timeout=POLL_READ_S,
        write_timeout=WRITE_S,
        pool_timeout=POOL_S,
    )
    application = builder.get_updates_request(poll).build()
    _POLL_REQUESTS[application] = poll
    return application


def poll_request(application: Application) -> PollRequest | None:
    """The getUpdates connection `build_application` made (None in webhook mode)."""
    return _POLL_REQUESTS.get(application)


class TelegramWebhook:
    def __init__(self, application: Application, secret: str | None) -> None:
        self.app = application
        self.secret = (secret or "").encode()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/webhooks/telegram/{secret}", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        path = request.match_info["secret"].encode()
        if not self.secret or not (
            hmac.compare_digest(path, self.secret) and hmac.compare_digest(given, self.secret)
        ):
            return refuse(403, "forbidden")
        if not self.app.running:
            # not taken yet: Telegram delivers it again later
            return refuse(503, "not ready")
        body = await read_capped(request)
        if isinstance(body, web.Response):
            return body
        try:
            update = Update.de_json(_json(body), self.app.bot)
        except Exception:
            log.debug("telegram: refused a webhook body that is not an update")
            return refuse(400, "not a Telegram update")
        if update is not None:
            await self.app.update_queue.put(update)
        return web.json_response({"ok": True})


def _json(body: bytes) -> Any:
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data


class ChatRemovals:
    """my_chat_member updates: the bot was removed from (or added back to) a chat. Said
    now, not at the next alert, and kept in the channel's status until it is back."""

    def __init__(self, report: Callable[[str | None], None]) -> None:
        self.report = report  # the channel's error for "chats" (None: all fine)
        self.removed: dict[str, str] = {}  # chat id -> "id (title)"

    async def changed(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change = update.my_chat_member
        if change is None:
            return
        chat = change.chat
        name = f"{chat.id}" + (f" ({chat.title})" if chat.title else "")
        if change.new_chat_member.status in (ChatMember.LEFT, ChatMember.BANNED):
            self.removed[str(chat.id)] = name
            log.warning(
                "telegram: the bot was removed from chat %s; alerts to it cannot be delivered: "
                "add the bot to the chat again, or take %s out of TELEGRAM_CHAT_IDS",
                name,
                chat.id,
            )
        elif self.removed.pop(str(chat.id), None) is not None:
            log.info("telegram: the bot is in chat %s again", name)
        else:
            return
        chats = ", ".join(sorted(self.removed.values()))
        self.report(
            f"removed from chat(s) {chats}: add the bot again or update TELEGRAM_CHAT_IDS"
            if self.removed
            else None
        )
