"""A fake auto.ria.com call-tracking API (GET /auto/new/calls_stat) for tests and benchmarks.

It behaves like RIA behind its API gateway (see ../shared/ria/NOTES.md): JSON served as
text/html, 403/429 error bodies `{"error": {"code": ..., "message": ...}}`, X-RateLimit headers,
30 requests an hour and 1,000 a month. The clock is injectable so that a month of polling can
run in seconds. Run standalone with ``python -m tests.fakes.ria --port 0 --sample``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from tests.fakes._base import FakeServer, Fault, run_standalone, swallow_dropped

JSONDict = dict[str, Any]
KYIV = ZoneInfo("Europe/Kyiv")
CALLS_PATH = "/auto/new/calls_stat"
DEFAULT_API_KEY = "fAkEkEy0123456789abcdefABCDEF0123456789x"  # 40 characters, like RIA's keys
DEFAULT_USER_ID = 1505029
HTML_JSON = "text/html; charset=utf-8"

# The four records of RIA's own example answer (calls-api.ru.md), verbatim.
SAMPLE: list[JSONDict] = [
    {
        "call_id": 22346351,
        "caller_phone": "0951174074",
        "date": "2021-07-31T15:57:01",
        "destination_phone": "0731375686",
        "duration": 0,
        "link": "",
        "marka": "Acura",
        "marka_id": 98,
        "model": "MDX",
        "model_id": 955,
        "phone": "0730946407",
        "price": 0,
        "status": "CANCEL",
        "waighting": 11,
    },
    {
        "call_id": 22345654,
        "caller_phone": "0968404829",
        "date": "2021-07-31T14:42:24",
        "destination_phone": "0731375686",
        "duration": 0,
        "link": "",
        "marka": None,
        "marka_id": 0,
        "model": None,
        "model_id": 0,
        "phone": "0504103684",
        "price": 0,
        "status": "BUSY",
        "waighting": 48,
    },
    {
        "call_id": 22326708,
        "caller_phone": "0674294559",
        "date": "2021-07-30T17:00:12",
        "destination_phone": "0731375686",
        "duration": 57,
        "link": "https://track.ria.com/call_link/56w456gw45v5765ee5ser_w45/2021/07/30/"
        "380731375686=380674294559=17-00-12.wav",
        "marka": "Acura",
        "marka_id": 98,
        "model": "MDX",
        "model_id": 955,
        "phone": "0935063003",
        "price": 0,
        "status": "ANSWER",
        "waighting": 22,
    },
    {
        "call_id": 22325473,
        "caller_phone": "0931426064",
        "date": "2021-07-30T15:30:21",
        "destination_phone": "0731375686",
        "duration": 0,
        "link": "",
        "marka": "Acura",
        "marka_id": 98,
        "model": "MDX",
        "model_id": 955,
        "phone": "0936073263",
        "price": 0,
        "status": "CANCEL",
        "waighting": 44,
    },
]


def make_call(
    call_id: int,
    status: str = "NOANSWER",
    when: datetime | None = None,
    caller: str = "0951174074",
    **overrides: Any,
) -> JSONDict:
    """A RIA-shaped call record (RIA's field names, "waighting" included).

    `when` is local Kyiv time: a naive datetime is taken as Kyiv wall time, an aware one is
    converted; the default is now in Kyiv. ANSWER calls get a duration and a recording link.
    """
    if when is None:
        when = datetime.now(KYIV)
    if when.tzinfo is not None:
        when = when.astimezone(KYIV)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S")
    answered = status == "ANSWER"
    record: JSONDict = {
        "call_id": call_id,
        "caller_phone": caller,
        "date": stamp,
        "destination_phone": "0731375686",
        "duration": 57 if answered else 0,
        "link": (
            "https://track.ria.com/call_link/fake/"
            f"{when:%Y/%m/%d}/380731375686=38{caller}={when:%H-%M-%S}.wav"
            if answered
            else ""
        ),
        "marka": "Acura",
        "marka_id": 98,
        "model": "MDX",
        "model_id": 955,
        "phone": "0730946407",
        "price": 0,
        "status": status,
        "waighting": 22 if answered else 11,
    }
    record.update(overrides)
    return record


def _error(code: str, message: str) -> JSONDict:
    return {"error": {"code": code, "message": message}}


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_day(value: str | None) -> date | None:
    if value is None or not _DATE_RE.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


class FakeRia(FakeServer):
    """Fake RIA calls_stat endpoint. Attributes are documented in __init__."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        user_id: int | str = DEFAULT_USER_ID,
        calls: Iterable[JSONDict] | None = None,
        content_type: str = HTML_JSON,
        hourly_limit: int = 30,
        monthly_limit: int = 1000,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
        max_hang: float = 30.0,
    ) -> None:
        super().__init__(host=host, port=port, max_hang=max_hang)
        self.api_key = api_key
        self.user_id = str(user_id)
        self.calls: list[JSONDict] = list(calls or [])
        self.content_type = content_type
        self.hourly_limit = hourly_limit
        self.monthly_limit = monthly_limit
        self.clock = clock
        # Every request to calls_stat, whatever its outcome, with raw params (key included:
        # tests that check the key never leaks need to know what it was).
        self.requests: list[JSONDict] = []
        self.rate_limited = 0
        self._hour_used: Counter[str] = Counter()
        self._month_used: Counter[str] = Counter()
        # further accounts on the same server (several [[account]]s): api_key -> (user_id,
        # that account's calls); requests are logged and counted like the main account's
        self.other_accounts: dict[str, tuple[str, list[JSONDict]]] = {}

    # --- test-facing helpers ---------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """Requests that reached calls_stat (any status, injected faults included)."""
        return len(self.requests)

    def add_calls(self, *records: JSONDict) -> None:
        self.calls.extend(records)

    def fail_next(self, n: int = 1, status: int = 500, description: str | None = None) -> None:
        """Make the next `n` calls_stat requests fail with `status` (before any auth check).

        429 answers OVER_RATE_LIMIT, 5xx answer the gateway's HTML page (502/503/504) or a
        JSON INTERNAL_SERVER_ERROR (500); other codes a JSON error with `description`.
        """
        self._push_faults(n, Fault(status, description))

    def used_this_hour(self) -> int:
        return self._hour_used[self._hour_key()]

    def used_this_month(self) -> int:
        return self._month_used[self._month_key()]

    def reset_quota(self) -> None:
        self._hour_used.clear()
        self._month_used.clear()

    def reset(self) -> None:
        """Forget requests, quota use and faults; `calls` and configuration stay."""
        self.requests.clear()
        self.rate_limited = 0
        self.reset_quota()
        self.clear_faults()
        self.mode = "ok"

    def records_between(
        self, start: date, end: date, calls: list[JSONDict] | None = None
    ) -> list[JSONDict]:
        """What calls_stat answers for from=start&to=end: newest first, like RIA."""
        picked = []
        for rec in self.calls if calls is None else calls:
            try:
                day = date.fromisoformat(str(rec.get("date", ""))[:10])
            except ValueError:
                continue
            if start <= day <= end:
                picked.append(rec)
        return sorted(picked, key=lambda r: str(r.get("date", "")), reverse=True)

    @staticmethod
    async def post_webhook(
        url: str,
        records: JSONDict | list[JSONDict],
        *,
        encoding: str = "json",
        timeout_seconds: float = 5.0,
    ) -> tuple[int, str]:
        """POST call data the way RIA's push API might: "json" (object or array) or "form".

        Returns (status, body text). RIA documents no signature and no retry, so neither
        is done here.
        """
        client_timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            if encoding == "form":
                if not isinstance(records, dict):
                    raise ValueError("a form body carries one record")
                form = {k: "" if v is None else str(v) for k, v in records.items()}
                ctx = session.post(url, data=form)
            elif encoding == "json":
                ctx = session.post(url, json=records)
            else:
                raise ValueError(f"encoding must be 'json' or 'form', not {encoding!r}")
            async with ctx as resp:
                return resp.status, await resp.text()

    # --- server ----------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[swallow_dropped])
        app.router.add_route("*", "/_fake/{action}", self._control)
        app.router.add_route("*", CALLS_PATH, self._calls_stat)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    def _hour_key(self) -> str:
        return datetime.fromtimestamp(self.clock(), KYIV).strftime("%Y-%m-%dT%H")

    def _month_key(self) -> str:
        return datetime.fromtimestamp(self.clock(), KYIV).strftime("%Y-%m")

    def _rate_headers(self) -> dict[str, str]:
        remaining = min(
            self.hourly_limit - self.used_this_hour(),
            self.monthly_limit - self.used_this_month(),
        )
        return {
            "X-RateLimit-Limit": str(self.hourly_limit),
            "X-RateLimit-Remaining": str(max(0, remaining)),
        }

    def _json(self, body: Any, status: int = 200, content_type: str | None = None) -> web.Response:
        return web.Response(
            status=status,
            body=json.dumps(body, ensure_ascii=False).encode(),
            headers={"Content-Type": content_type or "application/json", **self._rate_headers()},
        )

    def _presented_key(self, request: web.Request) -> str | None:
        """The key from X-Api-Key, the api_key parameter, or HTTP Basic's user name."""
        key = request.headers.get("X-Api-Key") or request.query.get("api_key")
        if key:
            return key
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            return decoded.split(":", 1)[0] or None
        return None

    async def _not_found(self, request: web.Request) -> web.Response:
        return self._json(_error("NOT_FOUND", "The requested URL was not found."), 404)

    async def _calls_stat(self, request: web.Request) -> web.Response:
        entry: JSONDict = {
            "params": dict(request.query),
            "http_method": request.method,
            "headers": {k: v for k, v in request.headers.items() if k.lower() != "cookie"},
            "status": None,
            "t": time.monotonic(),
            "clock": self.clock(),
        }
        self.requests.append(entry)
        try:
            response = await self._answer(request, entry)
            entry["status"] = response.status
            return response
        finally:
            if entry["status"] is None:
                entry["status"] = "dropped"

    async def _answer(self, request: web.Request, entry: JSONDict) -> web.Response:
        await self._gate(request)
        if self.mode == "down_500":
            return self._server_error(500, None)
        fault = self._pop_fault()
        if fault is not None:
            entry["injected"] = True
            return self._server_error(fault.status, fault.description)
        key = self._presented_key(request)
        if not key:
            return self._json(
                _error(
                    "API_KEY_MISSING",
                    "No api_key was supplied. Get one at https://developers.ria.com",
                ),
                403,
            )
        if key != self.api_key and key not in self.other_accounts:
            return self._json(
                _error(
                    "API_KEY_INVALID",
                    "An invalid api_key was supplied. Get one at https://developers.ria.com",
                ),
                403,
            )
        if request.method != "GET":
            return self._json(_error("NOT_FOUND", "Only GET is supported here."), 404)
        if (
            self.used_this_hour() >= self.hourly_limit
            or self.used_this_month() >= self.monthly_limit
        ):
            self.rate_limited += 1
            return self._json(
                _error(
                    "OVER_RATE_LIMIT",
                    "You have exceeded your rate limit. Try again later or contact us at "
                    "https://developers.ria.com for assistance",
                ),
                429,
            )
        # The gateway counts every authorised request, even those the backend rejects.
        self._hour_used[self._hour_key()] += 1
        self._month_used[self._month_key()] += 1
        q = request.query
        user_id, calls = self.other_accounts.get(key, (self.user_id, self.calls))
        if q.get("user_id", "").strip() != user_id:
            return self._json(
                _error("BAD_REQUEST", "user_id is missing or does not belong to this api_key"),
                400,
            )
        start, end = _parse_day(q.get("from")), _parse_day(q.get("to"))
        if start is None or end is None:
            return self._json(
                _error("BAD_REQUEST", "from and to must be dates in the form YYYY-MM-DD"), 400
            )
        if start > end:
            return self._json(_error("BAD_REQUEST", "from must not be after to"), 400)
        return self._json(self.records_between(start, end, calls), 200, self.content_type)

    def _server_error(self, status: int, description: str | None) -> web.Response:
        if status == 429:
            self.rate_limited += 1
            return self._json(
                _error("OVER_RATE_LIMIT", description or "You have exceeded your rate limit."),
                429,
            )
        if status in (502, 503, 504):
            phrase = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Time-out"}
            html = (
                f"<html>\r\n<head><title>{status} {phrase[status]}</title></head>\r\n<body>\r\n"
                f"<center><h1>{status} {phrase[status]}</h1></center>\r\n</body>\r\n</html>\r\n"
            )
            return web.Response(
                status=status, text=html, content_type="text/html", headers=self._rate_headers()
            )
        if status == 400 and description is None:  # the gateway's answer to plain http://
            return self._json(_error("HTTPS_REQUIRED", "Requests must be made over HTTPS."), 400)
        code = "INTERNAL_SERVER_ERROR" if status == 500 else f"HTTP_{status}"
        return self._json(_error(code, description or "Internal Server Error"), status)

    # --- control API for other processes -----------------------------------------------------

    async def _control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        body: Any = {}
        if request.method in ("POST", "PUT") and request.body_exists:
            body = await request.json()
        if action == "calls":
            if request.method == "DELETE":
                self.calls.clear()
            elif request.method in ("POST", "PUT"):
                if request.method == "PUT":
                    self.calls.clear()
                self.calls.extend(body if isinstance(body, list) else [body])
            return web.json_response(self.calls)
        if action == "requests":
            since = int(request.query.get("since", 0))
            return web.json_response(self.requests[since:], dumps=lambda v: json.dumps(v))
        if action == "state":
            return web.json_response(
                {
                    "request_count": self.request_count,
                    "rate_limited": self.rate_limited,
                    "used_this_hour": self.used_this_hour(),
                    "used_this_month": self.used_this_month(),
                    "calls": len(self.calls),
                    "mode": self.mode,
                }
            )
        if action == "mode":
            self.mode = body["mode"]
            return web.json_response({"mode": self.mode})
        if action == "fail_next":
            self.fail_next(int(body.get("n", 1)), int(body.get("status", 500)))
            return web.json_response({"pending_faults": self.pending_faults})
        if action == "config":
            for key in ("hourly_limit", "monthly_limit"):
                if key in body:
                    setattr(self, key, int(body[key]))
            if "content_type" in body:
                self.content_type = str(body["content_type"])
            return web.json_response({"ok": True})
        if action == "reset":
            self.reset()
            return web.json_response({"ok": True})
        return web.json_response({"error": f"unknown control action {action!r}"}, status=404)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.ria", description="Run a fake RIA calls_stat API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--user-id", default=str(DEFAULT_USER_ID))
    parser.add_argument("--hourly-limit", type=int, default=30)
    parser.add_argument("--monthly-limit", type=int, default=1000)
    parser.add_argument("--content-type", default=HTML_JSON)
    parser.add_argument("--sample", action="store_true", help="serve RIA's 4 example records")
    parser.add_argument("--calls-file", help="JSON array of records to serve")
    parser.add_argument("--max-hang", type=float, default=30.0)
    args = parser.parse_args(argv)

    def make() -> FakeRia:
        calls: list[JSONDict] = [dict(r) for r in SAMPLE] if args.sample else []
        if args.calls_file:
            with open(args.calls_file, encoding="utf-8") as fh:
                calls.extend(json.load(fh))
        return FakeRia(
            api_key=args.api_key,
            user_id=args.user_id,
            calls=calls,
            content_type=args.content_type,
            hourly_limit=args.hourly_limit,
            monthly_limit=args.monthly_limit,
            host=args.host,
            port=args.port,
            max_hang=args.max_hang,
        )

    run_standalone(make, "FakeRia")


if __name__ == "__main__":
    main()
