"""Slack: alerts through slack-sdk's AsyncWebClient, commands through slack-bolt's AsyncApp,
both inside our own event loop.

Commands arrive one of two ways: Slack POSTs them to `/webhooks/slack` on our HTTP server
(HTTP mode, signed with SLACK_SIGNING_SECRET: bot/delivery/channels/slack_http.py), or we
open a Socket Mode WebSocket with SLACK_APP_TOKEN. Bolt's own servers and its blocking
`start()` are never used. If Slack cannot be reached at start the service still starts;
alerts wait in the outbox and the connection is made in the background (channels/connect.py)
when Slack comes back. Messages are built in slack_format.py, errors read in slack_errors.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.channels.base import DeliveryError, Outgoing, RateLimit, acquire, send_paced
from bot.delivery.channels.connect import Retry, until_it_works
from bot.delivery.channels.slack_errors import (
    AUTH_ERRORS,
    FAILURES,
    PERMANENT_ERRORS,
    delivery_error,
    describe,
    error_code,
    upload_error,
)
from bot.delivery.channels.slack_format import (
    MAX_BLOCKS,
    SECTION_LIMIT,
    fallback_text,
    message,
    message_with_buttons,
    section_blocks,
)
from bot.delivery.channels.slack_http import WEBHOOK_PATH, SlackWebhook

# the names other modules import from here, from before the split
__all__ = [
    "AUTH_ERRORS",
    "FAILURES",
    "MAX_BLOCKS",
    "PERMANENT_ERRORS",
    "SECTION_LIMIT",
    "WEBHOOK_PATH",
    "SlackChannel",
    "build_client",
    "delivery_error",
    "describe",
    "error_code",
    "fallback_text",
    "message",
    "section_blocks",
]

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
# chat.update refused because the message cannot be edited (too old, not ours) or is gone
EDIT_GONE = frozenset({"cant_update_message", "message_not_found", "edit_window_closed"})
SOCKET_CONNECT_TIMEOUT_S = 15.0
# Bolt's framework logger (its `logger` parameter, public API). Bolt reads SLACK_BOT_TOKEN
# from the environment by itself (our variable has the same name), then warns at every start
# that the client we pass wins over it. It does, on purpose: the client carries our base URL
# and timeout. Bolt offers no switch for that one warning, so the logger we hand it is quiet
# while the AsyncApp is built, and logs like any other once it is built.
BOLT_LOG = logging.getLogger("slack_bolt.ria-calls-bot")


class _RefusedToken(Exception):
    """Slack refused a token: retrying cannot help (the message names which)."""


# --- the channel -----------------------------------------------------------------------------


def build_client(token: str, api_url: str, *, timeout: float = TIMEOUT_S) -> AsyncWebClient:
    base_url = api_url if api_url.endswith("/") else api_url + "/"
    return AsyncWebClient(token=token, base_url=base_url, timeout=int(timeout))


class SlackChannel:
    name = "slack"
    fmt = "mrkdwn"
    text_limit = SECTION_LIMIT  # one section block; render.coalesced splits to fit

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        signing_secret: str | None = None,
        app_token: str | None = None,
    ) -> None:
        self.client = client
        self.signing_secret = signing_secret
        self.app_token = app_token
        # Bolt dispatches commands and mentions; it verifies signatures only in HTTP mode
        # (an empty signing secret is refused by slack-sdk, and Socket Mode needs none).
        BOLT_LOG.setLevel(logging.ERROR)
        try:
            self.app = AsyncApp(
                client=client,
                name="ria-calls-bot",
                logger=BOLT_LOG,
                signing_secret=signing_secret or "",
                request_verification_enabled=signing_secret is not None,
            )
        finally:
            BOLT_LOG.setLevel(logging.NOTSET)
        self.webhook = SlackWebhook(self.app, signing_secret)
        self.connected = False
        self.on_ready: Callable[[], None] | None = None  # set by the dispatcher
        self.last_error: str | None = None
        self.bot_user: str | None = None
        self.mode = "alerts only"
        self._per_channel: dict[str, RateLimit] = {}
        self._uploaded: dict[tuple[str, str], str] = {}  # (channel, png hash) -> file id
        self._socket: AsyncSocketModeHandler | None = None
        self._connector: asyncio.Task[None] | None = None

    # --- delivery ------------------------------------------------------------------------

    def limits(self, target: str) -> list[RateLimit]:
        # Slack: about one message a second per channel (short bursts tolerated)
        limit = self._per_channel.get(target)
        if limit is None:
            limit = self._per_channel[target] = RateLimit(1, 1.0)
        return [limit]

    async def notify(self, target: str, text: str) -> dict[str, Any]:
        return await self._post(target, text)

    async def send(self, target: str, message: Outgoing) -> dict[str, Any]:
        """With the buttons as actions blocks; a reply goes in the alert's thread."""
        extra: dict[str, Any] = {}
        if message.reply_to and message.reply_to.get("ts"):
            extra["thread_ts"] = str(message.reply_to["ts"])
        buttons = [(b.label, b.call_id) for b in message.buttons]
        return await self._post(target, message.text, _buttons=buttons, **extra)

    async def edit(self, target: str, message_ref: dict[str, Any], message: Outgoing) -> None:
        """chat.update of the alert (same ts); without buttons the actions block goes."""
        buttons = [(b.label, b.call_id) for b in message.buttons]
        try:
            await self.client.chat_update(
                channel=str(message_ref.get("channel") or target),
                ts=str(message_ref["ts"]),
                **message_with_buttons(message.text, buttons),
            )
        except SlackApiError as exc:
            code = error_code(exc)
            if code in EDIT_GONE:
                raise DeliveryError(
                    f"Slack: {code}", permanent=True, counted=False, gone=True
                ) from None
            raise delivery_error(exc) from None
        except FAILURES as exc:
            raise delivery_error(exc) from None

    async def _post(
        self, target: str, text: str, _buttons: list[tuple[str, int]] | None = None, **extra: Any
    ) -> dict[str, Any]:
        body = message_with_buttons(text, _buttons) if _buttons else message(text)
        try:
            resp = await self.client.chat_postMessage(
                channel=target, unfurl_links=False, unfurl_media=False, **body, **extra
            )
        except FAILURES as exc:
            raise delivery_error(exc) from None
        return {"channel": resp["channel"], "ts": resp["ts"]}

    async def notify_image(
        self, target: str, text: str, png: bytes, filename: str
    ) -> dict[str, Any]:
        """The picture (files.getUploadURLExternal → upload → files.completeUploadExternal),
        then the text as a message right under it; returns the text message's reference.

        The text is a message of its own, not the file's comment, because only a message
        has a `ts` to edit it by. A retry after the upload worked posts only the text.
        """
        key = (target, hashlib.sha256(png).hexdigest())
        if key not in self._uploaded:
            try:
                resp = await self.client.files_upload_v2(
                    channel=target,
                    file=png,
                    filename=filename,
                    title=filename.rsplit(".", 1)[0],
                    alt_txt=fallback_text(text.split("\n", 1)[0])[:1000],
                )
            except FAILURES as exc:
                raise upload_error(exc) from None
            shared: Any = resp.get("file") or {}
            self._uploaded[key] = str(shared.get("id", ""))
            # the shared file is a message in the channel: the text waits its turn after it
            for limit in self.limits(target):
                limit.record(time.monotonic())
            slot = await acquire(self.limits(target))
            try:
                ref = await self._post(target, text)
            finally:
                slot.settle()
        else:
            ref = await self._post(target, text)
        self._uploaded.pop(key, None)
        return ref

    async def send_now(
        self, target: str, text: str, *, thread_ts: str | None = None
    ) -> dict[str, Any]:
        """A command reply (in a thread for a mention): within the channel's rate limit."""
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        return await send_paced(self.limits(target), lambda: self._post(target, text, **extra))

    def status(self) -> dict[str, Any]:
        connected = self.connected
        if connected and self._socket is not None:
            session = self._socket.client.current_session  # the SDK reconnects by itself
            connected = session is not None and not session.closed
        return {"connected": connected, "mode": self.mode, "last_error": self.last_error}

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._connector = asyncio.create_task(self._connect(), name="slack connect")

    async def _connect(self) -> None:
        """auth.test until Slack answers, then open Socket Mode if configured."""
        try:
            auth = await until_it_works(
                self._auth_test, log=log, name="slack", what="Slack", on_error=self._failed
            )
        except _RefusedToken as exc:
            self.last_error = str(exc)
            log.error("slack: %s; alerts wait in the outbox", self.last_error)
            return
        self.bot_user = str(auth.get("user") or auth.get("user_id") or "")
        self.last_error = None
        if self.app_token:
            try:
                self._socket = await until_it_works(
                    self._open_socket,
                    log=log,
                    name="slack",
                    what="Socket Mode",
                    on_error=self._failed,
                )
            except _RefusedToken as exc:
                self.last_error = str(exc)
                log.error("slack: %s; commands are off, alerts still go out", self.last_error)
                return
            self.last_error = None
            self.mode = "Socket Mode"
        elif self.signing_secret:
            self.mode = f"HTTP mode at {WEBHOOK_PATH}"
        self.connected = True
        if self.on_ready is not None:
            self.on_ready()
        log.info("slack: connected as @%s in %s (%s)", self.bot_user, auth.get("team"), self.mode)

    def _failed(self, error: str) -> None:
        self.last_error = error

    async def _auth_test(self) -> Any:
        try:
            return await self.client.auth_test()
        except SlackApiError as exc:
            code = error_code(exc)
            if code in AUTH_ERRORS:
                raise _RefusedToken(f"SLACK_BOT_TOKEN was refused by Slack ({code})") from None
            raise Retry(f"auth.test: {code}") from None
        except FAILURES as exc:
            raise Retry(f"cannot reach Slack: {type(exc).__name__}") from None

    async def _open_socket(self) -> AsyncSocketModeHandler:
        """One try at opening Socket Mode.

        We ask apps.connections.open ourselves and hand the URL to the SDK's client, and we
        bound the WebSocket handshake in time. The SDK has no public way to do either: its
        `connect()` (and `connect_to_new_endpoint()`) fetch the URL inside a loop that
        retries forever, on the same URL, logging a traceback at every turn, so a refused
        app token would never surface as one clear line. `wss_uri` is the attribute its
        own `connect()` reads (declared on the class, not underscored). Once connected, the
        SDK reconnects by itself (pings, Slack's `disconnect` messages, closed sockets).
        """
        assert self.app_token is not None
        handler = AsyncSocketModeHandler(self.app, self.app_token, web_client=self.client)
        try:
            opened = await self.client.apps_connections_open(app_token=self.app_token)
            handler.client.wss_uri = opened["url"]
            await asyncio.wait_for(handler.connect_async(), SOCKET_CONNECT_TIMEOUT_S)
            return handler
        except SlackApiError as exc:
            await handler.close_async()
            code = error_code(exc)
            if code in AUTH_ERRORS or code == "not_allowed_token_type":
                raise _RefusedToken(f"SLACK_APP_TOKEN was refused by Slack ({code})") from None
            raise Retry(f"apps.connections.open: {code}") from None
        except FAILURES as exc:
            await handler.close_async()
            raise Retry(f"cannot open Socket Mode: {type(exc).__name__}") from None
        except BaseException:
            await handler.close_async()
            raise

    async def stop(self) -> None:
        if self._connector is not None and not self._connector.done():
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        if self._socket is not None:
            try:
                await asyncio.wait_for(self._socket.close_async(), 3)
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.warning("slack: unclean Socket Mode close: %s", exc)
            self._socket = None
        self.connected = False

    # --- HTTP mode: Slack posts slash commands and events to our server --------------------

    def routes(self) -> list[web.RouteDef]:
        return self.webhook.routes()
