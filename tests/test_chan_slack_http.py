"""Slack's HTTP mode against anonymous, malformed requests (issue 15 items 1 and 3): each is
refused with 400/401/413 and at most a DEBUG line, never a 500 or a traceback, and the
headers are checked before any body is read."""

from __future__ import annotations

import asyncio
import time

from tests.fakes.slack import DEFAULT_SIGNING_SECRET, FakeSlack, signed_headers
from tests.reliability import until
from tests.service import Service
from tests.test_slack_e2e import slack, slack_env  # noqa: F401 (the fixture)

PATH = "/webhooks/slack"


def fake_headers(timestamp: str | None = None) -> dict[str, str]:
    return {
        "X-Slack-Request-Timestamp": timestamp or str(int(time.time())),
        "X-Slack-Signature": "v0=" + "0" * 64,
    }


async def raw(service: Service, head: str, body: bytes = b"", *, close: bool = False) -> str:
    """Send a request by hand; the status line, or "" when the server gave no answer."""
    host, port = service.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()
    if close:  # gone mid-body
        writer.close()
        await writer.wait_closed()
        return ""
    try:
        line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    return line.decode().strip()


async def test_malformed_unsigned_requests_get_4xx_and_no_traceback(
    services,
    slack: FakeSlack,  # noqa: F811
) -> None:
    service = await services(**slack_env(slack), LOG_LEVEL="INFO")
    await until(lambda: "slack: connected" in service.stderr(), 15, "slack connected")
    cases = [
        ({"Content-Type": "application/x-www-form-urlencoded"} | fake_headers(), b"\xff\xfe\x00"),
        ({"Content-Type": "text/plain; charset=nosuch"} | fake_headers(), b"command=%2Fstats"),
        (fake_headers("9" * 5000), b"command=%2Fstats"),
        ({}, b"command=%2Fstats"),
    ]
    for headers, body in cases:
        status, _ = await service.post(PATH, data=body, headers=headers)
        assert status in (400, 401), (headers, status)
    # signed but not UTF-8: 400 (it used to be a 500)
    body = b"command=%2Fstats&text=\xff"
    status, _ = await service.post(
        PATH, data=body, headers=signed_headers(DEFAULT_SIGNING_SECRET, body)
    )
    assert status == 400
    # over 64 KiB with plausible headers: 413 without reading it
    status, _ = await service.post(PATH, data=b"a" * 70_000, headers=fake_headers())
    assert status == 413
    # headers are checked before the body: an unsigned request announcing 1 MB is
    # answered at once although no body byte ever comes
    line = await raw(
        service,
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n",
    )
    assert line.startswith("HTTP/1.1 401"), line
    # clients that go away mid-body
    ts = str(int(time.time()))
    for _ in range(20):
        await raw(
            service,
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            f"X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: v0={'0' * 64}\r\n",
            b"command=%2Fst",
            close=True,
        )
    # the service still answers, and said nothing loud about any of it
    status, _ = await service.health()
    assert status == 200
    output = service.output()
    assert "Traceback" not in output
    assert " ERROR " not in output and "Error handling request" not in output
    assert "500" not in output
