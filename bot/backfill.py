"""`ria-calls-bot backfill`: RIA's call history for a date range, stored (and alerted as
the poller would)."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from typing import TYPE_CHECKING

from bot.cli_parser import DELIVER_TIMEOUT_S
from bot.config import Settings

if TYPE_CHECKING:
    from bot.config_file import FileConfig


async def backfill(
    settings: Settings,
    day_from: date,
    day_to: date,
    config: FileConfig | None = None,
    account: str | None = None,
) -> int:
    """Fetch RIA's history in month-sized requests and store it. Missed calls younger than
    ALERT_MAX_AGE_MINUTES are alerted, as the poller would: whichever source stores a call
    first decides whether anyone hears of it, and a fresh call whose webhook was lost must
    not be swallowed by a backfill that reaches today."""
    import aiohttp

    from handlers.intake import Intake
    from handlers.ria.api import RiaApiError
    from handlers.ria.factory import build_account_poller, build_poller
    from handlers.ria.poller import BudgetExceeded
    from storage.db import Store
    from storage.outbox import OutboxItem

    # each account's history is stored as that account's (issue 13): the RIA_* one and
    # every [[account]], or the one --account names
    accounts = list(config.accounts) if config is not None else []
    if account is not None:
        accounts = [a for a in accounts if a.name == account]
        if not accounts:
            names = ", ".join(a.name for a in config.accounts) if config else ""
            print(
                f"backfill: no [[account]] named {account!r} in the routing file"
                + (f" (there are: {names})" if names else ""),
                file=sys.stderr,
            )
            return 2
    elif not settings.polling_enabled and not accounts:
        print("backfill needs RIA_API_KEY and RIA_USER_ID", file=sys.stderr)
        return 2
    if day_to < day_from:
        print("backfill: --to is before --from", file=sys.stderr)
        return 2
    store = Store(settings.database_path)
    await store.open()
    total_new = total_seen = 0
    alerts: list[OutboxItem] = []
    code = 0
    try:
        async with aiohttp.ClientSession() as session:
            intake = Intake(
                store,
                targets=settings.alert_targets(),
                missed_statuses=settings.missed_statuses,
                on_alerts=alerts.extend,
            )
            if config is not None:  # routed like the service's own calls (issue 13)
                from handlers.routing import route_fn

                intake.route = route_fn(config.router(settings), intake.clock)
            pollers = [build_poller(settings, session, store, intake)] if account is None else []
            pollers += [build_account_poller(a, settings, session, store, intake) for a in accounts]
            for poller in pollers:
                if poller is None:  # RIA_* not set: the file's accounts only
                    continue
                # the RIA_* account's lines as before; an [[account]]'s named
                name = f"account {poller.account}: " if poller.account else ""
                start = day_from
                while start <= day_to:
                    end = min(start + timedelta(days=30), day_to)
                    try:
                        records = await poller.fetch(start, end, purpose="backfill")
                    except (RiaApiError, BudgetExceeded) as exc:
                        print(f"{name}backfill stopped at {start}: {exc}", file=sys.stderr)
                        code = 1
                        break
                    # as the poller does: unusable records are kept in rejected_payloads
                    got = await poller.ingest(records, source="backfill")
                    total_new += got.new
                    total_seen += got.calls
                    print(
                        f"{name}{start}..{end}: {got.calls} calls, {got.new} new"
                        + (
                            f", {got.unusable} unusable (kept in rejected_payloads)"
                            if got.unusable
                            else ""
                        ),
                        flush=True,
                    )
                    start = end + timedelta(days=1)
        if alerts:
            from bot.check import deliver_now

            # real alerts, unlike send-test's: what cannot go out now stays in the outbox
            print(
                f"{len(alerts)} alert(s) for missed calls younger than "
                f"{settings.alert_max_age_minutes:g} min (ALERT_MAX_AGE_MINUTES):",
                flush=True,
            )
            await deliver_now(settings, store, alerts, DELIVER_TIMEOUT_S, take_back=False)
    finally:
        await store.close()
    print(
        f"backfill {'done' if code == 0 else 'stopped'}: {total_seen} calls from RIA, "
        f"{total_new} new, {len(alerts)} alert(s)"
    )
    return code
