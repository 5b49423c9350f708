"""The one place a RIA client and poller are built from the settings (the service, `check`
and `backfill` all use it, so a new option or a fix reaches all three)."""

from __future__ import annotations

from typing import Protocol
from zoneinfo import ZoneInfo

import aiohttp
from pydantic import SecretStr

from handlers.intake import Intake
from handlers.ria.api import RiaClient
from handlers.ria.poller import RiaPoller
from storage.db import Store


class PollerSettings(Protocol):
    """What the factory reads from the settings (bot.config.Settings has it all; handlers
    must not import bot)."""

    ria_api_url: str
    ria_api_key: SecretStr | None
    ria_user_id: str | None
    ria_poll_interval_minutes: float
    ria_poll_spread: bool
    ria_monthly_quota: int
    alert_max_age_minutes: float

    @property
    def tz(self) -> ZoneInfo: ...


def build_poller(
    settings: PollerSettings,
    session: aiohttp.ClientSession,
    store: Store,
    intake: Intake,
    *,
    timeout: float = 30.0,
) -> RiaPoller | None:
    """A poller, or None when RIA_API_KEY / RIA_USER_ID are not both set."""
    s = settings
    if s.ria_api_key is None or s.ria_user_id is None:
        return None
    key = (s.ria_api_key, s.ria_user_id, s.ria_monthly_quota)
    return _poller(s, session, store, intake, key, account=None, timeout=timeout)


class AccountLike(Protocol):
    """An [[account]] of the configuration file (handlers.routing.Account)."""

    @property
    def name(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def api_key(self) -> SecretStr: ...
    @property
    def monthly_quota(self) -> int: ...


def build_account_poller(
    account: AccountLike,
    settings: PollerSettings,
    session: aiohttp.ClientSession,
    store: Store,
    intake: Intake,
    *,
    timeout: float = 30.0,
) -> RiaPoller:
    """The poller of one [[account]] (issue 13): its own key, user id and monthly quota
    (its requests counted apart), and its calls stored as the account's."""
    key = (account.api_key, account.user_id, account.monthly_quota)
    return _poller(settings, session, store, intake, key, account=account.name, timeout=timeout)


def _poller(
    settings: PollerSettings,
    session: aiohttp.ClientSession,
    store: Store,
    intake: Intake,
    key: tuple[SecretStr, str, int],
    *,
    account: str | None,
    timeout: float,
) -> RiaPoller:
    """The one way a poller is built: `key` is (API key, user id, monthly quota) of the
    RIA_* account (`account` None) or of an [[account]]; the rest is shared."""
    api_key, user_id, monthly_quota = key
    client = RiaClient(
        session,
        base_url=settings.ria_api_url,
        api_key=api_key.get_secret_value(),
        user_id=user_id,
        timeout=timeout,
    )
    return RiaPoller(
        client,
        store,
        intake,
        tz=settings.tz,
        interval_minutes=settings.ria_poll_interval_minutes,
        spread_hour=settings.ria_poll_spread,
        monthly_quota=monthly_quota,
        alert_max_age_s=settings.alert_max_age_minutes * 60,
        account=account,
    )
