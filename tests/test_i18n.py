"""The message catalogue: complete in both languages, markup-free, consistent placeholders."""

from __future__ import annotations

import string
from datetime import date

import pytest

from bot import i18n
from bot.i18n import MESSAGES, duration, status_name, t


def test_every_key_exists_in_both_languages() -> None:
    assert set(MESSAGES) == {"uk", "en"}
    assert set(MESSAGES["uk"]) == set(MESSAGES["en"])
    assert all(value.strip() for lang in MESSAGES.values() for value in lang.values())


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


@pytest.mark.parametrize("key", sorted(MESSAGES["uk"]))
def test_same_placeholders_in_both_languages(key: str) -> None:
    assert placeholders(MESSAGES["uk"][key]) == placeholders(MESSAGES["en"][key])


@pytest.mark.parametrize("lang", sorted(MESSAGES))
def test_templates_hold_nothing_a_format_would_interpret(lang: str) -> None:
    # bot/render escapes the values only, trusting the templates to need no escaping
    for key, template in MESSAGES[lang].items():
        literal = "".join(text for text, *_ in string.Formatter().parse(template))
        assert not set(literal) & set("&<>*_`~"), key


def test_fallbacks() -> None:
    assert t("en", "missed_call") == "Missed call"
    assert t("uk", "missed_call") == "Пропущений дзвінок"
    assert t("fr", "missed_call") == "Пропущений дзвінок"  # unknown language: Ukrainian
    assert t(" EN ", "missed_call") == "Missed call"
    assert t("en", "no_such_key") == "no_such_key"
    assert t("uk", "stats_total", total=4, callers=3) == "Дзвінків: 4 · абонентів: 3"


def test_status_names() -> None:
    assert status_name("uk", "NOANSWER") == "не відповіли"
    assert status_name("en", "NOANSWER") == "no answer"
    assert status_name("uk", "CANCEL") == "клієнт поклав слухавку"
    assert status_name("en", "CANCEL") == "caller hung up"
    assert status_name("uk", "BUSY") == "зайнято"
    assert status_name("en", "BUSY") == "busy"
    for status in ("ANSWER", "FAILED", "CONGESTION"):
        assert status_name("uk", status) != status and status_name("en", status) != status
    assert status_name("uk", "VOICEMAIL") == "VOICEMAIL"  # unknown: as RIA sent it


@pytest.mark.parametrize(
    ("seconds", "uk", "en"),
    [
        (0, "0 с", "0 s"),
        (45, "45 с", "45 s"),
        (59.6, "1 хв 00 с", "1 min 00 s"),
        (65, "1 хв 05 с", "1 min 05 s"),
        (3599, "59 хв 59 с", "59 min 59 s"),
        (3720, "1 год 02 хв", "1 h 02 min"),
        (-5, "0 с", "0 s"),
        (None, "—", "—"),
    ],
)
def test_durations(seconds: float | None, uk: str, en: str) -> None:
    assert duration("uk", seconds) == uk
    assert duration("en", seconds) == en


def test_dates() -> None:
    assert i18n.day("uk", date(2026, 3, 9)) == "09.03.2026"
    assert i18n.day("en", date(2026, 3, 9)) == "2026-03-09"
