"""Slack's HTTP mode: slash commands and events POSTed to `/webhooks/slack`, signed with
SLACK_SIGNING_SECRET.

Everything an anonymous client controls is checked from the cheapest end: the two auth
headers first (present, well formed, the timestamp within 5 minutes), then a body of at most
64 KiB, then the signature over its bytes, and only then is it decoded and handed to Bolt.
A refusal is a 400/401/413 with one DEBUG line, never a 500 or a traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.delivery.channels.webhook_body import read_capped, refuse

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/slack"
MAX_AGE_S = 300  # Slack's rule: a request older than 5 minutes may be a replay
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # a 5,000-digit one must not reach int()


def headers_ok(request: web.Request, now: float) -> bool:
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not (_TIMESTAMP.fullmatch(timestamp) and _SIGNATURE.fullmatch(signature)):
        return False
    return abs(now - int(timestamp)) <= MAX_AGE_S


class SlackWebhook:
    def __init__(self, app: AsyncApp, signing_secret: str | None) -> None:
        self.app = app
        self._secret = signing_secret.encode() if signing_secret else None

    def signed(self, body: bytes, timestamp: str, signature: str) -> bool:
        """Slack's v0 signature over the body's bytes. slack-sdk's SignatureVerifier decodes
        the body as UTF-8 first and raises on anything else, so bytes are checked here."""
        assert self._secret is not None
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode())

    def routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        """Verify (bad or older than 5 minutes: 401, nothing runs), then let Bolt dispatch;
        Bolt answers as soon as the listener calls ack()."""
        if self._secret is None or not headers_ok(request, time.time()):
            log.debug("slack: refused a request without valid signature headers")
            return refuse(401, "invalid request")
        body = await read_capped(request)
        if isinstance(body, web.Response):
            return body
        timestamp = request.headers["X-Slack-Request-Timestamp"]
        signature = request.headers["X-Slack-Signature"]
        if not self.signed(body, timestamp, signature):
            log.debug("slack: refused a request with a bad signature")
            return refuse(401, "invalid request")
        try:
            # Slack sends UTF-8 whatever the Content-Type says (a charset there is ignored)
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            log.debug("slack: refused a signed request that is not UTF-8")
            return refuse(400, "invalid request")
        bolt_request = AsyncBoltRequest(
            body=text,
            query=request.query_string,
            headers=dict(request.headers),
        )
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))
