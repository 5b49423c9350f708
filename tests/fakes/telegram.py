"""A fake Telegram Bot API server for tests, benchmarks and container tests.

Point the real python-telegram-bot at it::

    async with FakeTelegram(token="123:ABC") as tg:
        bot = telegram.Bot("123:ABC", base_url=f"{tg.url}/bot", base_file_url=f"{tg.url}/file/bot")

It answers like api.telegram.org: the same JSON envelopes, HTTP statuses and descriptions,
flood limits with `retry_after`, HTML entity parsing errors, long-polling `getUpdates` and
webhook delivery. Run standalone with ``python -m tests.fakes.telegram --port 0 --token T``;
another process then drives it through the control API under ``/_fake/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import re
import struct
import time
from collections import defaultdict, deque
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes._base import (
    FakeServer,
    Fault,
    _drop_connection,
    json_reply,
    run_standalone,
    swallow_dropped,
    wait_any,
)

JSONDict = dict[str, Any]
ChatId = int | str

# Methods that post or change a message: fault injection and flood limits apply to these.
SENDING_METHODS = frozenset(
    {
        "sendmessage",
        "sendphoto",
        "senddocument",
        "editmessagetext",
        "editmessagecaption",
        "editmessagereplymarkup",
    }
)

# Real methods whose real result is plain `true` and whose effect our tests never inspect.
TRUE_METHODS = frozenset(
    {
        "answercallbackquery",
        "setmydescription",
        "setmyshortdescription",
        "setmyname",
        "setchatmenubutton",
        "setmydefaultadministratorrights",
        "pinchatmessage",
        "unpinchatmessage",
        "unpinallchatmessages",
        "setmessagereaction",
        "leavechat",
    }
)

# Parameters whose value is a string in the Bot API even when it looks like JSON or a number;
# everything else sent as a form field is JSON-decoded, as the real server does.
STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "url",
        "secret_token",
        "ip_address",
        "language_code",
        "callback_query_id",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "file_id",
        "photo",
        "document",
        "thumbnail",
        "description",
        "short_description",
        "name",
        "title",
        "query",
        "emoji",
    }
)

HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "span",
        "tg-spoiler",
        "blockquote",
        "tg-emoji",
    }
)
_TAG_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{1,10});")
_ATTR_NAME_RE = re.compile(r"[a-zA-Z0-9_-]*")
_PATH_RE = re.compile(r"^/bot([^/]*)/([^/]*)$")
_FILE_PATH_RE = re.compile(r"^/file/bot([^/]*)/(.+)$")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_BUTTON_URL_SCHEMES = ("http://", "https://", "tg://")

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024

_BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>{code} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {phrase}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class TelegramError(Exception):
    """An error answer: becomes {"ok": false, "error_code": status, "description": ...}."""

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def bad_request(what: str) -> TelegramError:
    return TelegramError(400, f"Bad Request: {what}")


def utf16_len(text: str) -> int:
    """Telegram measures text and entity offsets in UTF-16 code units."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def parse_html(text: str, *, strict: bool = True) -> tuple[str, list[JSONDict]]:
    """Parse Bot API HTML the way Telegram does; return (plain text, entities).

    Raises TelegramError 400 "Bad Request: can't parse entities: ..." with Telegram's wording.
    Telegram itself lets a bare `&` or `>` through; `strict` (the default) rejects them too,
    because our service must escape every dynamic value and a stray one means it did not.
    """

    def fail(why: str) -> TelegramError:
        return bad_request(f"can't parse entities: {why}")

    def off(i: int) -> int:
        return len(text[:i].encode("utf-8"))

    out: list[str] = []
    pos16 = 0
    stack: list[tuple[str, dict[str, str], int]] = []
    entities: list[JSONDict] = []
    i, n = 0, len(text)

    def emit(s: str) -> None:
        nonlocal pos16
        out.append(s)
        pos16 += utf16_len(s)

    while i < n:
        ch = text[i]
        if ch == "<":
            if i + 1 < n and text[i + 1] == "/":
                end = text.find(">", i)
                if end < 0:
                    raise fail(f"Unclosed end tag at byte offset {off(i)}")
                name = text[i + 2 : end].strip().lower()
                if not stack:
                    raise fail(f"Unexpected end tag at byte offset {off(i)}")
                if name != stack[-1][0]:
                    raise fail(
                        f'Unmatched end tag at byte offset {off(i)}, expected "</{stack[-1][0]}>",'
                        f' found "</{name}>"'
                    )
                tag, attrs, start16 = stack.pop()
                entity = _entity_for(tag, attrs, start16, pos16 - start16)
                if entity is not None:
                    entities.append(entity)
                i = end + 1
                continue
            j = i + 1
            while j < n and not text[j].isspace() and text[j] != ">":
                j += 1
            if j >= n:
                raise fail(f"Unclosed start tag at byte offset {off(i)}")
            name = text[i + 1 : j].lower()
            if name not in HTML_TAGS:
                raise fail(f'Unsupported start tag "{name}" at byte offset {off(i)}')
            attrs: dict[str, str] = {}
            while True:
                while j < n and text[j].isspace():
                    j += 1
                if j >= n:
                    raise fail(f"Unclosed start tag at byte offset {off(i)}")
                if text[j] == ">":
                    break
                m = _ATTR_NAME_RE.match(text, j)
                attr = m.group(0).lower() if m else ""
                if not attr:
                    raise fail(f'Empty attribute name in the tag "{name}" at byte offset {off(j)}')
                j = m.end() if m else j
                while j < n and text[j].isspace():
                    j += 1
                if j >= n:
                    raise fail(f"Unclosed start tag at byte offset {off(i)}")
                if text[j] != "=":
                    # A bare attribute, as in <blockquote expandable>.
                    attrs[attr] = ""
                    continue
                j += 1
                while j < n and text[j].isspace():
                    j += 1
                if j < n and text[j] in "\"'":
                    close = text.find(text[j], j + 1)
                    if close < 0:
                        raise fail(f"Unclosed start tag at byte offset {off(i)}")
                    raw, j = text[j + 1 : close], close + 1
                else:
                    k = j
                    while k < n and not text[k].isspace() and text[k] != ">":
                        k += 1
                    raw, j = text[j:k], k
                attrs[attr] = _decode_entities(raw)
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise fail(f'Tag "span" must have class "tg-spoiler" at byte offset {off(i)}')
            if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
                raise fail(f'Tag "tg-emoji" must have a numeric "emoji-id" at byte offset {off(i)}')
            stack.append((name, attrs, pos16))
            i = j + 1
        elif ch == "&":
            m = _ENTITY_RE.match(text, i)
            decoded = _decode_entity(m.group(1)) if m else None
            if m and decoded is not None:
                emit(decoded)
                i = m.end()
            elif strict:
                raise fail(f'Unescaped "&" at byte offset {off(i)}, write it as "&amp;"')
            else:
                emit("&")
                i += 1
        elif ch == ">" and strict:
            raise fail(f'Unescaped ">" at byte offset {off(i)}, write it as "&gt;"')
        else:
            emit(ch)
            i += 1
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _decode_entity(body: str) -> str | None:
    if body.startswith(("#x", "#X")):
        code = int(body[2:], 16)
    elif body.startswith("#"):
        code = int(body[1:])
    else:
        return _NAMED_ENTITIES.get(body)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def _decode_entities(raw: str) -> str:
    def sub(m: re.Match[str]) -> str:
        decoded = _decode_entity(m.group(1))
        return m.group(0) if decoded is None else decoded

    return _ENTITY_RE.sub(sub, raw)


def _entity_for(tag: str, attrs: dict[str, str], offset: int, length: int) -> JSONDict | None:
    if length <= 0:
        return None
    kind = _TAG_ENTITY[tag]
    entity: JSONDict = {"type": kind, "offset": offset, "length": length}
    if tag == "a":
        href = attrs.get("href", "")
        # Telegram silently drops links it will not open (tel:, javascript:, ...), keeping text.
        if not href.startswith(("http://", "https://", "tg://")):
            return None
        entity["url"] = href
    elif tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = attrs["emoji-id"]
    return entity


def chat_type_for(chat_id: ChatId) -> str:
    """Telegram's id conventions: users > 0, supergroups/channels -100..., basic groups < 0."""
    if isinstance(chat_id, str):
        return "channel"
    if chat_id > 0:
        return "private"
    return "supergroup" if str(chat_id).startswith("-100") else "group"


def norm_chat_id(value: Any) -> ChatId:
    if isinstance(value, bool):
        raise bad_request("chat not found")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    s = str(value).strip()
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    return s


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG/JPEG/GIF/WebP, or None if this is not an image we know."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return 512, 512
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xC0, 0xC1, 0xC2):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            seg_len = struct.unpack(">H", data[i + 2 : i + 4])[0]
            i += 2 + seg_len
        return 800, 600
    return None


class FakeTelegram(FakeServer):
    """Fake Bot API server. See the module docstring and the attribute list in __init__."""

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "ria_test_bot",
        enforce_limits: bool = True,
        private_limit: tuple[int, float] = (1, 1.0),
        group_limit: tuple[int, float] = (20, 60.0),
        global_limit: tuple[int, float] = (30, 1.0),
        strict_html: bool = True,
        max_poll_timeout: float = 30.0,
        max_hang: float = 30.0,
        webhook_timeout: float = 5.0,
        webhook_retry_delay: float = 0.5,
        first_update_id: int = 100_000_001,
    ) -> None:
        super().__init__(host=host, port=port, max_hang=max_hang)
        self.token = token
        self.bot_username = bot_username
        head = token.split(":", 1)[0]
        self.bot_id = int(head) if head.isdigit() else 1_234_567_890
        # Flood limits as (messages, window seconds) over a sliding window. Telegram's real
        # per-chat limit tolerates short bursts; the default here has none, so that any
        # service that does not pace itself is caught. Pass e.g. (3, 3.0) to allow a burst.
        self.enforce_limits = enforce_limits
        self.private_limit = private_limit
        self.group_limit = group_limit
        self.global_limit = global_limit
        self.strict_html = strict_html
        self.max_poll_timeout = max_poll_timeout
        self.webhook_timeout = webhook_timeout
        self.webhook_retry_delay = webhook_retry_delay

        # Chat behaviour, mutable by tests at any time.
        self.unknown_chats: set[ChatId] = set()
        self.known_chats: set[ChatId] | None = None
        self.blocked_chats: set[ChatId] = set()
        self.migrated_chats: dict[ChatId, int] = {}
        self.chat_types: dict[ChatId, str] = {}
        # Sends to these chats hang (no answer) until the chat is taken out with
        # `release_chat()` or the fake stops: one slow chat while the others answer.
        self.hanging_chats: set[ChatId] = set()
        # Groups whose permissions forbid members (the bot) to send photos: sendPhoto gets
        # 400 "Bad Request: not enough rights to send photos to the chat", text still works.
        self.photo_refused_chats: set[ChatId] = set()
        self._chat_faults: dict[ChatId, deque[Fault]] = defaultdict(deque)
        # faults for one Bot API method by name (getMe, setWebhook, getUpdates, ...)
        self._method_faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._release: asyncio.Event | None = None

        # Records.
        self.requests: list[JSONDict] = []
        self.messages: list[JSONDict] = []
        self.rate_limited = 0
        self.commands: list[JSONDict] = []
        self.commands_by_scope: dict[tuple[str, str], list[JSONDict]] = {}
        self.webhook: JSONDict = self._empty_webhook()
        self.webhook_deliveries: list[JSONDict] = []
        self.served_updates: list[int] = []
        self.files: dict[str, bytes] = {}

        self._update_ids = itertools.count(first_update_id)
        self._updates: list[JSONDict] = []
        self._update_pushed_at: dict[int, float] = {}
        self._allowed_updates: list[str] = []
        self._poll_waiter: asyncio.Future[str] | None = None
        self._message_ids: dict[ChatId, itertools.count[int]] = {}
        self._chat_messages: dict[tuple[ChatId, int], JSONDict] = {}
        self._sent_at: dict[Any, deque[float]] = defaultdict(deque)
        self._file_seq = itertools.count(1)
        self._callback_ids = itertools.count(4_000_000_000_000_000_001)
        # messages Telegram no longer lets the bot edit (older than 48 h in a group):
        # editMessageText answers "message can't be edited" (make_uneditable)
        self.uneditable: set[tuple[ChatId, int]] = set()
        self._changed: asyncio.Event | None = None
        self._webhook_wake: asyncio.Event | None = None
        self._webhook_task: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        # Chart uploads must not hit aiohttp's 1 MiB default body limit.
        app = web.Application(client_max_size=60 * 1024 * 1024, middlewares=[swallow_dropped])
        app.router.add_route("*", "/_fake/{action}", self._control)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def _on_started(self) -> None:
        self._changed = asyncio.Event()
        self._webhook_wake = asyncio.Event()
        self._webhook_task = asyncio.create_task(self._webhook_worker())
        if self._updates:
            self._webhook_wake.set()

    async def _on_stopping(self) -> None:
        if self._poll_waiter is not None and not self._poll_waiter.done():
            self._poll_waiter.set_result("stop")
        task, self._webhook_task = self._webhook_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- test-facing helpers ---------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Make the next `n` sending calls (sendMessage, sendPhoto, edit...) fail.

        500 answers {"ok":false,"error_code":500,"description":"Internal Server Error"};
        502/503/504 answer an nginx HTML page as Telegram's front end does; 429 with
        `retry_after` (default 1) carries parameters.retry_after.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        self._push_faults(n, Fault(status, description, retry_after))

    def fail_next_in(
        self,
        chat_id: ChatId,
        n: int = 1,
        status: int = 500,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Like `fail_next`, but only for sends to `chat_id` (checked before those)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        faults = self._chat_faults[norm_chat_id(chat_id)]
        faults.extend(Fault(status, description, retry_after) for _ in range(n))

    def fail_method(
        self, method: str, n: int = 1, status: int = 500, description: str | None = None
    ) -> None:
        """Make the next `n` calls of one method (e.g. "setWebhook", "getUpdates") fail."""
        faults = self._method_faults[method.lower()]
        faults.extend(Fault(status, description, None) for _ in range(n))

    def method_faults_left(self, method: str) -> int:
        return len(self._method_faults.get(method.lower(), ()))

    def push_my_chat_member(self, chat_id: ChatId, status: str, *, title: str = "Sales") -> int:
        """Queue the update Telegram sends when the bot's own membership changes
        ("kicked", "left", "member", "administrator") in `chat_id`."""
        cid = norm_chat_id(chat_id)
        chat = self._chat(cid) | {"title": title}
        user = {"id": 111_111_111, "is_bot": False, "first_name": "Admin"}
        me = self._bot_user()
        old = {"status": "member", "user": me}
        new: JSONDict = {"status": status, "user": me}
        if status == "kicked":
            new["until_date"] = 0
        change = {
            "chat": chat,
            "from": user,
            "date": int(time.time()),
            "old_chat_member": old,
            "new_chat_member": new,
        }
        return self.push_update({"my_chat_member": change})

    def hang_chat(self, chat_id: ChatId) -> None:
        """Sends to `chat_id` get no answer until `release_chat(chat_id)`."""
        self.hanging_chats.add(norm_chat_id(chat_id))

    def release_chat(self, chat_id: ChatId) -> None:
        self.hanging_chats.discard(norm_chat_id(chat_id))
        if self._release is not None:
            self._release.set()
            self._release = asyncio.Event()

    async def _hold_if_hanging(self, request: web.Request, params: JSONDict) -> None:
        cid = _chat_of(params)
        deadline = time.monotonic() + self.max_hang
        while cid is not None and cid in self.hanging_chats:
            if self._release is None:
                self._release = asyncio.Event()
            remaining = deadline - time.monotonic()
            if self.is_stopping or remaining <= 0:
                _drop_connection(request)  # as a dead upstream would
            assert self._stopping is not None
            await wait_any([self._release.wait(), self._stopping.wait()], remaining)

    def _pop_chat_fault(self, params: JSONDict) -> Fault | None:
        cid = _chat_of(params)
        faults = self._chat_faults.get(cid) if cid is not None else None
        return faults.popleft() if faults else None

    def messages_for(self, chat_id: ChatId) -> list[JSONDict]:
        cid = norm_chat_id(chat_id)
        return [m for m in self.messages if m["chat_id"] == cid]

    async def wait_for_messages(
        self,
        n: int,
        timeout: float = 10.0,
        chat_id: ChatId | None = None,
    ) -> list[JSONDict]:
        """Once at least `n` messages arrived (to `chat_id` if given), return all of them."""

        def current() -> list[JSONDict]:
            return self.messages if chat_id is None else self.messages_for(chat_id)

        deadline = time.monotonic() + timeout
        while len(current()) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = current()
                raise TimeoutError(
                    f"waited {timeout}s for {n} message(s)"
                    f"{'' if chat_id is None else f' to chat {chat_id}'}, got {len(got)}: "
                    + json.dumps([_brief(m) for m in got], ensure_ascii=False)
                )
            await self._wait_changed(remaining)
        return list(current())

    async def wait_for_reply(
        self,
        chat_id: ChatId,
        after_update_id: int | None = None,
        *,
        since: float | None = None,
        timeout: float = 10.0,
    ) -> JSONDict:
        """First message sent to `chat_id` after the update was pushed (or after `since`,
        a time.monotonic() value; with neither, any message to the chat counts)."""
        cid = norm_chat_id(chat_id)
        if after_update_id is not None:
            since = self._update_pushed_at.get(after_update_id, since)
        floor = -math.inf if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            for m in self.messages:
                if m["chat_id"] == cid and m["t"] >= floor:
                    return m
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = [_brief(m) for m in self.messages_for(cid)]
                raise TimeoutError(
                    f"no reply to chat {cid} within {timeout}s; messages to it: {got}"
                )
            await self._wait_changed(remaining)

    def push_update(self, update: JSONDict) -> int:
        """Queue a raw Update (update_id is assigned if missing); returns its update_id."""
        update = dict(update)
        update.setdefault("update_id", next(self._update_ids))
        uid = int(update["update_id"])
        self._updates.append(update)
        self._update_pushed_at[uid] = time.monotonic()
        if self._poll_waiter is not None and not self._poll_waiter.done():
            self._poll_waiter.set_result("update")
        if self._webhook_wake is not None:
            self._webhook_wake.set()
        return uid

    def push_message(
        self,
        chat_id: ChatId,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: str | None = None,
        entities: list[JSONDict] | None = None,
    ) -> int:
        """Queue an Update with a user's text message in `chat_id`; returns the update_id."""
        cid = norm_chat_id(chat_id)
        if chat_type is not None:
            self.chat_types[cid] = chat_type
        chat = self._chat(cid)
        if user_id is None:
            user_id = cid if isinstance(cid, int) and cid > 0 else 111_111_111
        message_id = self._next_message_id(cid)
        message: JSONDict = {
            "message_id": message_id,
            "from": {
                "id": user_id,
                "is_bot": False,
                "first_name": "Test",
                "last_name": "User",
                "username": f"user{user_id}",
                "language_code": "uk",
            },
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        if entities:
            message["entities"] = entities
        self._chat_messages[(cid, message_id)] = {"from_bot": False, "text": text}
        key = "channel_post" if chat["type"] == "channel" else "message"
        return self.push_update({key: message})

    def push_command(
        self,
        chat_id: ChatId,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: str | None = None,
    ) -> int:
        """Queue a user's command such as "/stats today" (or "/stats@ria_test_bot today").

        The message carries the bot_command entity Telegram adds, so PTB's CommandHandler
        matches it. Delivered by getUpdates, or POSTed to the webhook when one is set.
        """
        if not text.startswith("/"):
            raise ValueError(f"a command starts with '/': {text!r}")
        word = text.split(maxsplit=1)[0]
        entity = {"type": "bot_command", "offset": 0, "length": utf16_len(word)}
        return self.push_message(
            chat_id, text, user_id=user_id, chat_type=chat_type, entities=[entity]
        )

    def push_callback_query(
        self,
        chat_id: ChatId,
        message_id: int,
        data: str,
        *,
        user_id: int | None = None,
    ) -> int:
        """Queue an inline-button press on one of the bot's messages."""
        cid = norm_chat_id(chat_id)
        if user_id is None:
            user_id = cid if isinstance(cid, int) and cid > 0 else 111_111_111
        stored = self._chat_messages.get((cid, message_id), {})
        message = stored.get("message") or {
            "message_id": message_id,
            "chat": self._chat(cid),
            "date": int(time.time()),
        }
        query = {
            "id": str(next(self._callback_ids)),
            "from": {"id": user_id, "is_bot": False, "first_name": "Test"},
            "chat_instance": str(abs(hash(cid))),
            "message": message,
            "data": data,
        }
        return self.push_update({"callback_query": query})

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates not yet confirmed (getUpdates offset) or delivered (webhook)."""
        return list(self._updates)

    def reset(self) -> None:
        """Forget records, queued updates, faults and flood state (configuration stays)."""
        self.requests.clear()
        self.messages.clear()
        self.webhook_deliveries.clear()
        self.served_updates.clear()
        self.rate_limited = 0
        self._updates.clear()
        self._sent_at.clear()
        self._chat_faults.clear()
        self._method_faults.clear()
        self.hanging_chats.clear()
        self.clear_faults()
        self.mode = "ok"

    def reset_limits(self) -> None:
        """Forget flood history, e.g. between phases of a test."""
        self._sent_at.clear()

    # --- internals: notification -----------------------------------------------------------

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def _wait_changed(self, seconds: float) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        await wait_any([self._changed.wait()], seconds)

    # --- HTTP entry point ------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        entry: JSONDict = {
            "method": None,
            "http_method": request.method,
            "params": {},
            "status": None,
            "t": now,
            "time": time.time(),
        }
        file_match = _FILE_PATH_RE.match(request.path)
        path_match = _PATH_RE.match(request.path)
        if path_match is not None:
            entry["method"] = path_match.group(2)
            self.requests.append(entry)
        try:
            await self._gate(request)
            if self.mode == "down_500":
                raise TelegramError(500, "Internal Server Error")
            if file_match is not None:
                return self._serve_file(file_match.group(1), file_match.group(2))
            if path_match is None:
                raise TelegramError(404, "Not Found")
            token, method = path_match.groups()
            if token != self.token:
                raise TelegramError(401, "Unauthorized")
            impl = self._method(method)
            if impl is None:
                raise TelegramError(404, "Not Found")
            params, files = await self._read_params(request)
            entry["params"] = params | {k: f"<file {len(v[1])} bytes>" for k, v in files.items()}
            lname = method.lower()
            method_faults = self._method_faults.get(lname)
            if method_faults:
                return self._fault_response(method_faults.popleft(), entry)
            if lname in SENDING_METHODS:
                await self._hold_if_hanging(request, params)
                fault = self._pop_chat_fault(params) or self._pop_fault()
                if fault is not None:
                    return self._fault_response(fault, entry)
            result = await impl(params, files)
            entry["status"] = 200
            entry["result"] = result
            return web.json_response({"ok": True, "result": result})
        except TelegramError as err:
            if err.status == 429:
                self.rate_limited += 1
            entry["status"] = err.status
            entry["error"] = err.description
            body: JSONDict = {
                "ok": False,
                "error_code": err.status,
                "description": err.description,
            }
            if err.parameters:
                body["parameters"] = err.parameters
            return web.json_response(body, status=err.status)
        finally:
            if entry["status"] is None:
                entry["status"] = "dropped"
            self._notify()

    def _fault_response(self, fault: Fault, entry: JSONDict) -> web.Response:
        entry["status"] = fault.status
        entry["injected"] = True
        if fault.status in (502, 503, 504):
            phrase = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Time-out"}
            html = _BAD_GATEWAY_HTML.format(code=fault.status, phrase=phrase[fault.status])
            return web.Response(status=fault.status, text=html, content_type="text/html")
        defaults = {
            400: "Bad Request",
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not Found",
            409: "Conflict",
            500: "Internal Server Error",
        }
        body: JSONDict = {"ok": False, "error_code": fault.status}
        if fault.status == 429:
            self.rate_limited += 1
            default = f"Too Many Requests: retry after {fault.retry_after}"
            body["description"] = fault.description or default
        else:
            body["description"] = fault.description or defaults.get(fault.status, "Error")
        if fault.retry_after is not None:
            body["parameters"] = {"retry_after": fault.retry_after}
        entry["error"] = body["description"]
        return web.json_response(body, status=fault.status)

    async def _read_params(
        self, request: web.Request
    ) -> tuple[JSONDict, dict[str, tuple[str, bytes]]]:
        params: JSONDict = dict(request.query)
        files: dict[str, tuple[str, bytes]] = {}
        if request.body_exists:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise bad_request("can't parse JSON object") from exc
                if not isinstance(body, dict):
                    raise bad_request("parameters must be a JSON object")
                params.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        files[key] = (value.filename, value.file.read())
                    else:
                        params[key] = value
        # PTB (like many clients) sends every parameter as a form field holding JSON text.
        for key, value in list(params.items()):
            if isinstance(value, str) and key not in STRING_PARAMS:
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(value)
        return params, files

    def _method(self, name: str) -> Any:
        lname = name.lower()
        table = {
            "getme": self._get_me,
            "logout": self._true,
            "close": self._true,
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "sendchataction": self._send_chat_action,
            "getchat": self._get_chat,
            "getfile": self._get_file,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "getupdates": self._get_updates,
        }
        if lname in table:
            return table[lname]
        if lname in TRUE_METHODS:
            return self._true
        return None

    # --- chats, ids, limits ----------------------------------------------------------------

    def _chat(self, cid: ChatId) -> JSONDict:
        kind = self.chat_types.get(cid) or chat_type_for(cid)
        if kind == "private":
            return {
                "id": cid,
                "type": "private",
                "first_name": "Test",
                "last_name": "User",
                "username": f"user{cid}",
            }
        if kind == "channel":
            numeric = cid if isinstance(cid, int) else -1_009_999_999_999
            chat: JSONDict = {"id": numeric, "type": "channel", "title": f"Channel {cid}"}
            if isinstance(cid, str):
                chat["username"] = cid.lstrip("@")
            return chat
        return {"id": cid, "type": kind, "title": f"Test {kind} {cid}"}

    def _resolve_chat(self, params: JSONDict, *, sending: bool) -> tuple[ChatId, JSONDict]:
        if params.get("chat_id") in (None, ""):
            raise bad_request("chat_id is empty")
        cid = norm_chat_id(params["chat_id"])
        if cid in self.migrated_chats:
            raise TelegramError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self.migrated_chats[cid]},
            )
        if cid in self.unknown_chats or (
            self.known_chats is not None and cid not in self.known_chats
        ):
            raise bad_request("chat not found")
        chat = self._chat(cid)
        if sending and cid in self.blocked_chats:
            if chat["type"] == "private":
                raise TelegramError(403, "Forbidden: bot was blocked by the user")
            if chat["type"] == "channel":
                raise TelegramError(403, "Forbidden: bot is not a member of the channel chat")
            raise TelegramError(403, f"Forbidden: bot was kicked from the {chat['type']} chat")
        return cid, chat

    def _next_message_id(self, cid: ChatId) -> int:
        counter = self._message_ids.setdefault(cid, itertools.count(1))
        return next(counter)

    def _check_flood(self, cid: ChatId, chat_type: str) -> None:
        """Raise 429 if sending now would break a limit; otherwise count the send."""
        if not self.enforce_limits:
            return
        now = time.monotonic()
        per_chat = self.private_limit if chat_type == "private" else self.group_limit
        buckets = [("global", self.global_limit), (("chat", cid), per_chat)]
        wait = 0.0
        for key, (count, window) in buckets:
            sent = self._sent_at[key]
            while sent and sent[0] <= now - window:
                sent.popleft()
            if len(sent) >= count:
                wait = max(wait, sent[-count] + window - now)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise TelegramError(
                429, f"Too Many Requests: retry after {retry}", {"retry_after": retry}
            )
        for key, _ in buckets:
            self._sent_at[key].append(now)

    def _text(self, raw: Any, parse_mode: Any, *, caption: bool) -> tuple[str, list[JSONDict]]:
        text = "" if raw is None else str(raw)
        mode = (parse_mode or "").lower() if isinstance(parse_mode, str) else parse_mode
        if mode == "html":
            plain, entities = parse_html(text, strict=self.strict_html)
        elif mode in ("", None, "markdown", "markdownv2"):
            # Markdown is accepted unchecked: the service renders HTML.
            plain, entities = text, []
        else:
            raise bad_request("unsupported parse_mode")
        limit = MAX_CAPTION if caption else MAX_TEXT
        if utf16_len(plain) > limit:
            raise bad_request("message caption is too long" if caption else "message is too long")
        if not caption and not plain.strip():
            raise bad_request("message text is empty")
        return plain, entities

    @staticmethod
    def _check_markup(markup: Any) -> JSONDict | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
            )
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise bad_request(
                        "can't parse inline keyboard button:"
                        " Text buttons are unallowed in the inline keyboard"
                    )
                url = button.get("url")
                if url is not None and not str(url).startswith(_BUTTON_URL_SCHEMES):
                    raise bad_request(
                        f"inline keyboard button URL '{url}' is invalid: Unsupported URL protocol"
                    )
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
        return markup

    def _bot_user(self) -> JSONDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "RIA Test Bot",
            "username": self.bot_username,
        }

    def _record_message(
        self,
        method: str,
        cid: ChatId,
        chat: JSONDict,
        message: JSONDict,
        params: JSONDict,
        *,
        text: str | None,
        plain: str | None,
        photo: bytes | str | None = None,
        document: bytes | str | None = None,
    ) -> None:
        self.messages.append(
            {
                "method": method,
                "chat_id": cid,
                "chat_type": chat["type"],
                "message_id": message["message_id"],
                "text": text,
                "caption": params.get("caption"),
                "plain_text": plain,
                "parse_mode": params.get("parse_mode"),
                "reply_markup": params.get("reply_markup"),
                "has_photo": photo is not None,
                "photo_size": len(photo) if isinstance(photo, bytes) else None,
                "has_document": document is not None,
                "params": params,
                "t": time.monotonic(),
                "time": time.time(),
            }
        )

    def _store_file(self, data: bytes, kind: str, ext: str) -> tuple[str, str]:
        seq = next(self._file_seq)
        file_id = f"{kind}-{seq:06d}-fake"
        self.files[file_id] = data
        return file_id, f"{kind}s/file_{seq}.{ext}"

    # --- methods ---------------------------------------------------------------------------

    async def _true(self, params: JSONDict, files: dict[str, tuple[str, bytes]]) -> bool:
        return True

    async def _get_me(self, params: JSONDict, files: dict[str, tuple[str, bytes]]) -> JSONDict:
        return self._bot_user() | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _send_message(
        self, params: JSONDict, files: dict[str, tuple[str, bytes]]
    ) -> JSONDict:
        cid, chat = self._resolve_chat(params, sending=True)
        if params.get("text") in (None, ""):
            raise bad_request("message text is empty")
        plain, entities = self._text(params["text"], params.get("parse_mode"), caption=False)
        markup = self._check_markup(params.get("reply_markup"))
        replied = self._replied(cid, params.get("reply_parameters"))
        self._check_flood(cid, chat["type"])
        message = self._new_message(cid, chat, markup)
        message["text"] = plain
        if params.get("message_thread_id") not in (None, ""):  # a forum topic (issue 13)
            message["message_thread_id"] = int(params["message_thread_id"])
            message["is_topic_message"] = True
        if replied is not None:
            message["reply_to_message"] = replied
        if entities:
            message["entities"] = entities
        self._chat_messages[(cid, message["message_id"])] = {
            "from_bot": True,
            "kind": "text",
            "text": params["text"],
            "parse_mode": params.get("parse_mode"),
            "reply_markup": markup,
            "message": message,
        }
        self._record_message(
            "sendMessage", cid, chat, message, params, text=params["text"], plain=plain
        )
        return message

    def make_uneditable(self, chat_id: ChatId, message_id: int) -> None:
        """The message became too old to edit: editMessageText is refused from now on."""
        self.uneditable.add((norm_chat_id(chat_id), int(message_id)))

    def delete_message(self, chat_id: ChatId, message_id: int) -> None:
        """Someone deleted the message in the chat: edits answer "message to edit not found"."""
        self._chat_messages.pop((norm_chat_id(chat_id), int(message_id)), None)

    def _replied(self, cid: ChatId, raw: Any) -> JSONDict | None:
        """reply_parameters as the Bot API reads them: the replied message in this chat, or
        "message to be replied not found" unless allow_sending_without_reply."""
        if raw in (None, ""):
            return None
        params = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(params, dict) or "message_id" not in params:
            raise bad_request("can't parse reply parameters JSON object")
        stored = self._chat_messages.get((cid, int(params["message_id"])))
        if stored is None:
            if params.get("allow_sending_without_reply"):
                return None
            raise bad_request("message to be replied not found")
        return stored.get("message") or {"message_id": int(params["message_id"])}

    def _new_message(self, cid: ChatId, chat: JSONDict, markup: JSONDict | None) -> JSONDict:
        message: JSONDict = {
            "message_id": self._next_message_id(cid),
            "from": self._bot_user(),
            "chat": chat,
            "date": int(time.time()),
        }
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        return message

    def _media(
        self,
        params: JSONDict,
        files: dict[str, tuple[str, bytes]],
        field: str,
    ) -> tuple[bytes | str, str | None]:
        if field in files:
            filename, data = files[field]
            return data, filename
        value = params.get(field)
        if isinstance(value, str) and value.startswith("attach://"):
            name = value.removeprefix("attach://")
            if name in files:
                filename, data = files[name]
                return data, filename
        if isinstance(value, str) and value:
            if value in self.files or value.startswith(("http://", "https://")):
                return value, None
            raise bad_request("wrong file identifier/HTTP URL specified")
        raise bad_request(f"there is no {field} in the request")

    async def _send_photo(self, params: JSONDict, files: dict[str, tuple[str, bytes]]) -> JSONDict:
        cid, chat = self._resolve_chat(params, sending=True)
        if cid in self.photo_refused_chats:
            raise bad_request("not enough rights to send photos to the chat")
        photo, _ = self._media(params, files, "photo")
        if isinstance(photo, bytes):
            if len(photo) > MAX_PHOTO_BYTES:
                raise bad_request("PHOTO_INVALID_DIMENSIONS")
            size = _image_size(photo)
            if size is None:
                raise bad_request("IMAGE_PROCESS_FAILED")
            file_id, _path = self._store_file(photo, "photo", "jpg")
        else:
            size, file_id = (1280, 720), photo
            if photo not in self.files:
                file_id, _path = self._store_file(b"", "photo", "jpg")
        caption = params.get("caption")
        plain, entities = self._text(caption, params.get("parse_mode"), caption=True)
        markup = self._check_markup(params.get("reply_markup"))
        self._check_flood(cid, chat["type"])
        message = self._new_message(cid, chat, markup)
        nbytes = len(photo) if isinstance(photo, bytes) else 0
        message["photo"] = _photo_sizes(file_id, size, nbytes)
        if caption:
            message["caption"] = plain
            if entities:
                message["caption_entities"] = entities
        self._chat_messages[(cid, message["message_id"])] = {
            "from_bot": True,
            "kind": "photo",
            "text": caption,
            "parse_mode": params.get("parse_mode"),
            "reply_markup": markup,
            "message": message,
        }
        self._record_message(
            "sendPhoto", cid, chat, message, params, text=caption, plain=plain, photo=photo
        )
        return message

    async def _send_document(
        self, params: JSONDict, files: dict[str, tuple[str, bytes]]
    ) -> JSONDict:
        cid, chat = self._resolve_chat(params, sending=True)
        document, filename = self._media(params, files, "document")
        data = document if isinstance(document, bytes) else b""
        if isinstance(document, bytes) and not document:
            raise bad_request("file must be non-empty")
        file_id, _path = self._store_file(data, "document", "bin")
        caption = params.get("caption")
        plain, entities = self._text(caption, params.get("parse_mode"), caption=True)
        markup = self._check_markup(params.get("reply_markup"))
        self._check_flood(cid, chat["type"])
        message = self._new_message(cid, chat, markup)
        message["document"] = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": filename or "document",
            "mime_type": "application/octet-stream",
            "file_size": len(data),
        }
        if caption:
            message["caption"] = plain
            if entities:
                message["caption_entities"] = entities
        self._chat_messages[(cid, message["message_id"])] = {
            "from_bot": True,
            "kind": "document",
            "text": caption,
            "parse_mode": params.get("parse_mode"),
            "reply_markup": markup,
            "message": message,
        }
        self._record_message(
            "sendDocument",
            cid,
            chat,
            message,
            params,
            text=caption,
            plain=plain,
            document=document,
        )
        return message

    def _editable(self, params: JSONDict) -> tuple[ChatId, JSONDict, JSONDict] | None:
        """Resolve the message an edit* call targets; None for inline messages."""
        if params.get("inline_message_id"):
            return None
        cid, chat = self._resolve_chat(params, sending=True)
        try:
            message_id = int(params.get("message_id", 0))
        except (TypeError, ValueError) as exc:
            raise bad_request("message identifier is not specified") from exc
        stored = self._chat_messages.get((cid, message_id))
        if stored is None:
            raise bad_request("message to edit not found")
        if not stored["from_bot"] or (cid, message_id) in self.uneditable:
            raise bad_request("message can't be edited")
        return cid, chat, stored

    async def _edit_message_text(
        self, params: JSONDict, files: dict[str, tuple[str, bytes]]
    ) -> JSONDict | bool:
        target = self._editable(params)
        plain, entities = self._text(params.get("text"), params.get("parse_mode"), caption=False)
        markup = self._check_markup(params.get("reply_markup"))
        if target is None:
            return True
        cid, chat, stored = target
        if stored["kind"] != "text":
            raise bad_request("there is no text in the message to edit")
        if (stored["text"], stored["parse_mode"], stored["reply_markup"]) == (
            params.get("text"),
            params.get("parse_mode"),
            markup,
        ):
            raise _not_modified()
        self._check_flood(cid, chat["type"])
        message = dict(stored["message"])
        message["text"] = plain
        message.pop("entities", None)
        if entities:
            message["entities"] = entities
        message.pop("reply_markup", None)
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        stored.update(
            text=params.get("text"),
            parse_mode=params.get("parse_mode"),
            reply_markup=markup,
            message=message,
        )
        self._record_message(
            "editMessageText", cid, chat, message, params, text=params.get("text"), plain=plain
        )
        return message

    async def _edit_message_caption(
        self, params: JSONDict, files: dict[str, tuple[str, bytes]]
    ) -> JSONDict | bool:
        target = self._editable(params)
        plain, entities = self._text(params.get("caption"), params.get("parse_mode"), caption=True)
        markup = self._check_markup(params.get("reply_markup"))
        if target is None:
            return True
        cid, chat, stored = target
        if stored["kind"] == "text":
            raise bad_request("there is no caption in the message to edit")
        if (stored["text"], stored["reply_markup"]) == (params.get("caption"), markup):
            raise _not_modified()
        self._check_flood(cid, chat["type"])
        message = dict(stored["message"])
        message["caption"] = plain
        message.pop("caption_entities", None)
        if entities:
            message["caption_entities"] = entities
        message["edit_date"] = int(time.time())
        stored.update(text=params.get("caption"), reply_markup=markup, message=message)
        self._record_message(
            "editMessageCaption",
            cid,
            chat,
            message,
            params,
            text=params.get("caption"),
            plain=plain,
        )
        return message

    async def _edit_message_reply_markup(
        self, params: JSONDict, files: dict[str, tuple[str, bytes]]
    ) -> JSONDict | bool:
        target = self._editable(params)
        markup = self._check_markup(params.get("reply_markup"))
        if target is None:
            return True
        cid, chat, stored = target
        if stored["reply_markup"] == markup:
            raise _not_modified()
        self._check_flood(cid, chat["type"])
        message = dict(stored["message"])
        message.pop("reply_markup", None)
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        stored.update(reply_markup=markup, message=message)
        self._record_message(
            "editMessageReplyMarkup", cid, chat, message, params, text=None, plain=None
        )
        return message

    async def _delete_message(self, params: JSONDict, files: dict[str, tuple[str, bytes]]) -> bool:
        cid, _chat = self._resolve_chat(params, sending=False)
        key = (cid, int(params.get("message_id", 0)))
        if self._chat_messages.pop(key, None) is None:
            raise bad_request("message to delete not found")
        return True

    async def _send_chat_action(
        self, params: JSONDict, files: dict[str, tuple[str, bytes]]
    ) -> bool:
        self._resolve_chat(params, sending=True)
        return True

    async def _get_chat(self, params: JSONDict, files: dict[str, tuple[str, bytes]]) -> JSONDict:
        _cid, chat = self._resolve_chat(params, sending=False)
        return chat | {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _get_file(self, params: JSONDict, files: dict[str, tuple[str, bytes]]) -> JSONDict:
        file_id = params.get("file_id")
        if not isinstance(file_id, str) or file_id not in self.files:
            raise bad_request("invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(self.files[file_id]),
            "file_path": f"files/{file_id}",
        }

    def _serve_file(self, token: str, path: str) -> web.Response:
        file_id = path.removeprefix("files/")
        if token != self.token or file_id not in self.files:
            raise TelegramError(404, "Not Found")
        return web.Response(body=self.files[file_id], content_type="application/octet-stream")

    @staticmethod
    def _scope_key(params: JSONDict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _set_my_commands(self, params: JSONDict, files: dict[str, tuple[str, bytes]]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        for cmd in commands:
            if not isinstance(cmd, dict) or not _COMMAND_RE.match(str(cmd.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(cmd.get("description", ""))) <= 256:
                raise bad_request("command description must be non-empty")
        self.commands = list(commands)
        self.commands_by_scope[self._scope_key(params)] = list(commands)
        return True

    async def _get_my_commands(
        self, params: JSONDict, files: dict[str, tuple[str, bytes]]
    ) -> list[JSONDict]:
        return self.commands_by_scope.get(self._scope_key(params), [])

    async def _delete_my_commands(
        self, params: JSONDict, files: dict[str, tuple[str, bytes]]
    ) -> bool:
        self.commands_by_scope.pop(self._scope_key(params), None)
        return True

    @staticmethod
    def _empty_webhook() -> JSONDict:
        return {
            "url": "",
            "secret_token": None,
            "max_connections": None,
            "allowed_updates": None,
            "ip_address": None,
            "last_error_date": None,
            "last_error_message": None,
        }

    async def _set_webhook(self, params: JSONDict, files: dict[str, tuple[str, bytes]]) -> bool:
        url = str(params.get("url") or "")
        secret = params.get("secret_token")
        if url and not url.startswith(("https://", "http://")):
            # Real Telegram insists on https; plain http is allowed here for 127.0.0.1 tests.
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if secret is not None and not _SECRET_RE.match(str(secret)):
            raise bad_request("secret token contains unallowed characters")
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        if not url:
            self.webhook = self._empty_webhook()
            return True
        self.webhook = self._empty_webhook() | {
            "url": url,
            "secret_token": None if secret is None else str(secret),
            "max_connections": params.get("max_connections", 40),
            "allowed_updates": params.get("allowed_updates"),
            "ip_address": params.get("ip_address"),
        }
        if isinstance(params.get("allowed_updates"), list):
            self._allowed_updates = [str(x) for x in params["allowed_updates"]]
        if self._poll_waiter is not None and not self._poll_waiter.done():
            self._poll_waiter.set_result("webhook")
        if self._webhook_wake is not None:
            self._webhook_wake.set()
        return True

    async def _delete_webhook(self, params: JSONDict, files: dict[str, tuple[str, bytes]]) -> bool:
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        self.webhook = self._empty_webhook()
        return True

    async def _get_webhook_info(
        self, params: JSONDict, files: dict[str, tuple[str, bytes]]
    ) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook["url"],
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        for key in ("max_connections", "allowed_updates", "ip_address"):
            if self.webhook["url"] and self.webhook[key] is not None:
                info[key] = self.webhook[key]
        if self.webhook["last_error_date"] is not None:
            info["last_error_date"] = self.webhook["last_error_date"]
            info["last_error_message"] = self.webhook["last_error_message"]
        return info

    def _deliverable(self) -> list[JSONDict]:
        allowed = self._allowed_updates
        if not allowed:
            return self._updates
        kept = [u for u in self._updates if any(k in u for k in allowed)]
        self._updates[:] = kept
        return kept

    async def _get_updates(
        self, params: JSONDict, files: dict[str, tuple[str, bytes]]
    ) -> list[JSONDict]:
        if self.webhook["url"]:
            raise TelegramError(
                409,
                "Conflict: can't use getUpdates method while webhook is active;"
                " use deleteWebhook to delete the webhook first",
            )
        try:
            offset = int(params.get("offset") or 0)
            limit = max(1, min(100, int(params.get("limit") or 100)))
            timeout = max(0.0, min(float(params.get("timeout") or 0), self.max_poll_timeout))
        except (TypeError, ValueError) as exc:
            raise bad_request("wrong parameter value") from exc
        if isinstance(params.get("allowed_updates"), list):
            self._allowed_updates = [str(x) for x in params["allowed_updates"]]
        # Confirming by offset is the only thing that removes updates, as in Telegram.
        if offset > 0:
            self._updates[:] = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates[:] = self._updates[offset:]
        # A newer getUpdates terminates the older one, as Telegram does with two pollers.
        if self._poll_waiter is not None and not self._poll_waiter.done():
            self._poll_waiter.set_result("conflict")
        deadline = time.monotonic() + timeout
        while True:
            ready = self._deliverable()
            if ready:
                batch = ready[:limit]
                self.served_updates.extend(u["update_id"] for u in batch)
                return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.is_stopping:
                return []
            waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._poll_waiter = waiter
            try:
                await asyncio.wait_for(asyncio.shield(waiter), remaining)
            except TimeoutError:
                return []
            finally:
                if self._poll_waiter is waiter:
                    self._poll_waiter = None
            why = waiter.result()
            if why == "conflict":
                raise TelegramError(
                    409,
                    "Conflict: terminated by other getUpdates request;"
                    " make sure that only one bot instance is running",
                )
            if why == "webhook":
                raise TelegramError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active;"
                    " use deleteWebhook to delete the webhook first",
                )
            if why == "stop":
                return []

    # --- webhook delivery ------------------------------------------------------------------

    async def _webhook_worker(self) -> None:
        """Deliver queued updates in order to the webhook, retrying as Telegram does."""
        assert self._webhook_wake is not None
        timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await self._webhook_wake.wait()
                self._webhook_wake.clear()
                while self.webhook["url"] and self._deliverable():
                    update = self._updates[0]
                    ok = await self._deliver(session, update)
                    if ok:
                        if self._updates and self._updates[0] is update:
                            self._updates.pop(0)
                    else:
                        await asyncio.sleep(self.webhook_retry_delay)

    async def _deliver(self, session: aiohttp.ClientSession, update: JSONDict) -> bool:
        url = self.webhook["url"]
        headers = {"Content-Type": "application/json"}
        if self.webhook["secret_token"]:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
        record: JSONDict = {
            "update_id": update["update_id"],
            "url": url,
            "status": None,
            "error": None,
            "t": time.monotonic(),
        }
        self.webhook_deliveries.append(record)
        try:
            async with session.post(url, data=json.dumps(update), headers=headers) as resp:
                record["status"] = resp.status
                await resp.read()
                ok = 200 <= resp.status < 300
                if not ok:
                    record["error"] = f"Wrong response from the webhook: {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok = False
            record["error"] = f"Connection failed: {type(exc).__name__}"
        if not ok:
            self.webhook["last_error_date"] = int(time.time())
            self.webhook["last_error_message"] = record["error"]
        self._notify()
        return ok

    # --- control API for other processes (the common actions: FakeServer._control) ----------

    TARGET_KEY = "chat_id"

    def _control_state(self) -> JSONDict:
        return {
            "commands": self.commands,
            "webhook": self.webhook,
            "pending_updates": len(self._updates),
            "enforce_limits": self.enforce_limits,
        }

    async def _control_action(self, action: str, body: JSONDict, query: Any) -> web.Response | None:
        if action == "wait_messages":
            try:
                got = await self.wait_for_messages(
                    int(query.get("n", 1)), float(query.get("timeout", 10)), query.get("chat_id")
                )
            except TimeoutError as exc:
                return json_reply({"error": str(exc)}, status=408)
            return json_reply(got)
        if action == "requests":
            return json_reply(self.requests[int(query.get("since", 0)) :])
        if action in ("push_command", "push_message"):
            push = self.push_command if action == "push_command" else self.push_message
            uid = push(
                body["chat_id"],
                body["text"],
                user_id=body.get("user_id"),
                chat_type=body.get("chat_type"),
            )
            return json_reply({"update_id": uid})
        if action == "config":
            if "enforce_limits" in body:
                self.enforce_limits = bool(body["enforce_limits"])
            for key in ("unknown_chats", "blocked_chats"):
                if key in body:
                    setattr(self, key, {norm_chat_id(c) for c in body[key]})
            if "known_chats" in body:
                known = body["known_chats"]
                self.known_chats = None if known is None else {norm_chat_id(c) for c in known}
            return json_reply({"ok": True})
        return None


def _chat_of(params: JSONDict) -> ChatId | None:
    try:
        return norm_chat_id(params["chat_id"]) if params.get("chat_id") not in (None, "") else None
    except TelegramError:
        return None


def _not_modified() -> TelegramError:
    return bad_request(
        "message is not modified: specified new message content and reply markup are exactly"
        " the same as a content and reply markup of the current message"
    )


def _photo_sizes(file_id: str, size: tuple[int, int], nbytes: int) -> list[JSONDict]:
    width, height = size
    sizes: list[JSONDict] = []
    for i, side in enumerate((90, 320, 800, 1280)):
        scale = min(1.0, side / max(width, height, 1))
        sizes.append(
            {
                "file_id": f"{file_id}-{i}",
                "file_unique_id": f"u{file_id}-{i}",
                "width": max(1, round(width * scale)),
                "height": max(1, round(height * scale)),
                "file_size": max(1, round(nbytes * scale * scale)),
            }
        )
        if scale == 1.0:
            break
    # The largest size carries the id of the stored original so getFile can serve it.
    sizes[-1]["file_id"] = file_id
    return sizes


def _brief(m: JSONDict) -> JSONDict:
    return {
        "method": m["method"],
        "chat_id": m["chat_id"],
        "message_id": m["message_id"],
        "text": (m.get("plain_text") or "")[:80],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.telegram", description="Run a fake Telegram Bot API server."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="123:ABC")
    parser.add_argument("--no-limits", action="store_true", help="disable flood limits")
    parser.add_argument("--known-chats", default="", help="comma-separated; others: not found")
    parser.add_argument("--blocked-chats", default="", help="comma-separated")
    parser.add_argument("--max-hang", type=float, default=30.0)
    args = parser.parse_args(argv)

    def make() -> FakeTelegram:
        fake = FakeTelegram(
            args.token,
            host=args.host,
            port=args.port,
            enforce_limits=not args.no_limits,
            max_hang=args.max_hang,
        )
        if args.known_chats:
            fake.known_chats = {norm_chat_id(c) for c in args.known_chats.split(",") if c}
        fake.blocked_chats = {norm_chat_id(c) for c in args.blocked_chats.split(",") if c}
        return fake

    run_standalone(make, "FakeTelegram")


if __name__ == "__main__":
    main()
