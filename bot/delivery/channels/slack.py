"""Slack: alerts through slack-sdk's AsyncWebClient, commands through slack-bolt's AsyncApp,
both inside our own event loop.

Commands arrive one of two ways: Slack POSTs them to `/webhooks/slack` on our HTTP server
(HTTP mode, signed with SLACK_SIGNING_SECRET), or we open a Socket Mode WebSocket with
SLACK_APP_TOKEN. Bolt's own servers and its blocking `start()` are never used. If Slack
cannot be reached at start the service still starts; alerts wait in the outbox and the
connection is made in the background when Slack comes back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.channels.base import DeliveryError, RateLimit, acquire, send_paced

log = logging.getLogger(__name__)


class _NoTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself (our variable has the same
    name), then warns at every start that the client we pass wins over it. It does, on
    purpose: the client carries our base URL and timeout."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


logging.getLogger("slack_bolt.AsyncApp").addFilter(_NoTokenWarning())

WEBHOOK_PATH = "/webhooks/slack"
SECTION_LIMIT = 3000  # characters in one section block's text
MAX_BLOCKS = 50  # blocks in one message
TIMEOUT_S = 10.0
SOCKET_CONNECT_TIMEOUT_S = 15.0

# Errors that sending again cannot fix: the token, the channel or the message is wrong.
# Everything else (internal_error, fatal_error, service_unavailable, HTTP 5xx, timeouts)
# is transient.
PERMANENT_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
        "ekm_access_denied",
        "team_access_not_granted",
        "org_login_required",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "too_many_attachments",
        "invalid_file_id",
        "file_not_found",
    }
)
# ...and of those, the ones that mean the token itself is refused
AUTH_ERRORS = frozenset(
    {"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired"}
)
_HINTS = {
    "invalid_auth": "check SLACK_BOT_TOKEN",
    "not_authed": "check SLACK_BOT_TOKEN",
    "account_inactive": "the app was uninstalled or its bot deactivated",
    "token_revoked": "the token was revoked: reinstall the app",
    "channel_not_found": "check SLACK_CHANNEL_IDS (a private channel needs the bot invited)",
    "not_in_channel": "invite the bot to the channel: /invite @bot",
    "is_archived": "the channel is archived",
    "missing_scope": "add the scope in the app's OAuth & Permissions and reinstall",
}


# --- messages: Block Kit with a plain fallback ---------------------------------------------


def section_blocks(text: str) -> list[dict[str, Any]]:
    """mrkdwn as section blocks, split between lines so each stays within Slack's limit."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > SECTION_LIMIT:  # one huge line: cut it, there is no better place
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:SECTION_LIMIT])
            line = line[SECTION_LIMIT:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > SECTION_LIMIT:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current.strip() or not chunks:
        chunks.append(current or " ")
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": chunk}}
        for chunk in chunks[:MAX_BLOCKS]
    ]


_LINK = re.compile(r"<([^<>|\s]+)\|([^<>]*)>")
_BARE_LINK = re.compile(r"<([^<>|\s]+)>")
_BOLD = re.compile(r"\*([^*\n]+)\*")
_CODE = re.compile(r"`([^`\n]+)`")


def fallback_text(mrkdwn: str) -> str:
    """The `text` Slack shows in notifications and to screen readers: the same words without
    markup. &amp; &lt; &gt; stay escaped: Slack reads `text` with the same escaping rules."""
    text = _LINK.sub(r"\2", mrkdwn)
    text = _BARE_LINK.sub(r"\1", text)
    text = _BOLD.sub(r"\1", text)
    return _CODE.sub(r"\1", text)


def message(mrkdwn: str) -> dict[str, Any]:
    """The keyword arguments of chat.postMessage / respond() for one mrkdwn text."""
    return {"text": fallback_text(mrkdwn), "blocks": section_blocks(mrkdwn)}


# --- errors ----------------------------------------------------------------------------------


def error_code(exc: SlackApiError) -> str:
    """Slack's `error` ("channel_not_found"), or "HTTP 503" when the answer was not JSON."""
    response = exc.response
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return f"HTTP {status}" if status else "unexpected answer"


def _retry_after(exc: SlackApiError) -> float | None:
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    if status != 429 and error_code(exc) != "ratelimited":
        return None
    headers = getattr(response, "headers", None) or {}
    try:
        return max(float(headers.get("Retry-After", "1")), 0.0)
    except ValueError:
        return 1.0


def describe(code: str) -> str:
    """'not_in_channel (invite the bot to the channel: /invite @bot)'."""
    hint = _HINTS.get(code)
    return f"{code} ({hint})" if hint else code


def delivery_error(exc: Exception, what: str = "Slack") -> DeliveryError:
    """The dispatcher's view of a failed Slack call: permanent, wait exactly, or retry."""
    if isinstance(exc, SlackApiError):
        code = error_code(exc)
        retry_after = _retry_after(exc)
        if retry_after is not None:
            return DeliveryError(f"{what}: ratelimited", retry_after=retry_after)
        return DeliveryError(f"{what}: {describe(code)}", permanent=code in PERMANENT_ERRORS)
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"{what}: no answer in time")
    # connection refused or reset, a bad upload answer, ...: worth another try
    return DeliveryError(f"{what}: {type(exc).__name__}: {exc}".rstrip(": "))


# refusals of an upload that concern the channel or the token, not the file: the text
# would be refused the same way, so they are not a "picture refused"
_NOT_THE_PICTURE = AUTH_ERRORS | {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "restricted_action_read_only_channel",
}


def upload_error(exc: Exception) -> DeliveryError:
    """A failed chart upload; a permanent refusal of the file alone (no `files:write`
    scope, ...) says so, so that the summary's text still goes out."""
    error = delivery_error(exc, "Slack file upload")
    if not isinstance(exc, SlackApiError) or not error.permanent:
        return error
    code = error_code(exc)
    if code in _NOT_THE_PICTURE:
        return error
    data = getattr(exc.response, "data", None)
    needed = data.get("needed") if isinstance(data, dict) else None
    if code == "missing_scope":
        scope = needed if isinstance(needed, str) and needed else "files:write"
        hint = (
            f"the Slack app lacks the {scope} scope: add it under OAuth & Permissions "
            "and reinstall the app"
        )
    else:
        hint = "Slack would not take the chart"
    return DeliveryError(
        f"Slack file upload: {code}: {hint}",
        permanent=True,
        counted=False,
        picture_refused=True,
    )


# what a call through slack-sdk raises when it fails
FAILURES = (SlackClientError, aiohttp.ClientError, TimeoutError)


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
        self.app = AsyncApp(
            client=client,
            name="ria-calls-bot",
            signing_secret=signing_secret or "",
            request_verification_enabled=signing_secret is not None,
        )
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self.connected = False
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

    async def _post(self, target: str, text: str, **extra: Any) -> dict[str, Any]:
        try:
            resp = await self.client.chat_postMessage(
                channel=target, unfurl_links=False, unfurl_media=False, **message(text), **extra
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
            self._uploaded[key] = str(resp.get("file", {}).get("id", ""))
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
        extra = {"thread_ts": thread_ts} if thread_ts else {}
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
        delay = 1.0
        while True:
            try:
                auth = await self.client.auth_test()
                break
            except SlackApiError as exc:
                code = error_code(exc)
                if code in AUTH_ERRORS:
                    self.last_error = f"SLACK_BOT_TOKEN was refused by Slack ({code})"
                    log.error("slack: %s; alerts wait in the outbox", self.last_error)
                    return
                self.last_error = f"auth.test: {code}"
            except FAILURES as exc:
                self.last_error = f"cannot reach Slack: {type(exc).__name__}"
            log.warning("slack: %s; retrying in %.0f s", self.last_error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
        self.bot_user = str(auth.get("user") or auth.get("user_id") or "")
        self.last_error = None
        if self.app_token:
            if not await self._open_socket():
                return
            self.mode = "Socket Mode"
        elif self.signing_secret:
            self.mode = f"HTTP mode at {WEBHOOK_PATH}"
        self.connected = True
        log.info("slack: connected as @%s in %s (%s)", self.bot_user, auth.get("team"), self.mode)

    async def _open_socket(self) -> bool:
        """Open Socket Mode, retrying with backoff; False if the app token is refused.

        We ask apps.connections.open ourselves, so that a refused token is one clear log
        line rather than the SDK's retry loop, and bound the WebSocket handshake in time:
        the SDK retries a failed handshake forever on the same URL. Once connected, the SDK
        reconnects by itself (pings, Slack's `disconnect` messages, closed sockets).
        """
        assert self.app_token is not None
        delay = 1.0
        while True:
            handler = AsyncSocketModeHandler(self.app, self.app_token, web_client=self.client)
            try:
                opened = await self.client.apps_connections_open(app_token=self.app_token)
                handler.client.wss_uri = opened["url"]
                await asyncio.wait_for(handler.connect_async(), SOCKET_CONNECT_TIMEOUT_S)
                self._socket = handler
                return True
            except SlackApiError as exc:
                code = error_code(exc)
                if code in AUTH_ERRORS or code == "not_allowed_token_type":
                    await handler.close_async()
                    self.last_error = f"SLACK_APP_TOKEN was refused by Slack ({code})"
                    log.error("slack: %s; commands are off, alerts still go out", self.last_error)
                    return False
                self.last_error = f"apps.connections.open: {code}"
            except FAILURES as exc:
                self.last_error = f"cannot open Socket Mode: {type(exc).__name__}"
            except BaseException:
                await handler.close_async()
                raise
            await handler.close_async()
            log.warning("slack: %s; retrying in %.0f s", self.last_error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

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
        return [web.post(WEBHOOK_PATH, self.handle_request)]

    async def handle_request(self, request: web.Request) -> web.Response:
        """Verify the signature (bad or older than 5 minutes: 401, nothing runs), then let
        Bolt dispatch; Bolt answers as soon as the listener calls ack()."""
        body = await request.text()
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if self._verifier is None or not timestamp.isdigit():
            return web.json_response({"error": "invalid request"}, status=401)
        if not self._verifier.is_valid(body, timestamp, signature):
            log.info("slack: refused a request with a bad or stale signature")
            return web.json_response({"error": "invalid request"}, status=401)
        bolt_response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)
