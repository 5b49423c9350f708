"""Rendering: escaping per format, tappable numbers, alert layout, coalescing, replies."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.delivery import markup, render
from bot.delivery.render import FORMATS, alert, coalesced, format_phone, message_length, reply
from handlers.chat.commands import ErrorReply, HelpReply, MissedReply, StatsReply
from handlers.chat.periods import parse_period
from storage.calls import Call
from storage.missed import CallerOutcome
from storage.resolutions import ANSWERED, BUTTON, Resolution
from storage.stats import CallbackStats, ManagerCallbacks, ManagerLine, PeriodStats

KYIV = ZoneInfo("Europe/Kyiv")
NOW = datetime(2026, 11, 28, 15, 0, tzinfo=KYIV)
LANGS = ("uk", "en")

NASTY = "<b>Bad</b> & *bold* _it_ `c` ~s~ 😀"  # what RIA must not be able to inject


def make_call(call_id: int = 1, when: str = "2026-11-28T14:05:33", **fields: object) -> Call:
    local = datetime.fromisoformat(when)
    values: dict = {
        "call_id": call_id,
        "started_at": int(local.replace(tzinfo=KYIV).timestamp()),
        "local_date": when,
        "status": "NOANSWER",
        "caller_phone": "0951174074",
        "caller_e164": "+380951174074",
        "destination_phone": "0501112233",
        "phone": "0671234567",
        "waiting": 35,
        "marka": "Toyota",
        "model": "Camry",
    }
    values.update(fields)
    return Call(**values)


# ---- format checkers ----------------------------------------------------------------------


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def html_text(message: str) -> str:
    """Check `message` is Telegram-valid HTML with allowed tags only; return its text."""
    assert not re.search(r"<(?!/?(?:b|i|code|a)[ >])", message), message
    assert not re.search(r"&(?!(?:amp|lt|gt|quot|#x27|#\d+);)", message), message
    parser = _Html()
    parser.feed(message)
    parser.close()
    assert parser.tags <= {"b", "i", "code", "a"}
    assert not parser.stack
    return "".join(parser.text)


def mrkdwn_text(message: str) -> str:
    """Check Slack escaping: no < or > outside our tel: links, & only in entities."""
    bare = re.sub(r"<tel:\+\d+\|[+\d ]+>", "", message)
    assert "<" not in bare and ">" not in bare, message
    assert not re.search(r"&(?!(?:amp|lt|gt);)", message), message
    return bare.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def plain(message: str, fmt: str) -> str:
    if fmt == "html":
        return html_text(message)
    if fmt == "mrkdwn":
        return mrkdwn_text(message)
    return message


# ---- phone numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0951174074", ("+380951174074", "+380 95 117 4074")),
        ("+380951174074", ("+380951174074", "+380 95 117 4074")),
        ("380951174074", ("+380951174074", "+380 95 117 4074")),
        ("abc", ("abc", "abc")),
        ("", ("", "")),
        ("12", ("12", "12")),
    ],
)
def test_format_phone(raw: str, expected: tuple[str, str]) -> None:
    assert format_phone(raw) == expected


# ---- alerts -------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_alert_layout(fmt: str, lang: str) -> None:
    message = alert(make_call(), fmt, lang, KYIV, now=NOW)
    lines = message.split("\n")
    assert len(lines) == 5
    assert lines[0].startswith("🔴 ")
    assert ("не відповіли" if lang == "uk" else "no answer") in lines[0]
    assert "14:05" in lines[2] and "2026" not in lines[2]  # today: the time alone
    assert ("35 с" if lang == "uk" else "35 s") in lines[2]
    assert "Toyota Camry" in lines[3]
    assert "+380 67 123 4567" in lines[4] and "+380 50 111 2233" in lines[4]
    text = plain(message, fmt)
    assert "Пропущений дзвінок" in text if lang == "uk" else "Missed call" in text


def test_caller_number_per_format() -> None:
    call = make_call()
    telegram = alert(call, "html", "uk", KYIV, now=NOW)
    assert "📞 +380951174074" in telegram and "tel:" not in telegram  # Telegram links it
    slack = alert(call, "mrkdwn", "uk", KYIV, now=NOW)
    assert "📞 <tel:+380951174074|+380 95 117 4074>" in slack
    assert "📞 +380951174074" in alert(call, "text", "uk", KYIV, now=NOW)


def test_unparseable_caller_is_shown_escaped_without_a_link() -> None:
    call = make_call(caller_phone="<anon&>", caller_e164="<anon&>")
    assert "📞 &lt;anon&amp;&gt;" in alert(call, "html", "uk", KYIV, now=NOW)
    slack = alert(call, "mrkdwn", "uk", KYIV, now=NOW)
    assert "📞 &lt;anon&amp;&gt;" in slack and "tel:" not in slack


def test_alert_on_another_day_has_the_date() -> None:
    message = alert(make_call(), "text", "uk", KYIV, now=datetime(2026, 11, 29, 9, 0, tzinfo=KYIV))
    assert "🕒 28.11.2026 14:05" in message
    message = alert(make_call(), "text", "en", KYIV, now=datetime(2026, 11, 29, 9, 0, tzinfo=KYIV))
    assert "🕒 2026-11-28 14:05" in message


def test_alert_without_car_or_numbers_is_shorter() -> None:
    call = make_call(marka=None, model=None, phone="", destination_phone="")
    assert len(alert(call, "html", "uk", KYIV, now=NOW).split("\n")) == 3
    call = make_call(marka=None, model=None, phone="")
    last = alert(call, "text", "uk", KYIV, now=NOW).split("\n")[-1]
    assert last == "☎️ Менеджер +380 50 111 2233"


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_alert_escapes_everything_from_ria(fmt: str, lang: str) -> None:
    call = make_call(
        marka="<i>Mark</i> & Co",
        model="*X5* _M_",
        status="<WEIRD&>",
        destination_phone="<script>",
        phone="a&b",
    )
    text = plain(alert(call, fmt, lang, KYIV, now=NOW), fmt)
    for original in ("<i>Mark</i> & Co *X5* _M_", "<WEIRD&>", "<script>", "a&b"):
        assert original in text


# ---- coalesced ----------------------------------------------------------------------------


def marker(call: Call, fmt: str) -> str:
    """What identifies the call's line in the format: its caller number as rendered."""
    e164 = format_phone(call.caller_phone)[0]
    return f"<tel:{e164}|" if fmt == "mrkdwn" else e164


def numbered_calls(count: int, car: str = "Toyota Camry") -> list[Call]:
    return [
        make_call(i, caller_phone=f"0951{i:06d}", caller_e164=f"+380951{i:06d}", marka=car)
        for i in range(1, count + 1)
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_coalesced_fits_one_message(fmt: str) -> None:
    calls = numbered_calls(3)
    parts = coalesced(list(reversed(calls)), fmt, "uk", KYIV, now=NOW)
    assert len(parts) == 1
    lines = parts[0].split("\n")
    assert "Пропущені дзвінки: 3" in plain(lines[0], fmt) and lines[0].startswith("🔴")
    assert len(lines) == 4
    # oldest first; same time, so in call order
    assert all(marker(c, fmt) in line for c, line in zip(calls, lines[1:], strict=True))
    assert "14:05" in lines[1] and "Toyota Camry" in lines[1]


def check_parts(parts: list[str], calls: list[Call], fmt: str, limit: int, lang: str) -> None:
    for part in parts:
        assert len(part) <= limit and message_length(part) <= limit
        plain(part, fmt)  # each part is valid on its own
    for call in calls:
        assert sum(part.count(marker(call, fmt)) for part in parts) == 1
    body = [line for part in parts for line in part.split("\n")[1:]]
    assert len(body) == len(calls)  # every line is a whole call, nothing else
    if len(parts) > 1:
        for i, part in enumerate(parts, start=1):
            label = {"uk": f"(частина {i} з {len(parts)})", "en": f"(part {i} of {len(parts)})"}
            assert label[lang] in part.split("\n")[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_coalesced_splits_between_lines(fmt: str) -> None:
    calls = numbered_calls(300, car=NASTY)
    parts = coalesced(calls, fmt, "uk", KYIV, now=NOW)
    assert len(parts) > 1
    check_parts(parts, calls, fmt, 4096, "uk")


@settings(max_examples=50, deadline=None)
@given(
    count=st.integers(1, 120),
    car=st.text(max_size=80),
    fmt=st.sampled_from(FORMATS),
    limit=st.integers(render.MIN_LIMIT, 5000),
)
def test_coalesced_property(count: int, car: str, fmt: str, limit: int) -> None:
    calls = numbered_calls(count, car=car or None)  # type: ignore[arg-type]
    check_parts(coalesced(calls, fmt, "en", KYIV, limit, now=NOW), calls, fmt, limit, "en")


def test_coalesced_uses_the_whole_limit_before_splitting() -> None:
    calls = numbered_calls(40)
    whole = coalesced(calls, "html", "uk", KYIV, 100_000, now=NOW)[0]
    assert coalesced(calls, "html", "uk", KYIV, message_length(whole), now=NOW) == [whole]
    assert len(coalesced(calls, "html", "uk", KYIV, message_length(whole) - 1, now=NOW)) == 2
    assert coalesced([], "html", "uk", KYIV, now=NOW) == []


def test_coalesced_rejects_a_limit_too_small_for_a_line() -> None:
    with pytest.raises(ValueError):
        coalesced(numbered_calls(2), "html", "uk", KYIV, 100, now=NOW)


# ---- replies ------------------------------------------------------------------------------

FIXTURE_STATS = PeriodStats(  # the fixture day of tests/test_stats.py, worked by hand
    total=13,
    answered=3,
    missed=8,
    by_status={"NOANSWER": 5, "ANSWER": 3, "CANCEL": 2, "BUSY": 1, "FAILED": 1, "WEIRD": 1},
    missed_by_status={"NOANSWER": 5, "CANCEL": 2, "BUSY": 1},
    answer_rate=3 / 13,
    avg_wait_s=142 / 13,
    avg_talk_s=160.0,
    unique_callers=7,
    managers=[
        ManagerLine("0501000001", 6, 2, 4),
        ManagerLine("0501000002", 4, 1, 2),
        ManagerLine("0501000003", 3, 0, 2),
    ],
    top_cars=[("Toyota Camry", 4), ("BMW X5", 3), ("Skoda", 1), ("Skoda Octavia", 1)],
)
YESTERDAY = parse_period("yesterday", now=NOW, tz=KYIV)


def test_stats_reply_uk() -> None:
    text = reply(StatsReply(YESTERDAY, FIXTURE_STATS), "text", "uk", KYIV)
    assert text.split("\n") == [
        "📊 Статистика: вчора, 27.11.2026",
        "Дзвінків: 13 · абонентів: 7",
        "✅ Відповіли: 3 (23%)",
        "🔴 Пропущено: 8 — без відповіді: 5, скасовано: 2, зайнято: 1",
        "⚪ Інші: 2 — зі збоєм: 1, WEIRD: 1",
        "⏱ У середньому: очікування 11 с · розмова 2 хв 40 с",
        "👤 Менеджери:",
        "+380 50 100 0001: 6 · ✅ 2 · 🔴 4",
        "+380 50 100 0002: 4 · ✅ 1 · 🔴 2",
        "+380 50 100 0003: 3 · ✅ 0 · 🔴 2",
        "🚗 Найчастіше питали:",
        "Toyota Camry: 4",
        "BMW X5: 3",
        "Skoda: 1",
        "Skoda Octavia: 1",
    ]


def test_stats_reply_en_range() -> None:
    period = parse_period("2026-11-01..2026-11-27", now=NOW, tz=KYIV)
    text = reply(StatsReply(period, FIXTURE_STATS), "text", "en", KYIV)
    assert text.startswith("📊 Stats: 2026-11-01 – 2026-11-27\nCalls: 13 · callers: 7\n")
    assert "🔴 Missed: 8 — no answer: 5, caller hung up: 2, busy: 1" in text
    assert "⏱ Average wait: 11 s · talk: 2 min 40 s" in text


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_stats_reply_escapes(fmt: str, lang: str) -> None:
    stats = replace(
        FIXTURE_STATS,
        by_status={"<X&>": 13},
        missed_by_status={"<X&>": 8},
        managers=[ManagerLine("<mgr>", 13, 3, 8)],
        top_cars=[(NASTY, 4)],
    )
    message = reply(StatsReply(YESTERDAY, stats), fmt, lang, KYIV)
    text = plain(message, fmt)
    assert NASTY in text and "<X&>" in text and "<mgr>" in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_stats_is_one_line(fmt: str) -> None:
    empty = PeriodStats(0, 0, 0, {}, {}, None, None, None, 0)
    message = reply(StatsReply(YESTERDAY, empty), fmt, "uk", KYIV)
    assert "\n" not in message
    assert plain(message, fmt) == "📊 вчора, 27.11.2026: дзвінків не було."


def test_many_managers_are_cut() -> None:
    managers = [ManagerLine(f"05010000{i:02d}", 1, 1, 0) for i in range(20)]
    stats = replace(FIXTURE_STATS, managers=managers)
    text = reply(StatsReply(YESTERDAY, stats), "text", "en", KYIV)
    assert "…and 5 more" in text


def missed_caller(
    i: int, car: str | None = "BMW X5", resolution: Resolution | None = None
) -> CallerOutcome:
    at = int(datetime(2026, 11, 27, 9, 0, tzinfo=KYIV).timestamp()) + i * 60
    return CallerOutcome(
        f"+380951{i:06d}",
        f"0951{i:06d}",
        "0501112233",
        2,
        at,
        "CANCEL",
        car,
        at - 60,
        [i],
        resolution,
    )


WAITED_TO = datetime(2026, 11, 27, 9, 31, tzinfo=KYIV).timestamp()


def test_missed_reply() -> None:
    r = MissedReply(
        YESTERDAY,
        [missed_caller(1), missed_caller(2, None)],
        waiting=2,
        reached=5,
        now=WAITED_TO,
    )
    assert reply(r, "text", "uk", KYIV).split("\n") == [
        "🔴 Чекають на зворотний дзвінок: вчора, 27.11.2026",
        "Чекають: 2 · додзвонилися пізніше: 5",
        "1. +380951000001 · спроб: 2 · 09:01 · клієнт поклав слухавку · BMW X5 · ⏳ чекає 31 хв",
        "2. +380951000002 · спроб: 2 · 09:02 · клієнт поклав слухавку · ⏳ чекає 30 хв",
    ]
    slack = reply(r, "mrkdwn", "en", KYIV)
    assert (
        "1. <tel:+380951000001|+380 95 100 0001> · attempts: 2 · 09:01 · caller hung up"
        " · BMW X5 · ⏳ waiting 31 min"
    ) in slack
    assert "1. +380951000001 · " in reply(r, "html", "uk", KYIV)


def test_missed_reply_over_several_days_shows_dates() -> None:
    week = parse_period("week", now=NOW, tz=KYIV)
    text = reply(MissedReply(week, [missed_caller(1)], now=WAITED_TO), "text", "uk", KYIV)
    assert "27.11.2026 09:01" in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_missed_reply_when_nobody_waits(fmt: str) -> None:
    message = reply(MissedReply(YESTERDAY, [], waiting=0, reached=3), fmt, "uk", KYIV)
    assert plain(message, fmt) == "✅ вчора, 27.11.2026: ніхто не чекає на зворотний дзвінок."
    message = reply(MissedReply(YESTERDAY, []), fmt, "en", KYIV)
    assert "nobody is waiting for a call back" in message


@pytest.mark.parametrize("fmt", FORMATS)
def test_long_missed_list_fits_one_message(fmt: str) -> None:
    callers = [missed_caller(i, car=NASTY * 3) for i in range(30)]
    message = reply(MissedReply(YESTERDAY, callers, waiting=45, reached=0), fmt, "uk", KYIV)
    assert message_length(message) <= 4096
    plain(message, fmt)
    shown = sum(1 for line in message.split("\n") if re.match(r"\d+\. ", line))
    more = re.search(r"…і ще (\d+)", message)
    assert more is not None and shown + int(more.group(1)) == 45


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_help(fmt: str, lang: str) -> None:
    text = plain(reply(HelpReply(), fmt, lang, KYIV), fmt)
    for needle in ("/stats", "/missed", "/help", "yesterday", "2026-11-01..2026-11-28", "вчора"):
        assert needle in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_errors_name_the_bad_input_escaped(fmt: str) -> None:
    message = reply(ErrorReply("bad_period", "<b>x</b> & y"), fmt, "uk", KYIV)
    text = plain(message, fmt)
    assert "«<b>x</b> & y»" in text and text.startswith("⚠️")
    if fmt == "html":
        assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in message
    assert "366" in reply(ErrorReply("period_too_long", "a..b"), fmt, "en", KYIV)
    unknown = reply(ErrorReply("unknown_command", "foo"), fmt, "en", KYIV)
    assert "“foo”" in unknown and "/help" in unknown
    assert "“x”" in reply(ErrorReply("no_such_key", "x"), fmt, "en", KYIV)


def test_error_detail_is_clipped() -> None:
    message = reply(ErrorReply("bad_period", "x" * 5000), "text", "uk", KYIV)
    assert len(message) < 300


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_test_message(fmt: str, lang: str) -> None:
    text = plain(render.test_message(fmt, lang), fmt)
    assert "ria-calls-bot" in text


def test_unknown_format() -> None:
    with pytest.raises(ValueError):
        alert(make_call(), "markdown", "uk", KYIV)


def test_html_escape_is_stdlib() -> None:
    assert markup.Html().esc(NASTY) == html.escape(NASTY)


# ---- the callback loop (issue 12): /missed all, /stats figures --------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_missed_all_shows_each_callers_outcome(lang: str) -> None:
    base = int(datetime(2026, 11, 27, 9, 0, tzinfo=KYIV).timestamp())
    pressed = Resolution(1, base + 60 + 4 * 60, BUTTON, "Olena", "telegram:1")
    answered = Resolution(2, base + 5 * 3600, ANSWERED, answered_call_id=9, manager="0501112233")
    callers = [missed_caller(1, None, pressed), missed_caller(2, None, answered), missed_caller(3)]
    r = MissedReply(
        YESTERDAY, callers, waiting=1, reached=2, everything=True, now=WAITED_TO, total=3
    )
    lines = reply(r, "text", lang, KYIV).split("\n")
    expected = {
        "en": [
            "🔴 Missed callers and their outcome: yesterday, 2026-11-27",
            "✅ Called back by Olena · 5 min after the call",
            "✅ Got through at 14:00 (answered by +380 50 111 2233)",
            "⏳ waiting 29 min",
        ],
        "uk": [
            "🔴 Пропущені та що з ними сталося: вчора, 27.11.2026",
            "✅ Передзвонив(ла) Olena · через 5 хв після дзвінка",
            "✅ Додзвонився о 14:00 (відповів +380 50 111 2233)",
            "⏳ чекає 29 хв",
        ],
    }[lang]
    assert lines[0] == expected[0]
    for line, outcome in zip(lines[2:], expected[1:], strict=True):
        assert line.endswith(" · " + outcome)


def test_missed_all_of_a_period_with_nobody_missed_says_so() -> None:
    r = MissedReply(YESTERDAY, [], waiting=0, reached=0, everything=True, total=0)
    assert "nobody is waiting" in reply(r, "text", "en", KYIV)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_stats_reply_has_the_callback_figures(fmt: str, lang: str) -> None:
    manager = ManagerCallbacks(3, 2, 1, 1, 300.0, destination_phone="0501112233")
    cb = CallbackStats(4, 3, 2, 1, 240.0, within_s=900.0, managers=[manager])
    stats = replace(FIXTURE_STATS, callbacks=cb)
    text = plain(reply(StatsReply(YESTERDAY, stats), fmt, lang, KYIV), fmt)
    expected = {
        "en": [
            "Called back: 3 of 4 (75%) · within 15 min: 50% · median: 4 min 00 s"
            " · still waiting: 1",
            "   +380 50 111 2233: called back 2 of 3 (67%), within the promise 33%,"
            " median 5 min 00 s, waiting 1",
        ],
        "uk": [
            "Передзвонили: 3 з 4 (75%) · вчасно (до 15 хв): 50% · медіана: 4 хв 00 с · чекають: 1",
            "   +380 50 111 2233: передзвонили 2 з 3 (67%), вчасно 33%, медіана 5 хв 00 с,"
            " чекають 1",
        ],
    }[lang]
    lines = text.split("\n")
    for line in expected:
        assert line in lines


def test_stats_reply_without_missed_callers_has_no_callback_lines() -> None:
    cb = CallbackStats(0, 0, 0, 0, None, within_s=900.0)
    text = reply(StatsReply(YESTERDAY, replace(FIXTURE_STATS, callbacks=cb)), "text", "en", KYIV)
    assert "Called back" not in text
