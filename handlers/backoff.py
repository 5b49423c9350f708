"""One backoff for every retry loop (delivery, connecting a chat platform, the RIA poller).

Exponential from `base`, capped at `cap`, with ±`jitter` so that many targets or processes
do not retry in step. The exponent is capped too: `2 ** attempts` for a loop that has
failed for a week would overflow a float.
"""

from __future__ import annotations

import random

MAX_EXPONENT = 30  # 2**30 s is decades: any real cap is reached long before


def backoff(attempts: int, *, base: float, cap: float, jitter: float = 0.2) -> float:
    """Seconds to wait before try number `attempts + 1` (`attempts` failures so far)."""
    delay = min(base * 2 ** min(max(attempts, 0), MAX_EXPONENT), cap)
    return delay * random.uniform(1 - jitter, 1 + jitter) if jitter else delay
