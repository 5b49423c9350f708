"""Telegram: alerts through python-telegram-bot, run inside our own event loop.

PTB's `Application` is driven by hand (initialize / start / updater, never `run_polling`,
which would own the loop). If Telegram cannot be reached at start the service still starts;
the connection is made in the background when Telegram comes back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import warnings
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from aiohttp import web
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import Application, ChatMemberHandler
from telegram.warnings import PTBDeprecationWarning

from bot.delivery.channels.base import (
    Button,
    DeliveryError,
    Outgoing,
    RateLimit,
    send_paced,
    telegram_target_problem,
)
from bot.delivery.channels.connect import Retry, until_it_works
from bot.delivery.channels.telegram_receive import (
    ALLOWED_UPDATES,
    SECRET_HEADER,
    ChatRemovals,
    TelegramWebhook,
    build_application,
    poll_request,
)

__all__ = ["SECRET_HEADER", "TelegramChannel", "build_application"]  # imported from here

log = logging.getLogger(__name__)
T = TypeVar("T")

CAPTION_LIMIT = 1024  # a photo's caption, in UTF-16 code units like the 4096 of a message
# httpx (under python-telegram-bot) reads these: a log line about an unreachable Telegram
# names the one in use, since a wrong or missing proxy is a common cause
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
NO_PHOTO_RIGHTS = "not enough rights to send photos"
MAX_BUTTONS = 100  # inline keyboard buttons in one message
BUTTONS_PER_ROW = 3  # a coalesced alert's buttons: the last digits fit three abreast
# an edit refused because the message is too old to edit (48 h in groups) or was deleted
EDIT_GONE = ("message can't be edited", "message to edit not found")
NOT_MODIFIED = "message is not modified"


def keyboard(buttons: list[Button]) -> InlineKeyboardMarkup | None:
    """The "✅ Called back" buttons; callback_data carries the call id and nothing else."""
    if not buttons:
        return None
    keys = [InlineKeyboardButton(b.label, callback_data=f"cb:{b.call_id}") for b in buttons]
    keys = keys[:MAX_BUTTONS]
    per_row = 1 if len(keys) == 1 else BUTTONS_PER_ROW
    return InlineKeyboardMarkup([keys[i : i + per_row] for i in range(0, len(keys), per_row)])


def _retry_seconds(exc: RetryAfter) -> float:
    """RetryAfter.retry_after is an int in PTB 22 and a timedelta later; reading it as an int
    warns of that on every 429, so read it with the warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _maybe_posted(exc: TelegramError) -> bool:
    """Whether Telegram may have posted the message although the send failed: only when
    the request reached it and the answer was lost (a read timeout, a dropped connection).
    An error answer, or a connection never made, posted nothing."""
    cause = exc.__cause__
    if isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return False
    return isinstance(cause, httpx.HTTPError)


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


def unreachable(api_url: str, why: str) -> str:
    """'cannot reach api.telegram.org (ConnectError: ...); TELEGRAM_API_URL is ...: ...'."""
    host = urlsplit(api_url).hostname or api_url
    proxy = next((name for name in PROXY_VARS if os.environ.get(name)), None)
    if proxy:
        where = f"{host} through the proxy in {proxy}"
        advice = f"check TELEGRAM_API_URL and {proxy}"
    else:
        where = host
        advice = "check TELEGRAM_API_URL, the network, or set HTTPS_PROXY if it needs a proxy"
    return f"cannot reach {where} ({why}); TELEGRAM_API_URL is {api_url}: {advice}"


def _transport_failed(exc: TelegramError) -> bool:
    """Whether the request never got an answer from Telegram (connect, timeout, proxy)."""
    return isinstance(exc.__cause__, httpx.TransportError)


def photo_refused(message: str) -> str | None:
    """What to change when Telegram refused a picture but would take text, else None."""
    low = message.lower()
    if NO_PHOTO_RIGHTS in low:
        return "allow the bot to send photos in the group's permissions, or make it an admin"
    if any(word in low for word in ("photo", "image", "file")):
        return "Telegram would not take the chart"
    return None


def chat_id(target: str) -> int | str:
    return target if target.startswith("@") else int(target)


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
        return await self._sent(
            self.app.bot.send_message(
                chat_id=chat_id(target),
                text=message.text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_markup=keyboard(message.buttons),
                reply_parameters=reply,
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
        """The picture with the text as its caption; when the text is too long for one, the
        picture captioned with the text's first line (the title, whole tags only), then the
        text as a message of its own (the returned reference).

        Should the text fail after the picture went out, the outbox's retry posts only the
        text (this process remembers the picture; after a restart it is posted again)."""
        fits = _utf16_len(text) <= CAPTION_LIMIT  # markup counted too: an upper bound
        first = text if fits else text.split("\n", 1)[0]
        # never cut: a cut could split an HTML tag
        caption = first if _utf16_len(first) <= CAPTION_LIMIT else None
        key = (target, hashlib.sha256(png).hexdigest())
        if key not in self._photos_sent:
            ref = await self._sent(
                self.app.bot.send_photo(
                    chat_id=chat_id(target),
                    photo=InputFile(png, filename=filename),
                    caption=caption,
                    parse_mode=ParseMode.HTML,
                ),
                photo=True,
            )
            if fits:
                return ref
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
        return {"chat_id": message.chat_id, "message_id": message.message_id}

    async def _call(self, request: Awaitable[T]) -> T:
        return await request

    def _delivery_error(self, error: TelegramError, *, photo: bool = False) -> DeliveryError:
        """A Telegram error as DeliveryError, saying if it is final (and, for a photo,
        whether only the picture was refused)."""
        exc = error
        if isinstance(exc, RetryAfter):
            return DeliveryError(
                "Telegram: too many requests",
                retry_after=_retry_seconds(exc),
                counted=False,
            )
        if isinstance(exc, ChatMigrated):
            new_id = exc.new_chat_id
            return DeliveryError(
                f"Telegram: the group is now supergroup {new_id}; put {new_id} in "
                "TELEGRAM_CHAT_IDS instead",
                permanent=True,
                counted=False,
                target_problem=True,
                migrate_to=str(new_id),
            )
        if isinstance(exc, (Forbidden, InvalidToken)):  # the operator fixes these: the alerts wait
            return DeliveryError(
                f"Telegram: {exc.message}", permanent=True, counted=False, target_problem=True
            )
        if isinstance(exc, BadRequest):
            # chat not found, can't parse entities, too long: sending again will not help
            hint = photo_refused(exc.message) if photo else None
            if hint is not None:
                return DeliveryError(
                    f"Telegram: {exc.message}: {hint}",
                    permanent=True,
                    counted=False,
                    picture_refused=True,
                )
            return DeliveryError(
                f"Telegram: {exc.message}",
                permanent=True,
                counted=False,
                target_problem=telegram_target_problem(exc.message),
            )
        # NetworkError, or any other TelegramError
        if _transport_failed(exc):
            why = exc.message or type(exc).__name__
            return DeliveryError(
                f"Telegram: {unreachable(self.api_url, why)}", counted=_maybe_posted(exc)
            )
        return DeliveryError(
            f"Telegram: {exc.message or type(exc).__name__}", counted=_maybe_posted(exc)
        )

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
                if _transport_failed(exc)
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
            if _transport_failed(exc):
                why = unreachable(self.api_url, why)
            raise Retry(f"commands are off until {what} works: {why}") from None

    def _polling_error(self, exc: TelegramError) -> None:
        why = exc.message or type(exc).__name__
        error = f"getUpdates: {unreachable(self.api_url, why) if _transport_failed(exc) else why}"
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
