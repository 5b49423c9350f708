"""Several RIA accounts in one bot (issue 13): each [[account]] of the configuration file
gets its own webhook URL (/webhooks/ria/<its secret>) and its own poller within its own
quota. Without [[account]] (or without a file) the RIA_* variables are the one account,
exactly as before; with them, a RIA_* account that is set keeps working beside them.
"""

from __future__ import annotations

import logging

import aiohttp

from bot.config import Settings
from bot.config_file import FileConfig
from bot.webhook_url import MASK, _local_name
from handlers.intake import Intake
from handlers.ria.factory import build_account_poller
from handlers.ria.poller import RiaPoller
from storage.db import Store

log = logging.getLogger(__name__)


def webhook_secrets(config: FileConfig | None) -> dict[str, str]:
    """secret -> account name, for the webhook (empty without [[account]])."""
    if config is None:
        return {}
    return {a.webhook_secret.get_secret_value(): a.name for a in config.accounts}


def announce(settings: Settings, config: FileConfig | None, port: int) -> None:
    """Each account's URL, its secret masked like the stored one's (it lives in the file or
    in the environment, where the operator already has it)."""
    if config is None:
        return
    s = settings
    host = s.http_host if s.http_host not in ("0.0.0.0", "::", "") else _local_name()
    base = (s.public_url or f"http://{host}:{port}").rstrip("/")
    for account in config.accounts:
        print(
            f"RIA webhook URL of account {account.name}: {base}/webhooks/ria/{MASK}"
            " (its webhook_secret)",
            flush=True,
        )


def pollers(
    settings: Settings,
    config: FileConfig | None,
    session: aiohttp.ClientSession,
    store: Store,
    intake: Intake,
) -> list[RiaPoller]:
    """One poller per [[account]], each counting its own requests against its own quota."""
    if config is None:
        return []
    made = [build_account_poller(a, settings, session, store, intake) for a in config.accounts]
    for poller in made:
        log.info("poller: account %s, %d requests a month", poller.account, poller.monthly_quota)
    return made


__all__ = ["announce", "pollers", "webhook_secrets"]
