"""The RIA client (handlers/ria/api.py) on answers the fake RIA does not give: each refusal
names the setting to fix, and bodies that are not a list of calls are errors, not empty days.

A small aiohttp server on 127.0.0.1 answers what each case needs; the client is the real
one over a real session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import aiohttp
import pytest
from aiohttp import web

from handlers.ria.api import RiaApiError, RiaClient

DAY = date(2026, 11, 2)
ANSWERS: list[tuple[int, str]] = []  # (status, body) for the next request


async def _calls_stat(request: web.Request) -> web.Response:
    status, body = ANSWERS.pop(0)
    return web.Response(status=status, text=body, content_type="text/html")


@pytest.fixture
async def client() -> AsyncIterator[RiaClient]:
    app = web.Application()
    app.router.add_get("/auto/new/calls_stat", _calls_stat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:
        yield RiaClient(
            session, base_url=f"http://127.0.0.1:{port}/", api_key="K" * 40, user_id="1505029"
        )
    await runner.cleanup()


async def _error(client: RiaClient, status: int, body: str) -> RiaApiError:
    ANSWERS.append((status, body))
    with pytest.raises(RiaApiError) as caught:
        await client.calls_stat(DAY, DAY)
    return caught.value


async def test_refusals_name_the_setting(client: RiaClient) -> None:
    https = await _error(client, 400, '{"error": {"code": "HTTPS_REQUIRED"}}')
    assert str(https) == "RIA API answered HTTP 400 (HTTPS_REQUIRED)"
    assert https.permanent and not https.transient
    assert https.fix == "RIA_API_URL must start with https:// (https://developers.ria.com)"

    bad_user = await _error(client, 400, '{"error": "wrong user_id"}')
    assert bad_user.fix == "check RIA_USER_ID and RIA_API_URL (https://developers.ria.com)"
    assert str(bad_user) == "RIA API answered HTTP 400 (wrong user_id)"

    missing = await _error(client, 404, "<html>Not Found</html>")
    assert str(missing) == "RIA API answered HTTP 404"
    assert missing.fix == "check RIA_API_URL: it should be https://developers.ria.com"

    key = await _error(client, 403, '{"error": {"message": "API_KEY invalid"}}')
    assert key.bad_key and key.fix == "check RIA_API_KEY (and that it belongs to RIA_USER_ID)"
    assert "K" * 40 not in str(key)

    busy = await _error(client, 502, '["not", "an", "error"]')
    assert busy.transient and not busy.permanent and busy.fix is None
    assert str(busy) == "RIA API answered HTTP 502"


async def test_bodies_that_are_not_calls(client: RiaClient) -> None:
    assert str(await _error(client, 200, "<html>maintenance</html>")) == (
        "RIA API answered something that is not JSON"
    )
    assert str(await _error(client, 200, '"calls"')) == (
        "RIA API answered JSON that is not a list of calls"
    )
    # a dict: its calls, its data, one record, or no calls
    for body, expected in [
        ('{"calls": [{"call_id": 1}]}', [{"call_id": 1}]),
        ('{"data": [{"call_id": 2}]}', [{"call_id": 2}]),
        ('{"call_id": 3}', [{"call_id": 3}]),
        ('{"total": 0}', []),
    ]:
        ANSWERS.append((200, body))
        assert await client.calls_stat(DAY, DAY) == expected
