"""Telegram's errors as the dispatcher reads them (DeliveryError: final or not, whose
fault), and the log line for a Telegram that cannot be reached (it names the host, the
TELEGRAM_API_URL and the proxy in use; never the token)."""

from __future__ import annotations

import os
import warnings
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from bot.delivery.channels.base import DeliveryError, telegram_target_problem

# httpx (under python-telegram-bot) reads these: a log line about an unreachable Telegram
# names the one in use, since a wrong or missing proxy is a common cause
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
NO_PHOTO_RIGHTS = "not enough rights to send photos"
# an edit refused because the message is too old to edit (48 h in groups) or was deleted
EDIT_GONE = ("message can't be edited", "message to edit not found")
NOT_MODIFIED = "message is not modified"


def retry_seconds(exc: RetryAfter) -> float:
    """RetryAfter.retry_after is an int in PTB 22 and a timedelta later; reading it as an int
    warns of that on every 429, so read it with the warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def maybe_posted(exc: TelegramError) -> bool:
    """Whether Telegram may have posted the message although the send failed: only when
    the request reached it and the answer was lost (a read timeout, a dropped connection).
    An error answer, or a connection never made, posted nothing."""
    cause = exc.__cause__
    if isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return False
    return isinstance(cause, httpx.HTTPError)


def transport_failed(exc: TelegramError) -> bool:
    """Whether the request never got an answer from Telegram (connect, timeout, proxy)."""
    return isinstance(exc.__cause__, httpx.TransportError)


def unreachable(api_url: str, why: str) -> str:
    """'cannot reach api.telegram.org (ConnectError: ...); TELEGRAM_API_URL is ...: ...'."""
    host = urlsplit(api_url).hostname or api_url
    proxy = next((name for name in PROXY_VARS if os.environ.get(name)), None)
    if proxy:
        where = f"{host} through the proxy in {proxy}"
        advice = f"check TELEGRAM_API_URL and {proxy}"
    else:
        where = host
        advice = "check TELEGRAM_API_URL, the network, or set HTTPS_PROXY if it needs a proxy"
    return f"cannot reach {where} ({why}); TELEGRAM_API_URL is {api_url}: {advice}"


def photo_refused(message: str) -> str | None:
    """What to change when Telegram refused a picture but would take text, else None."""
    low = message.lower()
    if NO_PHOTO_RIGHTS in low:
        return "allow the bot to send photos in the group's permissions, or make it an admin"
    if any(word in low for word in ("photo", "image", "file")):
        return "Telegram would not take the chart"
    return None


def delivery_error(exc: TelegramError, api_url: str, *, photo: bool = False) -> DeliveryError:
    """A Telegram error as DeliveryError, saying if it is final (and, for a photo,
    whether only the picture was refused)."""
    if isinstance(exc, RetryAfter):
        return DeliveryError(
            "Telegram: too many requests", retry_after=retry_seconds(exc), counted=False
        )
    if isinstance(exc, ChatMigrated):
        new_id = exc.new_chat_id
        return DeliveryError(
            f"Telegram: the group is now supergroup {new_id}; put {new_id} in "
            "TELEGRAM_CHAT_IDS instead",
            permanent=True,
            counted=False,
            target_problem=True,
            migrate_to=str(new_id),
        )
    if isinstance(exc, (Forbidden, InvalidToken)):  # the operator fixes these: the alerts wait
        return DeliveryError(
            f"Telegram: {exc.message}", permanent=True, counted=False, target_problem=True
        )
    if isinstance(exc, BadRequest):
        # chat not found, can't parse entities, too long: sending again will not help
        hint = photo_refused(exc.message) if photo else None
        if hint is not None:
            return DeliveryError(
                f"Telegram: {exc.message}: {hint}",
                permanent=True,
                counted=False,
                picture_refused=True,
            )
        return DeliveryError(
            f"Telegram: {exc.message}",
            permanent=True,
            counted=False,
            target_problem=telegram_target_problem(exc.message),
        )
    # NetworkError, or any other TelegramError
    if transport_failed(exc):
        why = exc.message or type(exc).__name__
        return DeliveryError(f"Telegram: {unreachable(api_url, why)}", counted=maybe_posted(exc))
    return DeliveryError(
        f"Telegram: {exc.message or type(exc).__name__}", counted=maybe_posted(exc)
    )
