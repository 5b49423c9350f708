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


def set_managers(managers: Iterable[_ManagerLike]) -> None:
    """Replace the directory (one assignment: a renderer never sees half of a reload)."""
    global _by_phone
    fresh: dict[str, Person] = {}
    for m in managers:
        person = Person(m.name, m.telegram, m.slack)
        for phone in m.phones:
            fresh[str(phone)] = person
    _by_phone = fresh


def person(phone: str | None) -> Person | None:
    """The manager whose line `phone` is (RIA's destination_phone, any form), if named."""
    if not phone or not _by_phone:
        return None
    found = _by_phone.get(phone)
    if found is None:
        e164 = to_e164(phone)
        found = _by_phone.get(e164) if e164 else None
    return found


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


__all__ = ["Person", "mention", "name_of", "person", "set_managers"]
