"""POST /webhooks/ria/{secret}: RIA pushes each call here as soon as the caller hangs up.

RIA documents no signature and no retries, so the secret path segment is the only
authentication, and a 200 is sent only after the calls are committed. Whatever we cannot use
is kept raw in `rejected_payloads`, so nothing RIA sent is ever lost.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from handlers.intake import Intake
from handlers.proxies import Network, client_address
from handlers.ria.records import (
    RecordError,
    TooManyRecords,
    clean_text,
    decode_records,
    parse_records,
)
from storage import rejected
from storage.db import Store

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is longer than `limit` (read no further than that)."""
    if request.content_length is not None:
        if request.content_length > limit:
            return None
        # the usual case (RIA sends Content-Length): one read of exactly that much, no
        # second one for the end of the body (~3 % of the loop's time at full load)
        try:
            return await request.content.readexactly(request.content_length)
        except asyncio.IncompleteReadError as exc:  # the client closed early: what came
            return exc.partial
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


class RiaWebhook:
    def __init__(
        self,
        store: Store,
        intake: Intake,
        *,
        secret: str,
        tz: ZoneInfo,
        clock: Callable[[], float] = time.time,
        trusted: Sequence[Network] = (),
        accounts: Mapping[str, str] | None = None,
    ) -> None:
        self.trusted = tuple(trusted)  # proxies whose X-Forwarded-For names the client
        self.store = store
        self.intake = intake
        # secret -> the account whose calls come by it (issue 13: each [[account]] has its
        # own URL); None: the RIA_* account's secret
        self._secrets: list[tuple[bytes, str | None]] = [(secret.encode(), None)]
        self._secrets += [(k.encode(), name) for k, name in (accounts or {}).items()]
        self.tz = tz
        self.clock = clock

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/webhooks/ria/{secret}", self.handle)]

    def set_accounts(self, accounts: Mapping[str, str]) -> None:
        """The [[account]]s' secrets (secret -> name) in force from now on (SIGHUP). Swapped
        in one assignment: a request in progress keeps the list it read; the RIA_* secret
        (name None) stays first."""
        own = [(key, name) for key, name in self._secrets if name is None]
        self._secrets = own + [(k.encode(), name) for k, name in accounts.items()]

    async def _keep(self, body: bytes, reason: str, content_type: str | None) -> None:
        await self.store.run(
            rejected.keep,
            body=body,
            reason=reason,
            source="webhook",
            content_type=content_type,
            received_at=self.clock(),
        )

    async def handle(self, request: web.Request) -> web.Response:
        # constant-time, so the secret cannot be guessed a character at a time; every secret
        # is compared, so the time does not tell which account came close either
        given = request.match_info["secret"].encode()
        found = [name for key, name in self._secrets if hmac.compare_digest(given, key)]
        if not found:
            return _error(404, "not found")
        body = await _read_limited(request, MAX_BODY)
        if body is None:
            return _error(413, f"body over {MAX_BODY // 1024} KiB")
        content_type = request.headers.get("Content-Type")
        if content_type is not None:
            # aiohttp keeps undecodable header bytes as lone surrogates; SQLite cannot store them
            content_type = clean_text(content_type)
        try:
            return await self._accept(body, content_type, request, found[0])
        except Exception:
            log.exception("webhook: storage failed")
            return _error(503, "storage unavailable, try again")

    async def _accept(
        self, body: bytes, content_type: str | None, request: web.Request, account: str | None
    ) -> web.Response:
        try:
            records, text = decode_records(body, content_type)
        except TooManyRecords as exc:
            await self._keep(body, str(exc), content_type)
            return _error(413, str(exc))
        except RecordError as exc:
            await self._keep(body, str(exc), content_type)
            log.warning("webhook: rejected a payload: %s", exc)
            return _error(400, str(exc))
        calls, bad = parse_records(records, self.tz, text=text)
        for record, reason in bad:
            await self._keep(_dump(record) or body, reason, content_type)
        if bad:
            log.warning("webhook: rejected %d record(s): %s", len(bad), bad[0][1])
        if not calls:
            return _error(
                400, bad[0][1] if len(bad) == 1 else f"no usable call record: {bad[0][1]}"
            )
        result = await self.intake.accept(calls, source="webhook", account=account)
        # per request at DEBUG: at INFO, formatting this line cost a fifth of the throughput
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "webhook from %s: %d new, %d duplicate, %d alert(s) queued",
                client_address(request, self.trusted),
                result.accepted,
                result.duplicates,
                len(result.alerts),
            )
        if bad:
            return web.json_response(
                {"accepted": result.accepted, "duplicates": result.duplicates, "rejected": len(bad)}
            )
        return web.Response(
            body=_answer(result.accepted, result.duplicates),
            content_type="application/json",
            charset="utf-8",
        )


@functools.lru_cache(maxsize=64)
def _answer(accepted: int, duplicates: int) -> bytes:
    """The usual answer's body, as json_response writes it: a delivery of one or a few calls
    gets one of a handful of answers, so each is encoded once (~3 µs a request)."""
    return json.dumps({"accepted": accepted, "duplicates": duplicates}).encode()


def _dump(record: Any) -> bytes | None:
    """One bad record as JSON, to keep; None if it cannot be (the caller keeps the body)."""
    try:
        return json.dumps(record).encode()  # \u escapes: any string, lone surrogates too
    except (TypeError, ValueError, RecursionError):
        return None
