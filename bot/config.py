"""Configuration from the environment and `.env`, validated once at start.

A wrong value stops the service with one line that names the variable and what it expects;
`ConfigError` carries those lines and the CLI prints them without a traceback.
"""

from __future__ import annotations

import re
from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.config_checks import database_problem, dotenv_problems, env_file_problem, listen_problem
from handlers.proxies import Network, networks
from handlers.ria.records import normalise_status
from storage.outbox import Target

_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")
_SLACK_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_URL_SECRET = re.compile(r"[A-Za-z0-9_-]{16,128}")  # a secret that is part of a URL path
# RIA's call statuses (its own page spells BUSY as BYSY; both are accepted)
RIA_STATUSES = ("ANSWER", "NOANSWER", "CANCEL", "BUSY", "FAILED", "CONGESTION")
_STATUS_LIST = "ANSWER, NOANSWER, CANCEL, BUSY (or BYSY), FAILED, CONGESTION"
# the weekly summary compares a week with the one before: both must still be stored
MIN_RETENTION_DAYS = 15


__all__ = ["ConfigError", "Settings", "database_problem", "listen_problem", "load_settings"]


class ConfigError(Exception):
    """Invalid configuration; `lines` are ready to print, one per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_path: str = "data/calls.db"
    timezone: str = "Europe/Kyiv"
    language: Literal["uk", "en"] = "uk"
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    public_url: str | None = None
    # proxies whose X-Forwarded-For is believed when a log line names a client's address
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ("127.0.0.1/8", "::1")
    # open HTTP connections at most; 0: from the open-file limit (see bot/http.py)
    http_max_connections: int = Field(0, ge=0)
    metrics_token: SecretStr | None = None  # opens /metrics to non-loopback clients

    ria_webhook_secret: SecretStr | None = None
    ria_api_key: SecretStr | None = None
    ria_user_id: str | None = None
    ria_api_url: str = "https://developers.ria.com"
    ria_poll_interval_minutes: float = Field(60, gt=0, le=24 * 60)
    ria_monthly_quota: int = Field(1000, ge=0)
    # polls spread RIA's 30 an hour over the hour; off: they may come in a row (as backfill
    # does), which fast-polling tests need at any minute of the hour
    ria_poll_spread: bool = True

    missed_statuses: Annotated[tuple[str, ...], NoDecode] = ("NOANSWER", "CANCEL", "BUSY")
    alert_max_age_minutes: float = Field(120, ge=0)
    # the team's callback promise: an alert still open this long after the call gets one
    # reminder (issue 12); 0: no reminders; decimals allowed (0.05 = 3 s, for tests)
    callback_within_minutes: float = Field(15, ge=0, le=7 * 24 * 60)

    telegram_bot_token: SecretStr | None = None
    telegram_chat_ids: Annotated[tuple[str, ...], NoDecode] = ()
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_secret: SecretStr | None = None

    slack_bot_token: SecretStr | None = None
    slack_channel_ids: Annotated[tuple[str, ...], NoDecode] = ()
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    summary_time: Annotated[time | None, NoDecode] = time(20, 0)
    summary_weekly: Annotated[bool, NoDecode] = True  # Monday 09:00 local, last Mon–Sun
    # days to keep calls and delivered messages; 0 keeps them for ever
    retention_days: int = Field(0, ge=0)
    # the optional routing file (issue 13, bot/config_file.py); unset: ria-calls-bot.toml
    # in the working directory if there is one
    config_file: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    # --- validators: each error message says what the variable expects -------------------

    @field_validator(
        "ria_webhook_secret",
        "ria_api_key",
        "ria_user_id",
        "public_url",
        "telegram_bot_token",
        "telegram_webhook_secret",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "metrics_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("ria_poll_spread", mode="before")
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        if isinstance(value, str):
            word = value.strip().lower()
            if word not in {"on", "off", "true", "false", "yes", "no", "1", "0"}:
                raise ValueError(f"expected on or off, got {value!r}")
            return word in {"on", "true", "yes", "1"}
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("language", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'"{value}" is not a time zone (e.g. Europe/Kyiv)') from None
        return value

    @field_validator("ria_api_url", "telegram_api_url", "slack_api_url", "public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f'"{value}" is not an http(s) URL')
        return value

    @field_validator("http_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 0 <= value <= 65535:
            raise ValueError(f'"{value}" is not a port (1-65535, or 0 for any free port)')
        return value

    @field_validator("ria_user_id")
    @classmethod
    def _user_id(cls, value: str | None) -> str | None:
        if value is not None and not value.strip().isdigit():
            raise ValueError(f'"{value}" is not a RIA user id (digits only)')
        return value.strip() if value else value

    @field_validator("ria_webhook_secret", "telegram_webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        # each is the only authentication of its webhook route: long enough not to be
        # guessed, and plain enough to sit in a URL path (Telegram allows 1-256 of these)
        if value is not None and not _URL_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("expects 16-128 characters of A-Z a-z 0-9 _ - (it is part of a URL)")
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _tg_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", value.get_secret_value()):
            raise ValueError("is not a bot token from @BotFather (expects 123456:ABC...)")
        return value

    @field_validator("slack_bot_token", "slack_app_token")
    @classmethod
    def _slack_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # a swapped bot and app token is the usual mistake: say which is which
        if value is None:
            return value
        if info.field_name == "slack_bot_token" and not value.get_secret_value().startswith(
            ("xoxb-", "xoxp-")
        ):
            raise ValueError("is not a Slack bot token (expects xoxb-...)")
        if info.field_name == "slack_app_token" and not value.get_secret_value().startswith(
            "xapp-"
        ):
            raise ValueError("is not a Slack app-level token (expects xapp-...)")
        return value

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        # the weekly summary compares a week with the week before (up to 14 days back), and
        # the poller re-reads yesterday and today: a shorter retention breaks both
        if 0 < value < MIN_RETENTION_DAYS:
            raise ValueError(
                f'"{value}" is too short: 0 (keep for ever) or at least {MIN_RETENTION_DAYS} '
                "days, as the weekly summary compares a week with the week before"
            )
        return value

    @field_validator("missed_statuses", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> tuple[str, ...]:
        # a typo here would silently turn every alert off: only RIA's own statuses pass
        statuses = tuple(dict.fromkeys(normalise_status(s) for s in _split(value)))
        if not statuses:
            raise ValueError(
                "is empty, so no call would ever alert; list the statuses that should, "
                f"from RIA's: {_STATUS_LIST} (default NOANSWER,CANCEL,BUSY)"
            )
        for status in statuses:
            if status not in RIA_STATUSES:
                raise ValueError(
                    f'"{status[:40]}" is not one of RIA\'s call statuses: {_STATUS_LIST}'
                )
        return statuses

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: Any) -> tuple[str, ...]:
        found = _split(value)
        networks(found)  # raises ValueError naming the bad entry
        return tuple(dict.fromkeys(found))

    @field_validator("telegram_chat_ids", mode="before")
    @classmethod
    def _chats(cls, value: Any) -> tuple[str, ...]:
        chats = _split(value)
        for chat in chats:
            if not _CHAT_ID.match(chat):
                raise ValueError(f'"{chat}" is not a chat id (e.g. -1001234567890 or @channel)')
        return tuple(dict.fromkeys(chats))

    @field_validator("slack_channel_ids", mode="before")
    @classmethod
    def _channels(cls, value: Any) -> tuple[str, ...]:
        channels = _split(value)
        for channel in channels:
            if not _SLACK_CHANNEL.match(channel):
                raise ValueError(f'"{channel}" is not a Slack channel id (e.g. C0123456789)')
        return tuple(dict.fromkeys(channels))

    @field_validator("summary_time", mode="before")
    @classmethod
    def _summary_time(cls, value: Any) -> time | None:
        if value is None or isinstance(value, time):
            return value
        text = str(value).strip().lower()
        if text in ("", "off", "none", "false", "0"):
            return None
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise ValueError(f'"{value}" is not a time of day (HH:MM, or empty for off)')
        return time(int(match[1]), int(match[2]))

    @field_validator("summary_weekly", mode="before")
    @classmethod
    def _summary_weekly(cls, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("on", "true", "yes", "1"):
            return True
        if text in ("off", "false", "no", "0", "", "none"):
            return False
        raise ValueError(f'"{value}" is not on or off')

    # defined last, so it runs before every other check of a value
    @field_validator("*", mode="before")
    @classmethod
    def _no_quotes_or_comments(cls, value: Any) -> Any:
        if isinstance(value, str):
            problem = env_file_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    # --- derived ------------------------------------------------------------------------

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def trusted_networks(self) -> tuple[Network, ...]:
        return networks(self.trusted_proxies)

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_bot_token is not None

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def polling_enabled(self) -> bool:
        return self.ria_api_key is not None and self.ria_user_id is not None

    @property
    def telegram_webhook_mode(self) -> bool:
        return self.public_url is not None and self.telegram_webhook_secret is not None

    def alert_targets(self) -> list[Target]:
        """Every place a missed-call alert goes; the console when no chat is configured."""
        targets: list[Target] = []
        if self.telegram_enabled:
            targets += [Target("telegram", chat) for chat in self.telegram_chat_ids]
        if self.slack_enabled:
            targets += [Target("slack", channel) for channel in self.slack_channel_ids]
        return targets or [Target("console", "stdout")]

    def secrets(self) -> list[str]:
        """Every secret value, for the log redaction filter."""
        values = [
            self.ria_webhook_secret,
            self.ria_api_key,
            self.telegram_bot_token,
            self.telegram_webhook_secret,
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.metrics_token,
        ]
        return [v.get_secret_value() for v in values if v is not None]

    def problems(self) -> list[str]:
        """Combinations that are wrong although every value is fine on its own."""
        lines = []
        if (self.ria_api_key is None) != (self.ria_user_id is None):
            lines.append("RIA_API_KEY and RIA_USER_ID: set both to turn polling on, or neither")
        if self.telegram_enabled and not self.telegram_chat_ids:
            lines.append("TELEGRAM_CHAT_IDS: required when TELEGRAM_BOT_TOKEN is set")
        if self.slack_enabled and not self.slack_channel_ids:
            lines.append("SLACK_CHANNEL_IDS: required when SLACK_BOT_TOKEN is set")
        if not self.slack_enabled and (self.slack_signing_secret or self.slack_app_token):
            lines.append("SLACK_SIGNING_SECRET / SLACK_APP_TOKEN: need SLACK_BOT_TOKEN too")
        if self.telegram_webhook_secret is not None and self.public_url is None:
            lines.append("TELEGRAM_WEBHOOK_SECRET: needs PUBLIC_URL too (webhook mode)")
        return lines


def _variable(loc: tuple[Any, ...]) -> str:
    return str(loc[0]).upper() if loc else "configuration"


def _message(error: dict[str, Any]) -> str:
    msg = str(error.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    if error.get("type") in {"int_parsing", "float_parsing"}:
        return f'"{error.get("input")}" is not a number'
    if error.get("type") == "literal_error":
        allowed = msg.split("Input should be ")[-1]
        return f'"{error.get("input")}" is not one of the allowed values ({allowed})'
    return msg


def load_settings(**overrides: Any) -> Settings:
    """Read and validate; raises ConfigError with one readable line per problem."""
    env_file = overrides.get("_env_file", Settings.model_config.get("env_file"))
    file_problems = (
        dotenv_problems(Path(env_file), set(Settings.model_fields))
        if isinstance(env_file, str | Path)
        else []
    )
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        lines = [f"{_variable(e['loc'])}: {_message(e)}" for e in exc.errors()]  # type: ignore[arg-type]
        raise ConfigError(list(dict.fromkeys(file_problems + lines))) from None
    problems = file_problems + settings.problems()
    if problems:
        raise ConfigError(problems)
    return settings
