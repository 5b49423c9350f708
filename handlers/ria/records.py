"""The one parser from raw RIA data to `Call` values, used by the webhook, poller and backfill.

Lenient where RIA is sloppy (BYSY, unknown statuses, extra fields, null make/model, numbers
as strings), strict where it matters: `call_id` must be an integer and `date` a date.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import phonenumbers

from storage.calls import Call

MAX_RECORDS = 1000  # per request: more is not a RIA delivery, and would hold the writer
# RIA's records are flat; anything nested deeper than this is not a call and could exhaust
# the recursion limit of the JSON encoder that stores it
MAX_DEPTH = 16


class RecordError(ValueError):
    """One record cannot be used; the message says why, for the 400 answer."""


def normalise_status(status: str) -> str:
    """RIA spells BUSY as BYSY on its own page: treat both as BUSY."""
    status = status.strip().upper()
    return "BUSY" if status == "BYSY" else status


@functools.lru_cache(maxsize=4096)  # the same callers ring again and again
def phone_forms(raw: str) -> tuple[str, str] | None:
    """(E.164, international display) of a Ukrainian-format number; None if it is not one."""
    try:
        number = phonenumbers.parse(raw, "UA")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return (
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
    )


def to_e164(number: str) -> str:
    """'0951174074' -> '+380951174074'; anything unparseable comes back as given."""
    # RIA sends Ukrainian national numbers (0 + 9 digits), which need no full parse: this is
    # on the webhook's hot path
    if len(number) == 10 and number[0] == "0" and number.isdigit() and number.isascii():
        return "+380" + number[1:]
    forms = phone_forms(number)
    return forms[0] if forms else number


def _int(record: Mapping[str, Any], key: str, *, required: bool = False) -> int | None:
    value = record.get(key)
    if type(value) is int and -(2**63) <= value < 2**63:  # what RIA sends: the hot path
        return value
    if value is None or value == "":
        if required:
            raise RecordError(f"{key} is missing")
        return None
    if isinstance(value, bool):
        raise RecordError(f"{key} is not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,19}\s*", value):
        number = int(value)
    else:
        if required:
            raise RecordError(f"{key} is not an integer")
        return None  # lenient for the non-key numbers: keep the raw record, drop the value
    if not -(2**63) <= number < 2**63:
        if required:
            raise RecordError(f"{key} is out of range")
        return None
    return number


# ECMA-48 sequences, 7-bit (ESC ...) and 8-bit (C1 CSI/OSC/DCS...): CSI with its parameters,
# OSC/DCS/APC/PM/SOS strings up to their terminator (BEL or ST), and two-byte ESC sequences
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]P_^X]|[\x90\x98\x9d-\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)


def clean_text(text: str) -> str:
    """`text` as printable characters and plain spaces only.

    Lone surrogates (JSON's "\\ud800" decodes to one, and SQLite, UTF-8, cannot store it)
    become U+FFFD; a valid pair stays (it is one character). Whitespace of any kind (newline,
    tab, no-break space) becomes a plain space, and every other control or format character
    (C0 and C1: ESC, BEL, CSI...) goes: a RIA field must not retitle or clear an operator's
    terminal when it reaches the console channel or a log line.
    """
    if text.isascii() and text.isprintable():  # the usual case: nothing to do (at C speed)
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if text.isprintable():  # the usual case, at C speed: nothing to strip
        return text
    # a whole escape sequence goes, not only its ESC: "\x1b[2J0951174074" is still a number
    text = _ESCAPE_SEQUENCE.sub("", text)
    return "".join(c if c.isprintable() else " " if c.isspace() else "" for c in text)


def _str(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if type(value) is str and value.isascii() and value.isprintable():  # the hot path
        return value
    return clean_text(value if isinstance(value, str) else str(value))


def _opt_str(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    text = clean_text(value if isinstance(value, str) else str(value)).strip()
    return text or None


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON data nests more than `limit` levels (walked without recursion).

    Only containers go on the stack: a flat RIA record costs one pass over its values, which
    matters on the webhook's hot path."""
    if type(value) is dict and limit >= 1:
        # a RIA record: flat, so one pass over its values settles it (the hot path)
        for child in value.values():
            if isinstance(child, dict | list):
                break
        else:
            return False
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def _parse_date(value: Any, tz: ZoneInfo) -> tuple[str, int]:
    if not isinstance(value, str) or not value.strip():
        raise RecordError("date is missing")
    return _local_date(value, tz)


# the calls of one busy minute share their few date strings, and the zone conversion is the
# dearest step of a record's parse (~4 µs of ~16)
@functools.lru_cache(maxsize=1024)
def _local_date(value: str, tz: ZoneInfo) -> tuple[str, int]:
    text = value.strip().replace(" ", "T", 1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RecordError(f"date {value[:40]!r} is not YYYY-MM-DDTHH:MM:SS") from None
    try:
        if moment.tzinfo is None:
            local = moment.replace(tzinfo=tz)
        else:
            # RIA sends no offset; if one ever comes, honour it and store the local wall time
            local = moment.astimezone(tz)
        return local.replace(tzinfo=None).isoformat(timespec="seconds"), int(local.timestamp())
    except (OverflowError, ValueError):  # year 1 or 9999 with an offset past the range
        raise RecordError(f"date {value[:40]!r} is out of range") from None


def parse_record(record: Any, tz: ZoneInfo, *, text: str | None = None) -> Call:
    """One RIA record (a dict) to a Call; raises RecordError saying what is wrong. `text`:
    the record's JSON exactly as received, kept as its raw form (see Call.raw_text)."""
    if not isinstance(record, Mapping):
        raise RecordError("a call record must be a JSON object")
    if too_deep(record):
        raise RecordError(f"a call record nests more than {MAX_DEPTH} levels")
    call_id = _int(record, "call_id", required=True)
    assert call_id is not None
    if call_id <= 0:
        raise RecordError("call_id must be positive")
    local_date, started_at = _parse_date(record.get("date"), tz)
    status = normalise_status(_str(record, "status")) or "UNKNOWN"
    caller = _str(record, "caller_phone").strip()
    return Call(
        call_id=call_id,
        started_at=started_at,
        local_date=local_date,
        status=status,
        caller_phone=caller,
        caller_e164=to_e164(caller) if caller else "",
        destination_phone=_str(record, "destination_phone").strip(),
        phone=_str(record, "phone").strip(),
        duration=max(_int(record, "duration") or 0, 0),
        # RIA's field is spelt `waighting`; accept the correct spelling too
        waiting=max(_int(record, "waighting") or _int(record, "waiting") or 0, 0),
        link=_str(record, "link").strip(),
        marka=_opt_str(record, "marka"),
        marka_id=_int(record, "marka_id") or None,
        model=_opt_str(record, "model"),
        model_id=_int(record, "model_id") or None,
        price=_int(record, "price"),
        raw=dict(record),
        raw_text=text,
    )


def decode_body(body: bytes, content_type: str | None) -> list[Any]:
    """A webhook or API body to a list of raw records: JSON object, JSON array, or a form.

    The content type is only a hint: RIA has served JSON as text/html, so JSON is tried first
    whenever the body looks like it.
    """
    return decode_records(body, content_type)[0]


def decode_records(body: bytes, content_type: str | None) -> tuple[list[Any], str | None]:
    """decode_body, and the JSON text of the one record when the body is exactly one JSON
    object that is a record (what RIA's webhook sends): parse_records keeps it as the raw
    form, which saves encoding the record again. None for any other body."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RecordError("body is not UTF-8") from None
    stripped = text.strip()
    if not stripped:
        raise RecordError("body is empty")
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except (ValueError, RecursionError) as exc:
            raise RecordError(f"body is not valid JSON ({str(exc)[:80]})") from None
        if too_deep(data, MAX_DEPTH + 2):  # a list of records wrapped in an object is fine
            raise RecordError(f"body nests more than {MAX_DEPTH} levels")
    elif content_type and "json" in content_type:
        raise RecordError("body is not valid JSON")
    else:
        pairs = parse_qsl(stripped, keep_blank_values=True, strict_parsing=False)
        if not pairs:
            raise RecordError("body is neither JSON nor a form")
        data = dict(pairs)
    one: str | None = None
    if isinstance(data, dict):
        # some senders wrap the list: {"calls": [...]} / {"data": [...]}
        for key in ("calls", "data", "items"):
            if isinstance(data.get(key), list) and "call_id" not in data:
                data = data[key]
                break
        else:
            one = stripped if stripped[0] == "{" else None  # a form is no JSON text
    records = data if isinstance(data, list) else [data]
    if not records:
        raise RecordError("no call records in the body")
    if len(records) > MAX_RECORDS:
        raise TooManyRecords(f"more than {MAX_RECORDS} records in one request")
    return records, one


class TooManyRecords(RecordError):
    """The body holds more records than one request may carry (413)."""


def parse_records(
    raw: list[Any], tz: ZoneInfo, *, text: str | None = None
) -> tuple[list[Call], list[tuple[Any, str]]]:
    """Parse each record; returns the good calls and (record, reason) for the bad ones.
    `text`: decode_records' JSON text of a body that was exactly one record."""
    calls: list[Call] = []
    bad: list[tuple[Any, str]] = []
    one = text if len(raw) == 1 else None
    for record in raw:
        try:
            calls.append(parse_record(record, tz, text=one))
        except RecordError as exc:
            bad.append((record, str(exc)))
    return calls, bad
