"""Several RIA accounts in one bot (issue 13): each [[account]] of the configuration file
gets its own webhook URL (/webhooks/ria/<its secret>) and its own poller within its own
quota. Without [[account]] (or without a file) the RIA_* variables are the one account,
exactly as before; with them, a RIA_* account that is set keeps working beside them.

SIGHUP (`changes`, `RiaWebhook.set_accounts`): the webhook takes the new file's secrets at
once (an account removed: its URL answers 404), and the service replaces the pollers of
accounts added, removed or changed (key, user id, quota); an unchanged account's poller
goes on as it was. Requests are counted per account name in the database, so a changed
account's new poller goes on counting where the old one stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from bot.config import Settings
from bot.config_file import FileConfig
from bot.webhook_url import MASK, _local_name
from handlers.intake import Intake
from handlers.ria.factory import build_account_poller
from handlers.ria.poller import RiaPoller
from handlers.ria.webhook import RiaWebhook
from handlers.routing import Account
from storage.db import Store

log = logging.getLogger(__name__)


def webhook_secrets(config: FileConfig | None) -> dict[str, str]:
    """secret -> account name, for the webhook (empty without [[account]])."""
    if config is None:
        return {}
    return {a.webhook_secret.get_secret_value(): a.name for a in config.accounts}


def url_line(settings: Settings, account: Account, port: int) -> str:
    """'RIA webhook URL of account Kyiv: https://…/webhooks/ria/******** (its
    webhook_secret)': the secret masked like the stored one's (it lives in the file or in
    the environment, where the operator already has it)."""
    s = settings
    host = s.http_host if s.http_host not in ("0.0.0.0", "::", "") else _local_name()
    base = (s.public_url or f"http://{host}:{port}").rstrip("/")
    url = f"{base}/webhooks/ria/{MASK}"
    return f"RIA webhook URL of account {account.name}: {url} (its webhook_secret)"


def announce(settings: Settings, config: FileConfig | None, port: int) -> None:
    """Each account's URL, one line each, at start."""
    if config is None:
        return
    for account in config.accounts:
        print(url_line(settings, account, port), flush=True)


@dataclass
class Changes:
    """What a reload does to the accounts, by name."""

    added: list[Account] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[Account] = field(default_factory=list)  # new key, user id or quota
    new_url: list[Account] = field(default_factory=list)  # only the webhook secret changed

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.new_url)


def changes(old: FileConfig | None, new: FileConfig | None) -> Changes:
    before = {a.name: a for a in (old.accounts if old else ())}
    after = {a.name: a for a in (new.accounts if new else ())}
    out = Changes()
    out.removed = [name for name in before if name not in after]
    for name, a in after.items():
        b = before.get(name)
        if b is None:
            out.added.append(a)
        elif _poll_key(a) != _poll_key(b):
            out.changed.append(a)
        elif a.webhook_secret.get_secret_value() != b.webhook_secret.get_secret_value():
            out.new_url.append(a)
    return out


def _poll_key(a: Account) -> tuple[str, str, int]:
    return (a.api_key.get_secret_value(), a.user_id, a.monthly_quota)


def swap(
    old: FileConfig | None,
    new: FileConfig | None,
    *,
    settings: Settings,
    webhook: RiaWebhook,
    pollers: dict[str, RiaPoller],
    build: tuple[aiohttp.ClientSession, Store, Intake],
    schedule: Callable[[RiaPoller, str], None],
    unschedule: Callable[[str], None],
    port: int,
) -> Changes:
    """SIGHUP, once the new file is known to be good: the webhook takes its secrets, the
    pollers of removed and changed accounts stop (`pollers` is updated in place: name ->
    poller; each scheduled as job "poll:<name>"), added and changed ones start at once."""
    found = changes(old, new)
    webhook.set_accounts(webhook_secrets(new))
    for name in found.removed + [a.name for a in found.changed]:
        if pollers.pop(name, None) is not None:
            unschedule(f"poll:{name}")
    wanted = {a.name for a in found.added + found.changed}
    if wanted:
        for poller in _pollers(settings, new, *build, only=wanted):
            pollers[str(poller.account)] = poller
            schedule(poller, f"poll:{poller.account}")
    log_changes(settings, found, port)
    return found


def log_changes(settings: Settings, found: Changes, port: int) -> None:
    for a in found.added:
        log.info("config reload: account %s added; %s", a.name, url_line(settings, a, port))
    for a in found.changed:
        log.info("config reload: account %s changed (key, user id or quota): new poller", a.name)
    for a in found.new_url:
        log.info(
            "config reload: account %s: new webhook secret; %s", a.name, url_line(settings, a, port)
        )
    for name in found.removed:
        log.info("config reload: account %s removed: its webhook URL and poller are gone", name)


def pollers(
    settings: Settings,
    config: FileConfig | None,
    session: aiohttp.ClientSession,
    store: Store,
    intake: Intake,
) -> list[RiaPoller]:
    """One poller per [[account]], each counting its own requests against its own quota."""
    return _pollers(settings, config, session, store, intake)


def _pollers(
    settings: Settings,
    config: FileConfig | None,
    session: aiohttp.ClientSession,
    store: Store,
    intake: Intake,
    only: set[str] | None = None,
) -> list[RiaPoller]:
    """One poller per [[account]] (or per account named in `only`, on a reload), each
    counting its own requests against its own quota."""
    if config is None:
        return []
    made = [
        build_account_poller(a, settings, session, store, intake)
        for a in config.accounts
        if only is None or a.name in only
    ]
    for poller in made:
        log.info("poller: account %s, %d requests a month", poller.account, poller.monthly_quota)
    return made


__all__ = [
    "Changes",
    "announce",
    "changes",
    "log_changes",
    "pollers",
    "swap",
    "url_line",
    "webhook_secrets",
]
