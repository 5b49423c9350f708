"""Bad input, generated: property-based tests (hypothesis) against the webhook as it runs
(the CLI, over HTTP), the one RIA parser, the chat commands and the renderers.

The promises: never a 500 and never a crash, whatever arrives; whatever is not stored as a
call is kept raw; RIA's strings cannot break a Telegram HTML or Slack mrkdwn message.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.delivery import markup, render
from handlers.chat import commands
from handlers.chat.periods import PeriodError, parse_period
from handlers.ria.records import MAX_RECORDS, RecordError, decode_body, parse_records
from storage.calls import Call, raw_json
from storage.db import Store, connect
from tests.fakes.ria import make_call
from tests.fakes.telegram import parse_html
from tests.service import BIN, WEBHOOK_SECRET, base_env
from tests.test_summary import call as summary_call
from tests.test_summary import load

KYIV = ZoneInfo("Europe/Kyiv")
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# ---- strategies -------------------------------------------------------------------------

# every code point, lone surrogates included (JSON's "\ud800" decodes to one)
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=[]), max_size=40)
nasty_text = st.one_of(
    any_text,
    st.sampled_from(
        [
            "<b>",
            "</i>",
            "&",
            "&amp;",
            "<tel:+1|x>",
            "*bold*",
            "_it_",
            "`code`",
            "~s~",
            "🚗🔥",
            "<@U123>",
            "<!channel>",
            "a\nb",
            "\u202e",
            "\x00",
            "&#0;",
            "<a href='x'>",
            ">",
        ]
    ),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_scalars = st.one_of(st.none(), st.booleans(), numbers, nasty_text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)
    ),
    max_leaves=12,
)
dates = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.isoformat(timespec="seconds")
    ),
    st.sampled_from(
        [
            "2026-11-28T14:05:00",
            "2026-11-28 14:05:00",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "2026-02-30T10:00:00",
            "",
            "now",
        ]
    ),
    json_values,
)
call_ids = st.one_of(st.integers(1, 10**6), numbers, st.text(max_size=25), json_values)
FIELDS = [
    "caller_phone",
    "destination_phone",
    "phone",
    "status",
    "duration",
    "waighting",
    "link",
    "marka",
    "marka_id",
    "model",
    "model_id",
    "price",
]
records = st.builds(
    lambda cid, date, extra, base: {**base, "call_id": cid, "date": date, **extra},
    call_ids,
    dates,
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6),
    st.sampled_from([{}, {k: v for k, v in make_call(1).items() if k not in ("call_id", "date")}]),
)


def json_body(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    records.map(json_body),
    st.lists(records, max_size=30).map(json_body),
    st.dictionaries(
        st.sampled_from(["calls", "data", "items", "x"]), st.lists(records, max_size=5), max_size=2
    ).map(json_body),
    json_values.map(json_body),
    # invalid UTF-8 inside an otherwise good body
    st.tuples(records.map(json_body), st.binary(min_size=1, max_size=3)).map(
        lambda t: t[0][:-1] + b',"x":"' + t[1] + b'\xff"}'
    ),
    # deep nesting
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    # duplicate keys: which one counts is JSON's business; it must not matter to us
    st.tuples(st.integers(1, 10**6), st.text(max_size=10)).map(
        lambda t: (
            f'{{"call_id": {t[0]}, "call_id": {json.dumps(t[1])}, '
            f'"date": "2026-11-28T10:00:00", "date": "2026-11-28T11:00:00"}}'.encode()
        )
    ),
    # lone surrogates, escaped as JSON allows
    st.integers(1, 10**6).map(
        lambda i: (
            f'{{"call_id": {i}, "date": "2026-11-28T10:00:00", "status": "NOANSWER",'
            f' "caller_phone": "\\ud800", "marka": "\\udfff\\ud83d", "x": ["\\udc00"]}}'.encode()
        )
    ),
    st.sampled_from(
        [
            b"",
            b" ",
            b"\n\t",
            b"null",
            b"[]",
            b"{}",
            b"[null]",
            b"1e999",
            b"NaN",
            b"\xef\xbb\xbf{}",
            b"call_id=1&date=2026-11-28T10:00:00&status=BUSY",
            b"=&=&&",
            b"%ff%fe",
        ]
    ),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "text/html",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/json; charset=utf-8",
        "multipart/form-data; boundary=x",
        "tExt/JSON; x=\xff",  # odd but valid HTTP (a control character is not: aiohttp's 400)
    ]
)

# ---- the webhook, running ---------------------------------------------------------------


class Webhook:
    """`ria-calls-bot run` in the background for the whole module, posted to synchronously
    (hypothesis drives plain functions)."""

    def __init__(self, tmp: Path) -> None:
        self.env = base_env(tmp, LOG_LEVEL="INFO")
        self.db = self.env["DATABASE_PATH"]
        self.err = (tmp / "service.err").open("wb")
        self.proc = subprocess.Popen(
            [str(BIN), "run"], env=self.env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=self.err
        )
        self.port = int(self.env["HTTP_PORT"])
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.05)

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            headers = {} if content_type is None else {"Content-Type": content_type}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def post(self, body: bytes, content_type: str | None = None) -> tuple[int, Any]:
        status, raw = self.request("POST", f"/webhooks/ria/{WEBHOOK_SECRET}", body, content_type)
        return status, json.loads(raw)

    def rows(self, sql: str, *args: Any) -> list[tuple]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    service = Webhook(tmp_path_factory.mktemp("fuzz"))
    yield service
    service.proc.terminate()
    assert service.proc.wait(10) == 0
    service.err.close()
    log = (Path(service.err.name)).read_text(errors="replace")
    assert "Traceback" not in log and " ERROR " not in log, log


@pytest.mark.xdist_group("fuzz_webhook")  # one service for these, in order
@FUZZ
@given(body=bodies, content_type=content_types)
def test_webhook_never_fails_and_keeps_what_it_cannot_use(
    webhook: Webhook, body: bytes, content_type: str | None
) -> None:
    before = webhook.rows("SELECT COALESCE(MAX(id), 0) FROM rejected_payloads")[0][0]
    status, answer = webhook.post(body, content_type)
    assert status in (200, 400, 413), (status, answer)  # never 500, never 503
    kept = [
        bytes(b) for (b,) in webhook.rows("SELECT body FROM rejected_payloads WHERE id > ?", before)
    ]
    try:
        raw = decode_body(body, content_type)
    except RecordError:
        assert status in (400, 413)
        assert kept == [body]  # the body exactly as it came
        return
    calls, bad = parse_records(raw, KYIV)
    assert len(kept) == len(bad)  # each unusable record kept
    if calls:
        assert status == 200
        assert answer["accepted"] + answer["duplicates"] == len(calls)
    else:
        assert status == 400


@pytest.mark.xdist_group("fuzz_webhook")  # one service for these, in order
@FUZZ
@given(record=records)
def test_webhook_stores_every_usable_record_with_its_raw_data(
    webhook: Webhook, record: dict[str, Any]
) -> None:
    body = json_body(record)
    status, answer = webhook.post(body, "application/json")
    calls, bad = parse_records([json.loads(body)], KYIV)
    if calls:
        assert status == 200, answer
        [(raw,)] = webhook.rows("SELECT raw FROM calls WHERE call_id = ?", calls[0].call_id)
        assert isinstance(json.loads(raw), dict)
        if answer["accepted"]:  # not a call_id an earlier example stored
            assert raw == body.decode()  # one record's body is kept as the text that came
    else:
        assert status == 400 and answer["error"] == bad[0][1]


@pytest.mark.xdist_group("fuzz_webhook")  # one service for these, in order
def test_thousands_of_records_in_one_request_are_capped(webhook: Webhook) -> None:
    many = [make_call(2_000_000 + i) for i in range(MAX_RECORDS + 1)]
    body = json_body(many)
    if len(body) <= 64 * 1024:  # pragma: no cover - RIA records are ~400 bytes
        status, answer = webhook.post(body, "application/json")
        assert status == 413
    else:
        compact = json_body([{"call_id": 3_000_000 + i} for i in range(MAX_RECORDS + 1)])
        assert len(compact) <= 64 * 1024
        status, answer = webhook.post(compact, "application/json")
        assert status == 413 and str(MAX_RECORDS) in answer["error"]
        assert webhook.rows("SELECT COUNT(*) FROM rejected_payloads WHERE body = ?", compact)
    status, _ = webhook.post(b"[" + b" " * (64 * 1024) + b"]", "application/json")
    assert status == 413  # over the body limit: not even read


@pytest.mark.xdist_group("fuzz_webhook")  # one service for these, in order
def test_the_service_survived_the_fuzzing(webhook: Webhook) -> None:
    status, health = webhook.request("GET", "/healthz")
    assert status == 200, health
    assert webhook.rows("PRAGMA integrity_check") == [("ok",)]


# ---- the parser ---------------------------------------------------------------------------


@FUZZ
@given(body=bodies, content_type=content_types)
def test_parser_raises_only_record_errors_and_yields_storable_calls(
    body: bytes, content_type: str | None
) -> None:
    try:
        raw = decode_body(body, content_type)
    except RecordError:
        return
    assert isinstance(raw, list) and 1 <= len(raw) <= MAX_RECORDS
    calls, bad = parse_records(raw, KYIV)
    assert len(calls) + len(bad) == len(raw)
    for call in calls:
        for value in (
            call.caller_phone,
            call.status,
            call.marka or "",
            call.model or "",
            call.link,
            call.phone,
            call.destination_phone,
            raw_json(call.raw),
        ):
            value.encode("utf-8")  # SQLite stores UTF-8: a lone surrogate would fail here
        assert -(2**63) <= call.call_id < 2**63 and call.call_id > 0


# ---- commands -----------------------------------------------------------------------------

command_words = st.one_of(
    st.sampled_from(["stats", "missed", "help", "start", "статистика", "пропущені", ""]),
    any_text,
)
periods = st.one_of(
    any_text,
    st.sampled_from(
        [
            "today",
            "week",
            "місяць",
            "0001-01-01",
            "9999-12-31",
            "2026-02-29",
            "0001-01-01..0001-01-01",
            "2025-01-01..2026-01-01",
            "..",
            "2026-11-28..",
            "2026-11-28..2026-11-01",
            "١٢٣٤-٠١-٠١",
            "2026-11-28 ..  2026-11-28",
        ]
    ),
    st.dates().map(str),
    st.tuples(st.dates(), st.dates()).map(lambda t: f"{t[0]}..{t[1]}"),
)


@FUZZ
@given(text=periods, now=st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)))
def test_parse_period_raises_only_period_errors(text: str, now: datetime) -> None:
    try:
        period = parse_period(text, now=now.replace(tzinfo=KYIV), tz=KYIV)
    except PeriodError:
        return
    assert period.start < period.end and period.first_day <= period.last_day


SEEDED_DAY = datetime(2026, 11, 28, tzinfo=KYIV)  # one of the sampled periods above


def a_day_of_calls(now: datetime) -> list[Call]:
    """Calls every 20 minutes over the 24 hours before `now` (today, yesterday and this
    week hit data, whenever the test runs) and over SEEDED_DAY (the fixed dates do): all
    statuses, callers who call back, RIA strings with markup in them."""
    statuses = ["ANSWER", "NOANSWER", "BUSY", "CANCEL", "ANSWER", "NOANSWER", "FAILED"]
    starts = [now.replace(microsecond=0) - timedelta(minutes=20 * k) for k in range(72)]
    starts += [SEEDED_DAY + timedelta(minutes=20 * k) for k in range(72)]
    return [
        summary_call(
            70_000 + i,
            when,
            statuses[i % len(statuses)],
            caller=f"09511100{i % 17:02d}",  # repeat callers: missed, then reached
            waiting=i % 50,
            duration=60 if statuses[i % len(statuses)] == "ANSWER" else 0,
            marka=["Acura", "<b>BMW</b>", "*Škoda*", None][i % 4],
            model=["MDX", "&amp;", "`x`", "~s~"][i % 4],
        )
        for i, when in enumerate(starts)
    ]


@pytest.fixture(scope="module")
def command_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A store with a day of calls in it, so the fuzzed periods hit data."""
    path = tmp_path_factory.mktemp("commands") / "calls.db"
    db = connect(path)
    load(db, a_day_of_calls(datetime.now(KYIV)))
    db.conn.close()
    store = Store(path)
    asyncio.run(store.open())
    for period in ("today", "yesterday", "2026-11-28"):  # not empty, as promised
        reply = asyncio.run(commands.answer("stats", period, store=store, tz=KYIV))
        assert isinstance(reply, commands.StatsReply) and reply.stats.total, (period, reply)
    yield store
    asyncio.run(store.close())


@FUZZ
@given(
    command=command_words,
    argument=periods,
    fmt=st.sampled_from(render.FORMATS),
    lang=st.sampled_from(["uk", "en"]),
)
def test_commands_answer_anything_and_render_safely(
    command_store: Store, command: str, argument: str, fmt: str, lang: str
) -> None:
    text = f"/{command} {argument}"
    word, rest = commands.split_command(text)
    reply = asyncio.run(commands.answer(word, rest, store=command_store, tz=KYIV))
    message = render.reply(reply, fmt, lang, KYIV)
    assert_safe(message, fmt)


# ---- rendering RIA's strings ----------------------------------------------------------------

calls = st.builds(
    Call,
    call_id=st.integers(1, 2**62),
    started_at=st.integers(0, 4_102_444_800),
    local_date=st.one_of(st.just("2026-11-28T14:05:00"), nasty_text),
    status=nasty_text,
    caller_phone=st.one_of(st.just("0951174074"), nasty_text),
    caller_e164=st.one_of(st.just("+380951174074"), nasty_text),
    destination_phone=nasty_text,
    phone=nasty_text,
    waiting=st.integers(0, 10**6),
    marka=st.one_of(st.none(), nasty_text),
    model=st.one_of(st.none(), nasty_text),
)

_SLACK_MARKUP = re.compile(r"<tel:\+?[0-9]+\|[^<>|]*>|&(amp|lt|gt);")


def assert_safe(message: str, fmt: str) -> None:
    """The message means what we wrote: valid Telegram HTML with only our tags, or mrkdwn
    whose only control sequences are our tel: links and escapes."""
    if fmt == "html":
        parse_html(message, strict=True)  # raises, as Telegram would answer 400
        assert not re.search(r"<(?!/?(b|code)>)", message), message
    elif fmt == "mrkdwn":
        rest = _SLACK_MARKUP.sub("", message)
        assert "<" not in rest and ">" not in rest and "&" not in rest, message


@FUZZ
@given(call=calls, fmt=st.sampled_from(render.FORMATS), lang=st.sampled_from(["uk", "en"]))
def test_alerts_render_ria_strings_safely(call: Call, fmt: str, lang: str) -> None:
    message = render.alert(call, fmt, lang, KYIV)
    assert_safe(message, fmt)
    for part in render.coalesced([call, call], fmt, lang, KYIV):
        assert_safe(part, fmt)
    if fmt == "html" and call.car:
        plain, _ = parse_html(message)
        assert markup.clip(call.car, "car") in plain  # shown as written, not as markup


async def test_nasty_ria_strings_reach_telegram_as_written(services, telegram) -> None:
    """Through the running service to the fake Telegram, which rejects bad HTML strictly
    (400, a permanent failure): every alert arrives, and shows RIA's text as text."""
    from tests.conftest import GROUP, telegram_env

    nasty = [
        {"marka": "<b>BMW</b> & Co", "model": "X5 </i>"},
        {"marka": "*Škoda*", "model": "_Octavia_ `RS`", "phone": "<script>"},
        {"marka": "🚗 Tesla 🔥", "model": "&lt;3 &amp; &#x1F600;"},
        {"marka": "<tel:+380|x>", "model": "<!channel> <@U123>", "destination_phone": "<a>"},
    ]
    service = await services(**telegram_env(telegram))
    for i, fields in enumerate(nasty, start=1):
        status, _ = await service.post(
            service.webhook_url, json=make_call(i, "NOANSWER", caller=f"06700000{i:02d}", **fields)
        )
        assert status == 200
    messages = await telegram.wait_for_messages(len(nasty), chat_id=GROUP, timeout=15)
    plain = "\n".join(m["plain_text"] for m in messages)
    for fields in nasty:
        assert fields["marka"] in plain
    assert not [r for r in telegram.requests if r["status"] == 400]
    assert await service.stop() == 0
