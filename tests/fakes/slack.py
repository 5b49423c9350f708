"""A fake Slack: the Web API, response_url, file uploads and Socket Mode, for tests.

Point the real slack-sdk at it::

    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)

It answers like slack.com/api: API errors are HTTP 200 with `{"ok": false, "error": ...}`
(`invalid_auth` for a wrong token, `channel_not_found`, `not_in_channel`, `is_archived`,
`invalid_blocks`, ...), a rate limit is HTTP 429 with a `Retry-After` header, and
chat.postMessage is limited to one message a second per channel. Files go through
files.getUploadURLExternal → POST to the upload URL → files.completeUploadExternal.
`apps.connections.open` (with the app-level token) returns a ws:// URL to a Socket Mode
WebSocket served here, which sends `hello`, pushes slash commands and events as envelopes
(`push_slash_command`, `push_mention`) and records the client's acks.

Like Slack, it can also *send* a signed slash command to an app's Request URL
(`post_slash_command`), with its `response_url` pointing back here, where answers are
recorded (`responses`). Run standalone with ``python -m tests.fakes.slack --port 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import secrets
import time
import urllib.parse
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes._base import (
    FakeServer,
    Fault,
    json_reply,
    run_standalone,
    swallow_dropped,
    wait_any,
)

JSONDict = dict[str, Any]

DEFAULT_BOT_TOKEN = "xoxb-1000000001-2000000002-FakeBotTokenAbcdef0123"
DEFAULT_APP_TOKEN = "xapp-1-A0FAKEAPP1-3000000003-fakeapptoken0123456789abcdef"
DEFAULT_SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM_ID = "T0FAKETEAM"
TEAM_NAME = "Fake Motors"
BOT_USER_ID = "U0FAKEBOT1"
BOT_ID = "B0FAKEBOT1"
BOT_NAME = "ria_calls_bot"
APP_ID = "A0FAKEAPP1"
USER_ID = "U0MANAGER1"

SECTION_TEXT_LIMIT = 3000
MAX_BLOCKS = 50
MAX_TEXT = 40_000
MAX_FILE_BYTES = 1024 * 1024 * 1024
# Form fields that hold JSON (slack-sdk sends some parameters form-encoded)
JSON_FIELDS = frozenset({"blocks", "attachments", "files", "metadata"})
# Methods that post or change a message: fault injection applies to these
SENDING_METHODS = frozenset(
    {
        "chat.postMessage",
        "chat.postEphemeral",
        "chat.update",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    }
)


# the bot-token scope each method needs (only those a test may take away)
_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "conversations.info": "channels:read",
}


class SlackFailure(Exception):
    """An API error: `{"ok": false, "error": code}` with `status` (200, as Slack does)."""

    def __init__(self, error: str, status: int = 200, headers: dict[str, str] | None = None):
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = headers or {}


@dataclass
class FakeChannel:
    id: str
    name: str
    is_private: bool = False
    is_member: bool = True
    is_archived: bool = False

    @property
    def is_im(self) -> bool:
        return self.id.startswith("D")


def signature(secret: str, timestamp: str | int, body: str | bytes) -> str:
    """Slack's v0 request signature: HMAC-SHA256 of "v0:{timestamp}:{body}"."""
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode() + b":" + raw
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: str | bytes, timestamp: int | None = None) -> JSONDict:
    """The headers Slack sends with a request to an app's Request URL."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature(secret, ts, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }


class FakeSlack(FakeServer):
    """Fake Slack. See the module docstring and the attribute list in __init__."""

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        app_token: str = DEFAULT_APP_TOKEN,
        channels: Iterable[str | FakeChannel] | None = None,
        enforce_limits: bool = True,
        channel_limit: tuple[int, float] = (1, 1.0),
        limit_grace: float = 0.05,
        host: str = "127.0.0.1",
        port: int = 0,
        max_hang: float = 30.0,
    ) -> None:
        super().__init__(host=host, port=port, max_hang=max_hang)
        self.bot_token = bot_token
        self.app_token = app_token
        # None: every well-formed channel id exists and has the bot in it
        self.channels: dict[str, FakeChannel] | None = None
        if channels is not None:
            self.channels = {}
            for channel in channels:
                self.add_channel(channel)
        # chat.postMessage per channel: (messages, window seconds), sliding. Slack tolerates
        # short bursts; `limit_grace` forgives a send that arrives a little early because
        # the one before it spent longer on the wire.
        self.enforce_limits = enforce_limits
        self.channel_limit = channel_limit
        self.limit_grace = limit_grace

        # Records.
        self.requests: list[JSONDict] = []
        # Scopes the bot token lacks: a method that needs one answers missing_scope with
        # `needed` and `provided`, as Slack does (e.g. {"files:write"}: no chart uploads).
        self.missing_scopes: set[str] = set()
        self.messages: list[JSONDict] = []  # chat.postMessage, and files shared to a channel
        self.ephemeral: list[JSONDict] = []
        self.updates: list[JSONDict] = []
        # (channel, ts) of messages chat.update refuses with cant_update_message (too old)
        self.uneditable: set[tuple[str, str]] = set()
        self.files: dict[str, JSONDict] = {}
        self.responses: list[JSONDict] = []  # what apps POSTed to response_urls
        self.acks: list[JSONDict] = []  # Socket Mode acknowledgements
        self.socket_connections = 0
        self.rate_limited = 0

        self._seq = itertools.count(1)
        self._sent_at: dict[str, deque[float]] = defaultdict(deque)
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._changed: asyncio.Event | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """SLACK_API_URL for the service: the Web API base, with its trailing slash."""
        return f"{self.url}/api/"

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=60 * 1024 * 1024, middlewares=[swallow_dropped])
        app.router.add_route("*", "/_fake/{action}", self._control)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_post("/_responses/{rid}", self._response)
        app.router.add_get("/link/", self._socket)
        return app

    async def _on_started(self) -> None:
        self._changed = asyncio.Event()

    async def _on_stopping(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        self._sockets.clear()

    # --- test-facing helpers ---------------------------------------------------------------

    def add_channel(self, channel: str | FakeChannel, **attrs: Any) -> FakeChannel:
        """Make a channel exist (by default public, with the bot in it)."""
        if isinstance(channel, str):
            channel = FakeChannel(channel, attrs.pop("name", f"sales-{channel.lower()}"), **attrs)
        if self.channels is None:
            self.channels = {}
        self.channels[channel.id] = channel
        return channel

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        error: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Make the next `n` sending calls (chat.postMessage, files.*, ...) fail.

        status 200 with `error`: `{"ok": false, "error": error}` as Slack reports API errors;
        429: `Retry-After` (default 1) and `{"ok": false, "error": "ratelimited"}`;
        500/502/503/504: an HTML error page, as Slack's edge answers when it is down.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        self._push_faults(n, Fault(status, error, retry_after))

    def messages_for(self, channel: str) -> list[JSONDict]:
        return [m for m in self.messages if m["channel"] == channel]

    async def wait_for_messages(
        self, n: int, timeout: float = 10.0, channel: str | None = None
    ) -> list[JSONDict]:
        """Once at least `n` messages arrived (in `channel` if given), return all of them."""

        def current() -> list[JSONDict]:
            return self.messages if channel is None else self.messages_for(channel)

        await self._wait_until(
            lambda: len(current()) >= n,
            timeout,
            lambda: (
                f"{n} message(s){'' if channel is None else f' in {channel}'}, got "
                + json.dumps([_brief(m) for m in current()], ensure_ascii=False)
            ),
        )
        return list(current())

    def response_url(self, rid: str | None = None) -> str:
        """A response_url as Slack puts in a slash command; answers to it are recorded."""
        return f"{self.url}/_responses/{rid or secrets.token_hex(8)}"

    async def wait_for_response(self, url: str, timeout: float = 10.0) -> JSONDict:
        """The first answer POSTed to `url` (a response_url from this fake)."""
        rid = url.rstrip("/").rsplit("/", 1)[-1]

        def found() -> list[JSONDict]:
            return [r for r in self.responses if r["id"] == rid]

        await self._wait_until(lambda: bool(found()), timeout, lambda: f"an answer to {url}")
        return found()[0]

    def slash_command(
        self,
        channel_id: str,
        command: str,
        text: str = "",
        *,
        user_id: str = USER_ID,
        response_url: str | None = None,
    ) -> JSONDict:
        """The fields of a slash command, as Slack sends them (form-encoded, or as a Socket
        Mode envelope's payload)."""
        return {
            "token": "fakeVerificationToken",
            "team_id": TEAM_ID,
            "team_domain": "fakemotors",
            "channel_id": channel_id,
            "channel_name": self._channel_name(channel_id),
            "user_id": user_id,
            "user_name": "manager",
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url or self.response_url(),
            "trigger_id": f"{next(self._seq)}.{TEAM_ID}.{secrets.token_hex(8)}",
        }

    async def post_slash_command(
        self,
        url: str,
        signing_secret: str,
        channel_id: str,
        command: str,
        text: str = "",
        *,
        timestamp: int | None = None,
        bad_signature: bool = False,
        user_id: str = USER_ID,
    ) -> tuple[int, str, str]:
        """Send a slash command to an app's Request URL as Slack does, signed;
        returns (HTTP status, body, the response_url it carried)."""
        fields = self.slash_command(channel_id, command, text, user_id=user_id)
        status, body = await self.post_signed(
            url,
            signing_secret,
            urllib.parse.urlencode(fields),
            timestamp=timestamp,
            bad_signature=bad_signature,
        )
        return status, body, fields["response_url"]

    async def post_event(
        self, url: str, signing_secret: str, event: JSONDict, **kwargs: Any
    ) -> tuple[int, str]:
        """Send an Events API request (`event_callback` around `event`) to a Request URL."""
        body = json.dumps(self.event_callback(event))
        return await self.post_signed(url, signing_secret, body, json_body=True, **kwargs)

    async def post_signed(
        self,
        url: str,
        signing_secret: str,
        body: str,
        *,
        json_body: bool = False,
        timestamp: int | None = None,
        bad_signature: bool = False,
    ) -> tuple[int, str]:
        """POST `body` with Slack's signature headers; returns (HTTP status, body)."""
        headers = signed_headers(signing_secret, body, timestamp)
        if json_body:
            headers["Content-Type"] = "application/json"
        if bad_signature:
            headers["X-Slack-Signature"] = signature("not-" + signing_secret, 0, body)
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=body.encode(), headers=headers) as resp,
        ):
            return resp.status, await resp.text()

    def mention(
        self, channel_id: str, text: str, *, user_id: str = USER_ID, thread_ts: str | None = None
    ) -> JSONDict:
        """An app_mention event. Write the mention as Slack does: f"<@{BOT_USER_ID}> stats"."""
        ts = self._ts()
        event: JSONDict = {
            "type": "app_mention",
            "user": user_id,
            "text": text,
            "ts": ts,
            "channel": channel_id,
            "event_ts": ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return event

    # --- Socket Mode ---------------------------------------------------------------------

    @property
    def socket_connected(self) -> bool:
        return any(not ws.closed for ws in self._sockets)

    async def wait_socket_connected(self, timeout: float = 10.0) -> None:
        await self._wait_until(
            lambda: self.socket_connected, timeout, lambda: "a Socket Mode client"
        )

    async def push_slash_command(
        self, channel_id: str, command: str, text: str = "", *, user_id: str = USER_ID
    ) -> tuple[str, str]:
        """Deliver a slash command over Socket Mode; returns (envelope_id, response_url)."""
        payload = self.slash_command(channel_id, command, text, user_id=user_id)
        envelope_id = await self._push("slash_commands", payload, accepts_response_payload=True)
        return envelope_id, payload["response_url"]

    async def push_mention(
        self,
        channel_id: str,
        text: str,
        *,
        user_id: str = USER_ID,
        thread_ts: str | None = None,
    ) -> tuple[str, str]:
        """Deliver an app_mention event over Socket Mode; returns (envelope_id, event ts).
        Write the mention as Slack does: f"<@{BOT_USER_ID}> stats today"."""
        event = self.mention(channel_id, text, user_id=user_id, thread_ts=thread_ts)
        payload = self.event_callback(event)
        envelope_id = await self._push("events_api", payload, accepts_response_payload=False)
        return envelope_id, event["ts"]

    def event_callback(self, event: JSONDict) -> JSONDict:
        """An Events API body around `event`, as Slack sends it."""
        return {
            "token": "fakeVerificationToken",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._seq):08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

    async def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> JSONDict:
        def found() -> list[JSONDict]:
            return [a for a in self.acks if a.get("envelope_id") == envelope_id]

        await self._wait_until(lambda: bool(found()), timeout, lambda: f"ack of {envelope_id}")
        return found()[0]

    async def disconnect_sockets(self, reason: str = "refresh_requested") -> None:
        """Ask every client to reconnect, as Slack does every few hours."""
        for ws in list(self._sockets):
            if not ws.closed:
                await ws.send_json(
                    {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}
                )

    async def _push(self, kind: str, payload: JSONDict, *, accepts_response_payload: bool) -> str:
        open_sockets = [ws for ws in self._sockets if not ws.closed]
        if not open_sockets:
            raise RuntimeError("no Socket Mode client is connected")
        envelope_id = secrets.token_hex(16)
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": accepts_response_payload,
            "payload": payload,
        }
        if kind == "events_api":
            envelope |= {"retry_attempt": 0, "retry_reason": ""}
        await open_sockets[-1].send_json(envelope)
        return envelope_id

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        await self._gate(request)
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        self._tickets.discard(ticket)  # a URL works once, like Slack's
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        self._notify()
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len([s for s in self._sockets if not s.closed]),
                "debug_info": {
                    "host": "fake",
                    "build_number": 1,
                    "approximate_connection_time": 3600,
                },
                "connection_info": {"app_id": APP_ID},
            }
        )
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                with contextlib.suppress(ValueError):
                    data = json.loads(msg.data)
                    if isinstance(data, dict) and "envelope_id" in data:
                        self.acks.append(data | {"t": time.monotonic()})
                        self._notify()
        finally:
            with contextlib.suppress(ValueError):
                self._sockets.remove(ws)
            self._notify()
        return ws

    # --- internals -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget records, faults and rate-limit state (configuration stays)."""
        for records in (self.requests, self.messages, self.ephemeral, self.updates):
            records.clear()
        self.responses.clear()
        self.acks.clear()
        self.files.clear()
        self.rate_limited = 0
        self._sent_at.clear()
        self.clear_faults()
        self.mode = "ok"

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def _wait_until(self, ready: Any, timeout: float, what: Any) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"waited {timeout}s for {what()}")
            if self._changed is None:
                self._changed = asyncio.Event()
            await wait_any([self._changed.wait()], remaining)

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._seq):06d}"

    def _channel_name(self, channel_id: str) -> str:
        channel = (self.channels or {}).get(channel_id)
        if channel is not None:
            return channel.name
        return "directmessage" if channel_id.startswith("D") else f"sales-{channel_id.lower()}"

    def _channel(self, channel_id: Any, *, posting: bool) -> FakeChannel:
        cid = str(channel_id or "")
        if not cid:
            raise SlackFailure("channel_not_found")
        if self.channels is None:
            if not (cid[:1] in "CGD" and cid[1:].isalnum() and len(cid) >= 7):
                raise SlackFailure("channel_not_found")
            return FakeChannel(cid, self._channel_name(cid), is_private=cid.startswith("G"))
        channel = self.channels.get(cid)
        if channel is None or (channel.is_private and not channel.is_member):
            raise SlackFailure("channel_not_found")  # a private channel is invisible outside
        if posting and channel.is_archived:
            raise SlackFailure("is_archived")
        if posting and not channel.is_member and not channel.is_im:
            raise SlackFailure("not_in_channel")
        return channel

    def _check_rate(self, channel_id: str) -> None:
        if not self.enforce_limits:
            return
        count, window = self.channel_limit
        now = time.monotonic()
        sent = self._sent_at[channel_id]
        while sent and sent[0] <= now - (window - self.limit_grace):
            sent.popleft()
        if len(sent) >= count:
            wait = sent[-count] + window - now
            self.rate_limited += 1
            raise SlackFailure("ratelimited", 429, {"Retry-After": str(max(1, math.ceil(wait)))})
        sent.append(now)

    @staticmethod
    def _check_text_and_blocks(params: JSONDict) -> tuple[str, list[JSONDict] | None]:
        text = params.get("text")
        blocks = params.get("blocks")
        if blocks in ("", None):
            blocks = None
        if blocks is not None:
            errors = _block_errors(blocks)
            if errors:
                raise _BlocksError(errors)
        if not text and not blocks:
            raise SlackFailure("no_text")
        text = "" if text is None else str(text)
        if len(text) > MAX_TEXT:
            raise SlackFailure("msg_too_long")
        return text, blocks

    # --- HTTP: the Web API -----------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        entry: JSONDict = {"method": method, "params": {}, "status": None, "t": time.monotonic()}
        self.requests.append(entry)
        try:
            await self._gate(request)
            if self.mode == "down_500":
                return self._edge_error(500, entry)
            params = await _read_params(request)
            token = _bearer(request) or params.pop("token", None)
            entry["params"] = params
            if method in SENDING_METHODS:
                fault = self._pop_fault()
                if fault is not None:
                    return self._fault_response(fault, entry)
            impl = self._methods().get(method)
            if impl is None:
                raise SlackFailure("unknown_method")
            self._authenticate(method, token)
            needed = _SCOPES.get(method)
            if needed in self.missing_scopes:
                entry["status"] = 200
                entry["error"] = "missing_scope"
                provided = ",".join(sorted(set(_SCOPES.values()) - self.missing_scopes))
                return web.json_response(
                    {"ok": False, "error": "missing_scope", "needed": needed, "provided": provided}
                )
            result = await impl(params)
            entry["status"] = 200
            return web.json_response({"ok": True, **result})
        except _BlocksError as err:
            entry["status"] = 200
            entry["error"] = "invalid_blocks"
            return web.json_response({"ok": False, "error": "invalid_blocks", "errors": err.errors})
        except SlackFailure as err:
            entry["status"] = err.status
            entry["error"] = err.error
            return web.json_response(
                {"ok": False, "error": err.error}, status=err.status, headers=err.headers
            )
        finally:
            if entry["status"] is None:
                entry["status"] = "dropped"
            self._notify()

    def _authenticate(self, method: str, token: str | None) -> None:
        if not token:
            raise SlackFailure("not_authed")
        if method == "apps.connections.open":
            if token == self.app_token:
                return
            if token == self.bot_token:
                raise SlackFailure("not_allowed_token_type")
            raise SlackFailure("invalid_auth")
        if token == self.app_token:
            raise SlackFailure("not_allowed_token_type")
        if token != self.bot_token:
            raise SlackFailure("invalid_auth")

    def _fault_response(self, fault: Fault, entry: JSONDict) -> web.Response:
        entry["injected"] = True
        if fault.status == 429:
            self.rate_limited += 1
            entry["status"] = 429
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(fault.retry_after or 1)},
            )
        if fault.status >= 500:
            return self._edge_error(fault.status, entry)
        entry["status"] = fault.status
        entry["error"] = fault.description or "internal_error"
        return web.json_response({"ok": False, "error": entry["error"]}, status=fault.status)

    @staticmethod
    def _edge_error(status: int, entry: JSONDict) -> web.Response:
        entry["status"] = status
        phrase = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        title = f"{status} {phrase.get(status, 'Error')}"
        html = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        return web.Response(status=status, text=html, content_type="text/html")

    def _methods(self) -> dict[str, Any]:
        return {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.update": self._chat_update,
            "conversations.info": self._conversations_info,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "apps.connections.open": self._connections_open,
        }

    async def _api_test(self, params: JSONDict) -> JSONDict:
        return {"args": params}

    async def _auth_test(self, params: JSONDict) -> JSONDict:
        return {
            "url": "https://fakemotors.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    async def _post_message(self, params: JSONDict) -> JSONDict:
        channel = self._channel(params.get("channel"), posting=True)
        text, blocks = self._check_text_and_blocks(params)
        self._check_rate(channel.id)
        ts = self._ts()
        message: JSONDict = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": text,
            "ts": ts,
            "team": TEAM_ID,
        }
        if blocks is not None:
            message["blocks"] = blocks
        if params.get("thread_ts"):
            message["thread_ts"] = str(params["thread_ts"])
        self.messages.append(
            {
                "method": "chat.postMessage",
                "channel": channel.id,
                "ts": ts,
                "text": text,
                "blocks": blocks,
                "mrkdwn": _blocks_text(blocks),
                "thread_ts": message.get("thread_ts"),
                "files": [],
                "params": params,
                "t": time.monotonic(),
                "time": time.time(),
            }
        )
        return {"channel": channel.id, "ts": ts, "message": message}

    async def _post_ephemeral(self, params: JSONDict) -> JSONDict:
        channel = self._channel(params.get("channel"), posting=True)
        if not params.get("user"):
            raise SlackFailure("user_not_in_channel")
        text, blocks = self._check_text_and_blocks(params)
        ts = self._ts()
        self.ephemeral.append(
            {
                "channel": channel.id,
                "user": str(params["user"]),
                "text": text,
                "blocks": blocks,
                "ts": ts,
                "t": time.monotonic(),
            }
        )
        return {"message_ts": ts}

    async def _chat_update(self, params: JSONDict) -> JSONDict:
        channel = self._channel(params.get("channel"), posting=True)
        ts = str(params.get("ts") or "")
        original = next(
            (m for m in self.messages if m["channel"] == channel.id and m["ts"] == ts), None
        )
        if original is None:
            raise SlackFailure("message_not_found")
        if (channel.id, ts) in self.uneditable:
            raise SlackFailure("cant_update_message")
        text, blocks = self._check_text_and_blocks(params)
        original.update(text=text, blocks=blocks, mrkdwn=_blocks_text(blocks))
        self.updates.append({"channel": channel.id, "ts": ts, "text": text, "blocks": blocks})
        return {"channel": channel.id, "ts": ts, "text": text}

    async def _conversations_info(self, params: JSONDict) -> JSONDict:
        channel = self._channel(params.get("channel"), posting=False)
        info: JSONDict = {
            "id": channel.id,
            "created": 1700000000,
            "is_archived": channel.is_archived,
            "is_im": channel.is_im,
        }
        if not channel.is_im:
            info |= {
                "name": channel.name,
                "is_channel": not channel.is_private,
                "is_group": channel.is_private,
                "is_private": channel.is_private,
                "is_member": channel.is_member,
            }
        return {"channel": info}

    async def _get_upload_url(self, params: JSONDict) -> JSONDict:
        filename = params.get("filename")
        length = params.get("length")
        if not filename or length in (None, ""):
            raise SlackFailure("invalid_arguments")
        try:
            size = int(length)
        except (TypeError, ValueError):
            raise SlackFailure("invalid_arguments") from None
        if size <= 0 or size > MAX_FILE_BYTES:
            raise SlackFailure("invalid_arguments")
        file_id = f"F{next(self._seq):010d}"
        self.files[file_id] = {
            "id": file_id,
            "name": str(filename),
            "length": size,
            "alt_txt": params.get("alt_txt"),
            "data": None,
            "title": None,
            "channel": None,
            "completed": False,
        }
        return {"upload_url": f"{self.url}/upload/v1/{file_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.Response:
        await self._gate(request)
        record = self.files.get(request.match_info["file_id"])
        data = await request.read()
        if record is None or record["completed"]:
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        record["data"] = data
        self._notify()
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _complete_upload(self, params: JSONDict) -> JSONDict:
        items = params.get("files")
        if not isinstance(items, list) or not items:
            raise SlackFailure("invalid_arguments")
        records = []
        for item in items:
            record = self.files.get(str(item.get("id") if isinstance(item, dict) else ""))
            if record is None or record["data"] is None:
                raise SlackFailure("file_not_found")
            if len(record["data"]) != record["length"]:
                raise SlackFailure("file_uploads_size_mismatch")  # fewer bytes than announced
            records.append((record, item))
        channel = None
        if params.get("channel_id"):
            channel = self._channel(params["channel_id"], posting=True)
            self._check_rate(channel.id)
        shared = []
        for record, item in records:
            record.update(
                completed=True,
                title=item.get("title") or record["name"],
                channel=channel.id if channel else None,
            )
            shared.append(
                {
                    "id": record["id"],
                    "name": record["name"],
                    "title": record["title"],
                    "mimetype": _mimetype(record["data"]),
                    "size": len(record["data"]),
                }
            )
        if channel is not None:
            comment = str(params.get("initial_comment") or "")
            self.messages.append(
                {
                    "method": "files.completeUploadExternal",
                    "channel": channel.id,
                    "ts": self._ts(),
                    "text": comment,
                    "blocks": None,
                    "mrkdwn": comment,
                    "thread_ts": params.get("thread_ts"),
                    "files": [r["id"] for r, _ in records],
                    "params": params,
                    "t": time.monotonic(),
                    "time": time.time(),
                }
            )
        return {"files": shared}

    async def _connections_open(self, params: JSONDict) -> JSONDict:
        ticket = secrets.token_hex(12)
        self._tickets.add(ticket)
        return {"url": f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"}

    # --- response_url ----------------------------------------------------------------------

    async def _response(self, request: web.Request) -> web.Response:
        await self._gate(request)
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload", content_type="text/plain")
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return web.Response(status=400, text="no_text", content_type="text/plain")
        blocks = body.get("blocks")
        errors = _block_errors(blocks) if blocks else []
        if errors:
            return web.Response(status=400, text="invalid_blocks", content_type="text/plain")
        self.responses.append(
            {
                "id": request.match_info["rid"],
                "body": body,
                "text": body.get("text", ""),
                "blocks": blocks,
                "mrkdwn": _blocks_text(blocks) if blocks else body.get("text", ""),
                "response_type": body.get("response_type", "ephemeral"),
                "t": time.monotonic(),
            }
        )
        self._notify()
        return web.Response(text="ok", content_type="text/plain")

    # --- control API for other processes (the common actions: FakeServer._control) ----------

    TARGET_KEY = "channel"

    def _control_state(self) -> JSONDict:
        channels = self.channels
        return {
            "socket_connected": self.socket_connected,
            "channels": None if channels is None else [asdict(c) for c in channels.values()],
        }

    async def _control_action(self, action: str, body: JSONDict, query: Any) -> web.Response | None:
        if action == "responses":
            return json_reply(self.responses)
        if action == "acks":
            return json_reply(self.acks)
        if action == "channel":
            channel = self.add_channel(
                FakeChannel(
                    body["id"],
                    body.get("name", f"sales-{body['id'].lower()}"),
                    is_private=bool(body.get("is_private", False)),
                    is_member=bool(body.get("is_member", True)),
                    is_archived=bool(body.get("is_archived", False)),
                )
            )
            return json_reply(asdict(channel))
        if action in ("push_command", "push_mention"):
            try:
                if action == "push_command":
                    envelope, url = await self.push_slash_command(
                        body["channel_id"], body["command"], body.get("text", "")
                    )
                    return json_reply({"envelope_id": envelope, "response_url": url})
                envelope, ts = await self.push_mention(body["channel_id"], body["text"])
                return json_reply({"envelope_id": envelope, "ts": ts})
            except RuntimeError as exc:
                return json_reply({"error": str(exc)}, status=409)
        return None


class _BlocksError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _block_errors(blocks: Any) -> list[str]:
    """What Slack would say is wrong with `blocks` (the subset of Block Kit we use)."""
    if not isinstance(blocks, list):
        return ["expected an array of blocks [json-pointer:/blocks]"]
    if len(blocks) > MAX_BLOCKS:
        return [f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"]
    errors = []
    for i, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}]"
        if not isinstance(block, dict) or not block.get("type"):
            errors.append(f"missing required field: type {where}")
            continue
        if block["type"] == "section":
            text = block.get("text")
            if not isinstance(text, dict) or text.get("type") not in ("mrkdwn", "plain_text"):
                errors.append(f"must provide an object with a valid text type {where}")
            elif not text.get("text"):
                errors.append(
                    f"must be more than 0 characters [json-pointer:/blocks/{i}/text/text]"
                )
            elif len(text["text"]) > SECTION_TEXT_LIMIT:
                errors.append(
                    f"must be less than {SECTION_TEXT_LIMIT + 1} characters "
                    f"[json-pointer:/blocks/{i}/text/text]"
                )
        elif block["type"] == "image":
            if not (block.get("image_url") or block.get("slack_file")) or not block.get("alt_text"):
                errors.append(f"missing required field: image_url or alt_text {where}")
        elif block["type"] not in ("divider", "context", "header", "actions", "rich_text"):
            errors.append(f"unsupported block type {block['type']!r} {where}")
    return errors


def _blocks_text(blocks: list[JSONDict] | None) -> str:
    """The mrkdwn of all section blocks, joined as the reader sees them."""
    if not blocks:
        return ""
    return "\n".join(
        b["text"]["text"] for b in blocks if b.get("type") == "section" and b.get("text")
    )


async def _read_params(request: web.Request) -> JSONDict:
    """Query, form and JSON parameters merged, as Slack accepts all three."""
    params: JSONDict = dict(request.query)
    if request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise SlackFailure("invalid_json") from None
            if not isinstance(body, dict):
                raise SlackFailure("invalid_json")
            params.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in JSON_FIELDS & params.keys():
        if isinstance(params[key], str):
            try:
                params[key] = json.loads(params[key]) if params[key] else None
            except ValueError:
                raise SlackFailure(f"invalid_{key}") from None
    return params


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() or None if auth.lower().startswith("bearer ") else None


def _mimetype(data: bytes) -> str:
    return "image/png" if data.startswith(b"\x89PNG\r\n\x1a\n") else "application/octet-stream"


def _brief(m: JSONDict) -> JSONDict:
    return {"channel": m["channel"], "ts": m["ts"], "text": (m.get("text") or "")[:80]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.slack", description="Run a fake Slack Web API server."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bot-token", default=DEFAULT_BOT_TOKEN)
    parser.add_argument("--app-token", default=DEFAULT_APP_TOKEN)
    parser.add_argument("--no-limits", action="store_true", help="disable the 1/s channel limit")
    parser.add_argument("--channels", default="", help="comma-separated; others: not found")
    parser.add_argument("--max-hang", type=float, default=30.0)
    args = parser.parse_args(argv)

    def make() -> FakeSlack:
        channels = [c for c in args.channels.split(",") if c] or None
        return FakeSlack(
            bot_token=args.bot_token,
            app_token=args.app_token,
            channels=channels,
            enforce_limits=not args.no_limits,
            host=args.host,
            port=args.port,
            max_hang=args.max_hang,
        )

    run_standalone(make, "FakeSlack")


if __name__ == "__main__":
    main()
