"""handlers/backoff: exponential, capped, jittered, and safe after any number of failures."""

from __future__ import annotations

import pytest

from handlers.backoff import backoff


def test_doubles_from_base_until_the_cap() -> None:
    delays = [backoff(n, base=2.0, cap=60.0, jitter=0) for n in range(8)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


@pytest.mark.parametrize("attempts", [1_025, 10**6])
def test_never_overflows(attempts: int) -> None:
    assert backoff(attempts, base=60.0, cap=3600.0, jitter=0) == 3600.0


def test_jitter_stays_within_its_band() -> None:
    delays = {backoff(3, base=1.0, cap=100.0) for _ in range(200)}
    assert min(delays) >= 8.0 * 0.8 and max(delays) <= 8.0 * 1.2
    assert len(delays) > 1  # it does vary
