"""The dispatcher's split of a coalesced backlog into messages: each part the longest
prefix that fits one message, and the cost linear in the backlog (it was quadratic)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from bot.delivery import render
from bot.delivery.coalesce import split_coalesced as _split_coalesced
from handlers.ria.records import parse_records
from storage.outbox import OutboxItem, Target
from tests.fakes.ria import make_call

KYIV = ZoneInfo("Europe/Kyiv")


def backlog(n: int) -> list[OutboxItem]:
    calls, bad = parse_records(
        [make_call(i + 1, "NOANSWER", caller=f"067{i:07d}") for i in range(n)], KYIV
    )
    assert not bad
    items = [OutboxItem.for_call(c, Target("telegram", "-100123"), now=0.0) for c in calls]
    for number, item in enumerate(items, start=1):
        item.id = number
    return items


@pytest.mark.parametrize("n", [1, 2, 7, 82, 83, 300])
def test_parts_are_the_longest_prefixes_that_fit(n: int) -> None:
    items = backlog(n)
    parts = _split_coalesced(items, "html", "uk", KYIV, 4096)
    assert [item for part, _ in parts for item in part] == items  # all, in order, once
    rest = items
    for part, text in parts:
        calls = [item.call for item in part]
        assert [text] == render.coalesced(calls, "html", "uk", KYIV, 4096)
        if len(part) < len(rest):  # one more would not have fitted
            longer = [item.call for item in rest[: len(part) + 1]]
            assert len(render.coalesced(longer, "html", "uk", KYIV, 4096)) > 1
        rest = rest[len(part) :]


def test_a_big_backlog_splits_in_linear_time() -> None:
    # no timing asserted: count the lines rendered instead, which is what the time follows
    rendered = 0
    original = render._compact

    def counting(*args: object, **kwargs: object) -> str:
        nonlocal rendered
        rendered += 1
        return original(*args, **kwargs)  # type: ignore[arg-type]

    render._compact = counting  # type: ignore[assignment]
    try:
        per_item = []
        for n in (500, 2000):
            rendered = 0
            _split_coalesced(backlog(n), "html", "uk", KYIV, 4096)
            per_item.append(rendered / n)
    finally:
        render._compact = original  # type: ignore[assignment]
    # quadratic would make the per-item count grow about 4x from 500 to 2,000 alerts
    assert per_item[1] < per_item[0] * 1.5
