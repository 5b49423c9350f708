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
    client = RiaClient(
        session,
        base_url=s.ria_api_url,
        api_key=s.ria_api_key.get_secret_value(),
        user_id=s.ria_user_id,
        timeout=timeout,
    )
    return RiaPoller(
        client,
        store,
        intake,
        tz=s.tz,
        interval_minutes=s.ria_poll_interval_minutes,
        monthly_quota=s.ria_monthly_quota,
        alert_max_age_s=s.alert_max_age_minutes * 60,
    )


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
    client = RiaClient(
        session,
        base_url=settings.ria_api_url,
        api_key=account.api_key.get_secret_value(),
        user_id=account.user_id,
        timeout=timeout,
    )
    return RiaPoller(
        client,
        store,
        intake,
        tz=settings.tz,
        interval_minutes=settings.ria_poll_interval_minutes,
        monthly_quota=account.monthly_quota,
        alert_max_age_s=settings.alert_max_age_minutes * 60,
        account=account.name,
    )
