"""The one RIA parser: lenient where RIA is sloppy, strict where it matters."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from handlers.ria.records import (
    MAX_RECORDS,
    RecordError,
    TooManyRecords,
    decode_body,
    decode_records,
    parse_record,
    parse_records,
    to_e164,
)
from tests.fakes.ria import SAMPLE

KYIV = ZoneInfo("Europe/Kyiv")
RECORD = copy.deepcopy(SAMPLE[0])  # RIA's own first example record


def test_sample_record_fields() -> None:
    call = parse_record(RECORD, KYIV)
    assert call.call_id == 22346351
    assert call.status == "CANCEL"
    assert call.caller_e164 == "+380951174074"
    assert call.waiting == 11
    assert call.car == "Acura MDX"
    assert call.local_date == "2021-07-31T15:57:01"
    # 15:57 in Kyiv in July is UTC+3
    assert call.started_at == int(
        datetime(2021, 7, 31, 12, 57, 1, tzinfo=ZoneInfo("UTC")).timestamp()
    )
    assert call.raw == RECORD


def test_lenient_where_ria_is_sloppy() -> None:
    record = dict(
        RECORD,
        status="bysy",
        call_id="17",
        marka=None,
        model=None,
        marka_id=0,
        extra_field={"kept": True},
        duration="12",
        waighting=None,
    )
    call = parse_record(record, KYIV)
    assert call.status == "BUSY"
    assert call.call_id == 17
    assert call.car is None and call.marka_id is None
    assert call.duration == 12 and call.waiting == 0
    assert call.raw["extra_field"] == {"kept": True}
    assert parse_record(dict(RECORD, status="ROBOT"), KYIV).status == "ROBOT"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"call_id": None}, "call_id is missing"),
        ({"call_id": "12a"}, "call_id is not an integer"),
        ({"call_id": 1.5}, "call_id is not an integer"),
        ({"call_id": True}, "call_id is not an integer"),
        ({"call_id": 2**70}, "call_id is out of range"),
        ({"call_id": -3}, "call_id must be positive"),
        ({"date": "yesterday"}, "is not YYYY-MM-DDTHH:MM:SS"),
        ({"date": None}, "date is missing"),
    ],
)
def test_strict_where_it_matters(change: dict, reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        parse_record(dict(RECORD, **change), KYIV)


def test_dst_gap_and_offsets() -> None:
    # 2026-03-29 03:30 does not exist in Kyiv (clocks jump 03:00 -> 04:00): still parsed
    call = parse_record(dict(RECORD, date="2026-03-29T03:30:00"), KYIV)
    assert call.local_date == "2026-03-29T03:30:00"
    with_offset = parse_record(dict(RECORD, date="2021-07-31T12:57:01+00:00"), KYIV)
    assert with_offset.local_date == "2021-07-31T15:57:01"


def test_phone_numbers() -> None:
    assert to_e164("0951174074") == "+380951174074"
    assert to_e164("380951174074") == "+380951174074"
    assert to_e164("+380 95 117 40 74") == "+380951174074"
    assert to_e164("anonymous") == "anonymous"


def test_bodies() -> None:
    assert decode_body(json.dumps(RECORD).encode(), "text/html") == [RECORD]
    assert decode_body(json.dumps([RECORD, RECORD]).encode(), None) == [RECORD, RECORD]
    form = decode_body(
        b"call_id=5&date=2021-07-31T15:57:01&status=BUSY", "application/x-www-form-urlencoded"
    )
    assert form == [{"call_id": "5", "date": "2021-07-31T15:57:01", "status": "BUSY"}]
    assert decode_body(b'{"calls": [{"call_id": 1}]}', None) == [{"call_id": 1}]
    for bad in (b"", b"   ", b"{not json", b"\xff\xfe", b"[]"):
        with pytest.raises(RecordError):
            decode_body(bad, "application/json")
    with pytest.raises(TooManyRecords):
        decode_body(json.dumps([RECORD] * (MAX_RECORDS + 1)).encode(), None)


def test_parse_records_splits_good_and_bad() -> None:
    calls, bad = parse_records([RECORD, {"call_id": "x"}, "text"], KYIV)
    assert [c.call_id for c in calls] == [RECORD["call_id"]]
    assert [reason for _, reason in bad] == [
        "call_id is not an integer",
        "a call record must be a JSON object",
    ]


def test_one_record_body_keeps_its_text_and_others_do_not() -> None:
    # the webhook's usual body: the record's JSON text is kept as it came (Call.raw_text),
    # spacing and \u escapes included, and stored instead of an encoding of Call.raw
    text = ' {"call_id": 7, "date": "2021-07-31T15:57:01", "status": "BUSY", "x": "\\u0436"} '
    records, one = decode_records(("\ufeff" + text + "\n").encode(), "application/json")
    assert one == text.strip()
    [call], bad = parse_records(records, KYIV, text=one)
    assert not bad and call.raw_text == text.strip() and call.raw["x"] == "ж"
    # several records, a wrapped list, or a form: no text of their own, Call.raw is encoded
    for body in (
        b'[{"call_id": 7, "date": "2021-07-31T15:57:01"}]',
        b'{"calls": [{"call_id": 7, "date": "2021-07-31T15:57:01"}]}',
        b"call_id=7&date=2021-07-31T15:57:01",
    ):
        records, one = decode_records(body, None)
        assert one is None
        [call], _ = parse_records(records, KYIV, text=one)
        assert call.raw_text is None
