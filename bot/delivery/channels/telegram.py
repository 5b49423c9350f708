"""Telegram: alerts through python-telegram-bot, run inside our own event loop.

PTB's `Application` is driven by hand (initialize / start / updater, never `run_polling`,
which would own the loop). If Telegram cannot be reached at start the service still starts;
the connection is made in the background when Telegram comes back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web
from telegram import BotCommand, InputFile, LinkPreviewOptions, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import Application, ChatMemberHandler

from bot.delivery.channels.base import DeliveryError, Outgoing, RateLimit, send_paced
from bot.delivery.channels.connect import Retry, until_it_works
from bot.delivery.channels.telegram_errors import (
    EDIT_GONE,
    NOT_MODIFIED,
    delivery_error,
    transport_failed,
    unreachable,
)
from bot.delivery.channels.telegram_markup import CAPTION_LIMIT, chat_id, keyboard, title_caption
from bot.delivery.channels.telegram_receive import (
    ALLOWED_UPDATES,
    SECRET_HEADER,
    ChatRemovals,
    TelegramWebhook,
    build_application,
    poll_request,
)

# imported from here by the rest of the service and the tests
__all__ = [
    "CAPTION_LIMIT",
    "SECRET_HEADER",
    "TelegramChannel",
    "build_application",
    "chat_id",
    "unreachable",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


def group_limits() -> list[RateLimit]:
    """A group's budget: 20 a minute (Telegram's limit), at most 1 a second (Telegram asks
    for that in any chat), and at most 5 in 15 s. The last one keeps a burst from spending
    the whole minute's 20 in 20 seconds and then holding every later alert for 40: after 5
    quick messages the dispatcher coalesces what waits, and the longest any alert waits for
    a slot is about 15 s (e.g. 300 missed calls in 10 s reach the group within ~20 s)."""
    return [RateLimit(1, 1.0), RateLimit(5, 15.0), RateLimit(20, 60.0)]


def api_url_of(application: Application) -> str:
    """TELEGRAM_API_URL as given (the bot's base URL without "/bot<token>"), without any
    user:password part: it goes into log lines."""
    bot = application.bot
    base = bot.base_url
    suffix = f"/bot{bot.token}"
    url = base[: -len(suffix)] if base.endswith(suffix) else base.rsplit("/bot", 1)[0]
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=netloc).geturl()


class TelegramChannel:
    name = "telegram"
    fmt = "html"
    text_limit = 4096

    def __init__(
        self,
        application: Application,
        *,
        commands: list[tuple[str, str]] | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.app = application
        self.api_url = api_url_of(application)
        self.commands = list(commands or [])
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.connected = False
        self.on_ready: Callable[[], None] | None = None  # set by the dispatcher
        self.mode = "alerts only"
        # what is failing, by source (connect, commands, polling, chats): `last_error` joins
        self._errors: dict[str, str] = {}
        removals = ChatRemovals(lambda error: self._error("chats", error))
        application.add_handler(
            ChatMemberHandler(removals.changed, ChatMemberHandler.MY_CHAT_MEMBER), group=-1
        )
        request = poll_request(application)
        if request is not None:
            request.answered = self._polling_works
        # Telegram: 30 messages/s overall, 1/s per private chat, 20/min per group
        self._overall = RateLimit(30, 1.0)
        self._per_chat: dict[str, list[RateLimit]] = {}
        self._connector: asyncio.Task[None] | None = None
        # (chat, PNG digest) of pictures whose text has not gone out yet: a retry skips them
        self._photos_sent: set[tuple[str, str]] = set()

    # --- delivery ------------------------------------------------------------------------

    def limits(self, target: str) -> list[RateLimit]:
        limits = self._per_chat.pop(target, None)  # re-inserted last: the map is an LRU
        if limits is None:
            group = target.startswith("-") or target.startswith("@")
            limits = group_limits() if group else [RateLimit(1, 1.0)]
            # refusals to strangers' chats (a few a minute at most) must not grow it for
            # ever; the chat dropped has been idle far longer than any window
            if len(self._per_chat) >= 4096:
                del self._per_chat[next(iter(self._per_chat))]
        self._per_chat[target] = limits
        return [*limits, self._overall]

    async def notify(self, target: str, text: str) -> dict[str, Any]:
        return await self._sent(
            self.app.bot.send_message(
                chat_id=chat_id(target),
                text=text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        )

    async def send(self, target: str, message: Outgoing) -> dict[str, Any]:
        reply = None
        if message.reply_to and message.reply_to.get("message_id") is not None:
            # a reply to a deleted alert still goes out, as a plain message
            reply = ReplyParameters(
                message_id=int(message.reply_to["message_id"]), allow_sending_without_reply=True
            )
        # a reply (reminder, note) stays in its alert's topic: the alert's reference says which
        topic = message.topic
        if topic is None and message.reply_to and message.reply_to.get("topic") is not None:
            topic = int(message.reply_to["topic"])
        return await self._sent(
            self.app.bot.send_message(
                chat_id=chat_id(target),
                text=message.text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_markup=keyboard(message.buttons),
                reply_parameters=reply,
                message_thread_id=topic,
                disable_notification=True if message.silent else None,
            )
        )

    async def edit(self, target: str, message_ref: dict[str, Any], message: Outgoing) -> None:
        """editMessageText of the alert; without buttons the keyboard goes."""
        chat = message_ref.get("chat_id", chat_id(target))
        request = self.app.bot.edit_message_text(
            chat_id=chat,
            message_id=int(message_ref["message_id"]),
            text=message.text,
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            reply_markup=keyboard(message.buttons),
        )
        try:
            await self._call(request)
        except BadRequest as exc:
            low = exc.message.lower()
            if NOT_MODIFIED in low:
                return  # it already says this (a retry after the edit went through)
            if any(phrase in low for phrase in EDIT_GONE):
                raise DeliveryError(
                    f"Telegram: {exc.message}", permanent=True, counted=False, gone=True
                ) from None
            raise self._delivery_error(exc) from None
        except TelegramError as exc:
            raise self._delivery_error(exc) from None

    async def notify_image(
        self, target: str, text: str, png: bytes, filename: str
    ) -> dict[str, Any]:
        """The picture captioned with the text's first line (the title), then the whole
        text as a message of its own (the returned reference), whatever its length: a
        summary looks the same every day, the same as in Slack, and its text is a message
        that can be read in full and quoted (a caption holds 1,024 characters at most).

        Should the text fail after the picture went out, the outbox's retry posts only the
        text (this process remembers the picture; after a restart it is posted again)."""
        key = (target, hashlib.sha256(png).hexdigest())
        if key not in self._photos_sent:
            await self._sent(
                self.app.bot.send_photo(
                    chat_id=chat_id(target),
                    photo=InputFile(png, filename=filename),
                    caption=title_caption(text),
                    parse_mode=ParseMode.HTML,
                ),
                photo=True,
            )
            self._photos_sent.add(key)
        ref = await self.send_now(target, text)  # paced by the chat's rate limit
        self._photos_sent.discard(key)
        return ref

    async def _sent(self, request: Awaitable[Message], *, photo: bool = False) -> dict[str, Any]:
        """Await a sending request; its reference, or DeliveryError saying if it is final
        (and, for a photo, whether only the picture was refused)."""
        try:
            message = await self._call(request)
        except TelegramError as exc:
            raise self._delivery_error(exc, photo=photo) from None
        ref: dict[str, Any] = {"chat_id": message.chat_id, "message_id": message.message_id}
        if message.message_thread_id is not None and message.is_topic_message:
            ref["topic"] = message.message_thread_id  # replies to it go to the same topic
        return ref

    async def _call(self, request: Awaitable[T]) -> T:
        return await request

    def _delivery_error(self, error: TelegramError, *, photo: bool = False) -> DeliveryError:
        return delivery_error(error, self.api_url, photo=photo)

    async def send_now(self, target: str, text: str) -> dict[str, Any]:
        """A command reply: within the chat's limits (it may be busy with alerts)."""
        return await send_paced(self.limits(target), lambda: self.notify(target, text))

    def status(self) -> dict[str, Any]:
        return {"connected": self.connected, "mode": self.mode, "last_error": self.last_error}

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._connector = asyncio.create_task(self._connect(), name="telegram connect")

    async def _connect(self) -> None:
        try:
            await until_it_works(
                self._initialize,
                log=log,
                name="telegram",
                what=self.api_url,
                on_error=lambda error: self._error("connect", error),
            )
        except InvalidToken:
            error = "TELEGRAM_BOT_TOKEN was refused by Telegram"
            self._error("connect", error)
            log.error("telegram: %s; alerts wait in the outbox", error)
            return
        self._error("connect", None)
        bot = self.app.bot
        try:
            if self.commands:
                await bot.set_my_commands([BotCommand(c, d) for c, d in self.commands])
        except TelegramError as exc:
            log.warning("telegram: could not register the command list: %s", exc.message)
        await self.app.start()
        self.connected = True
        if self.on_ready is not None:
            self.on_ready()
        log.info("telegram: connected as @%s", bot.username)
        # alerts go out from here on; commands once Telegram takes our setWebhook/getUpdates
        self.mode = await until_it_works(
            self._receive,
            log=log,
            name="telegram",
            what="receiving commands",
            on_error=lambda error: self._error("commands", error),
        )
        self._error("commands", None)
        log.info("telegram: receiving commands (%s)", self.mode)

    async def _initialize(self) -> None:
        try:
            await self.app.initialize()
        except InvalidToken:
            raise
        except (NetworkError, TelegramError) as exc:
            why = exc.message or type(exc).__name__
            raise Retry(
                unreachable(self.api_url, why)
                if transport_failed(exc)
                else f"Telegram at {self.api_url} answered: {why}"
            ) from None

    async def _receive(self) -> str:
        """One try at receiving commands: setWebhook, or deleteWebhook and long polling."""
        bot = self.app.bot
        try:
            if self.webhook_url:
                await bot.set_webhook(
                    self.webhook_url,
                    secret_token=self.webhook_secret,
                    allowed_updates=ALLOWED_UPDATES,
                )
                return "webhook"
            await bot.delete_webhook()
            assert self.app.updater is not None
            if not self.app.updater.running:
                await self.app.updater.start_polling(
                    allowed_updates=ALLOWED_UPDATES, error_callback=self._polling_error
                )
            return "long polling"
        except TelegramError as exc:
            what = "setWebhook" if self.webhook_url else "deleteWebhook/getUpdates"
            why = exc.message or type(exc).__name__
            if transport_failed(exc):
                why = unreachable(self.api_url, why)
            raise Retry(f"commands are off until {what} works: {why}") from None

    def _polling_error(self, exc: TelegramError) -> None:
        why = exc.message or type(exc).__name__
        error = f"getUpdates: {unreachable(self.api_url, why) if transport_failed(exc) else why}"
        # PTB retries getUpdates by itself and calls this on every failure: say it once
        level = logging.INFO if error == self._errors.get("polling") else logging.WARNING
        self._error("polling", error)
        log.log(level, "telegram: %s", error)

    def _polling_works(self) -> None:
        if self._errors.get("polling"):
            self._error("polling", None)
            log.info("telegram: getUpdates works again")

    def _error(self, source: str, error: str | None) -> None:
        if error is None:
            self._errors.pop(source, None)
        else:
            self._errors[source] = error

    @property
    def last_error(self) -> str | None:
        return "; ".join(self._errors.values()) or None

    async def stop(self) -> None:
        if self._connector is not None and not self._connector.done():
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        try:
            if self.app.updater is not None and self.app.updater.running:
                await asyncio.wait_for(self.app.updater.stop(), 3)
            if self.app.running:
                await asyncio.wait_for(self.app.stop(), 3)
            await asyncio.wait_for(self.app.shutdown(), 3)
        except (TimeoutError, TelegramError, RuntimeError) as exc:
            log.warning("telegram: unclean stop: %s", exc)

    # --- webhook mode: Telegram posts updates to our HTTP server ---------------------------

    def routes(self) -> list[web.RouteDef]:
        return TelegramWebhook(self.app, self.webhook_secret).routes()
