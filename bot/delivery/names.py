"""Managers by name (issue 13): the configuration file's `[[manager]]` entries as the
renderers need them: a name for a `destination_phone`, and a mention of the manager in
the channel's own syntax (Telegram text mention, Slack <@U…>).

A process-wide directory: the configuration loader fills it at start and on every reload
(`set_managers`); empty (no config file), every renderer shows numbers exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from typing import Any, Protocol

from handlers.ria.records import to_e164


class _ManagerLike(Protocol):
    name: str
    phones: Any  # E.164 numbers
    telegram: int | None
    slack: str | None


@dataclass(frozen=True)
class Person:
    name: str
    telegram: int | None = None
    slack: str | None = None


_by_phone: dict[str, Person] = {}
# destination_phone (E.164) -> the manager's first phone: the key figures are grouped by,
# so a manager with two lines is one line of /stats, summaries and callback figures
_canonical: dict[str, str] = {}


def set_managers(managers: Iterable[_ManagerLike]) -> None:
    """Replace the directory (one assignment: a renderer never sees half of a reload)."""
    global _by_phone, _canonical
    fresh: dict[str, Person] = {}
    canonical: dict[str, str] = {}
    for m in managers:
        person = Person(m.name, m.telegram, m.slack)
        phones = sorted(str(p) for p in m.phones)
        for phone in phones:
            fresh[phone] = person
            canonical[phone] = phones[0]
    _by_phone, _canonical = fresh, canonical


def person(phone: str | None) -> Person | None:
    """The manager whose line `phone` is (RIA's destination_phone, any form), if named."""
    if not phone or not _by_phone:
        return None
    found = _by_phone.get(phone)
    if found is None:
        e164 = to_e164(phone)
        found = _by_phone.get(e164) if e164 else None
    return found


def canonical(phone: str) -> str:
    """The key a manager's figures are counted under: her first phone for every one of her
    lines (a name for two lines is one line of figures), any other number as it is."""
    if not _canonical or not phone:
        return phone
    return _canonical.get(phone) or _canonical.get(to_e164(phone) or "", phone)


def name_of(phone: str | None) -> str | None:
    found = person(phone)
    return found.name if found else None


def mention(fmt: str, ref: str | None, phone: str | None) -> str | None:
    """`ref` ("telegram:<user id>" / "slack:<U…>", from the outbox row) as a mention in
    `fmt`: Telegram HTML text mention (works without a username), Slack <@U…>. The text
    format (console) gets the plain name. None when there is nothing to mention."""
    if not ref:
        return None
    channel, _, who = ref.partition(":")
    name = name_of(phone) or who
    if fmt == "html" and channel == "telegram" and who.lstrip("-").isdigit():
        return f'<a href="tg://user?id={int(who)}">{escape(name)}</a>'
    if fmt == "mrkdwn" and channel == "slack" and who.isalnum():
        return f"<@{who}>"
    if fmt == "text":
        return name
    return None


__all__ = ["Person", "canonical", "mention", "name_of", "person", "set_managers"]
