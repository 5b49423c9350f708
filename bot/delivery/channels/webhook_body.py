"""Reading a chat platform's webhook body without trusting the sender yet.

The routes check their auth headers first and only then read the body, at most `MAX_BODY`
bytes: an anonymous client cannot make us hold megabytes per request. A client that goes
away mid-body, or sends more than the cap, gets a short answer and one DEBUG line (an
anonymous client must not be able to flood the log).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # Slack's and Telegram's payloads are a few KiB


def refuse(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status)


async def read_capped(request: web.Request, limit: int = MAX_BODY) -> bytes | web.Response:
    """The body, or the answer to give instead: 413 over `limit`, 400 if it never came."""
    if request.content_length is not None and request.content_length > limit:
        log.debug("%s: refused a body of %d bytes", request.path, request.content_length)
        return refuse(413, "request body too large")
    body = bytearray()
    try:
        while chunk := await request.content.read(limit + 1 - len(body)):
            body += chunk
            if len(body) > limit:  # no Content-Length (chunked): counted as it comes
                log.debug("%s: refused a body over %d bytes", request.path, limit)
                return refuse(413, "request body too large")
    except (aiohttp.ClientError, ConnectionError, asyncio.IncompleteReadError) as exc:
        log.debug("%s: the client went away mid-body (%s)", request.path, type(exc).__name__)
        return refuse(400, "incomplete request body")
    return bytes(body)
