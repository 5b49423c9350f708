"""Putting the configuration file's router to work (issue 13), and SIGHUP's reload.

Kept out of app.py: the service calls `install` once at start and `reload` on SIGHUP. A
bad file on reload changes nothing (the old router stays) and the log says why.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.config import ConfigError, Settings
from bot.config_file import FileConfig, config_path, load, load_for
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.names import set_managers
from bot.hours import set_hours
from bot.logs import REDACT
from handlers.intake import Intake
from handlers.routing import route_fn
from storage.outbox import Target

log = logging.getLogger(__name__)

# the chats only a route sends to, per channel: their commands and presses are taken, scoped
# to their own calls (chats of TELEGRAM_CHAT_IDS / SLACK_CHANNEL_IDS see everything)
_routed: dict[str, frozenset[str]] = {}


def routed_chats(channel: str) -> frozenset[str]:
    """The chats of `channel` that the routing file sends alerts to (empty without a file)."""
    return _routed.get(channel, frozenset())


def routed_targets() -> list[Target]:
    """Every chat only a route sends to, as targets (each gets its own summary)."""
    return sorted(Target(ch, c) for ch, chats in _routed.items() for c in chats)


def install(
    config: FileConfig | None, settings: Settings, intake: Intake, dispatcher: Dispatcher
) -> None:
    """Route new calls by `config` (None: every alert to the env targets, as without a file)."""
    # names for the renderers (bot/delivery/names): empty without a file, numbers as before
    # (frozen Manager values: read-only attributes, which names' Protocol does not declare)
    managers: list[Any] = list(config.managers) if config is not None else []
    set_managers(managers)
    if config is None:
        # digest alerts wait for no opening (bot/hours): never held, as without a file
        set_hours(None, settings.tz)
        intake.route = None
        _routed.clear()
        return
    REDACT.add(config.secrets())
    router = config.router(settings)
    # digest alerts wait for their hours' opening: a route's own, else the global [hours]
    set_hours(config.hours, settings.tz, router.route_hours())
    defaults = set(router.default_targets)
    _routed.clear()
    for target in router.all_targets() - defaults:
        _routed[target.channel] = _routed.get(target.channel, frozenset()) | {target.id}
    intake.route = route_fn(router, intake.clock)
    # the dispatcher serves only the targets it knows: add the routes' (and keep the old
    # ones, so rows already queued for a target a reload dropped still go out)
    known = set(dispatcher.targets or ()) | router.all_targets()
    dispatcher.targets = frozenset(known)
    log.info(
        "routing: %s: %d route(s), %d manager(s), %d account(s)",
        config.path,
        len(config.routes),
        len(config.managers),
        len(config.accounts),
    )


def load_names(settings: Settings) -> str | None:
    """For the command line's reports (`summary`): the file's [[manager]] names, so they
    read like the chat's. A bad or missing file is no reason to refuse a report: numbers,
    as without a file, and the problem is returned for a note."""
    try:
        config = load_for(settings)
    except ConfigError as exc:
        return "; ".join(exc.lines)
    managers: list[Any] = list(config.managers) if config is not None else []
    set_managers(managers)
    return None


def reload(
    settings: Settings, intake: Intake, dispatcher: Dispatcher
) -> tuple[bool, FileConfig | None]:
    """SIGHUP: read the file again; on any problem keep the router in force. (whether it
    was taken, the configuration now in force: the caller also swaps the accounts)"""
    path = config_path(settings)
    try:
        config = load(path, settings) if path is not None else None
    except ConfigError as exc:
        log.error(
            "config reload failed, keeping the previous configuration: %s", "; ".join(exc.lines)
        )
        return False, None
    install(config, settings, intake, dispatcher)
    return True, config


def log_reloaded(settings: Settings) -> None:
    """The line that says a reload is complete: logged once the accounts are swapped too,
    so whoever waits for it sees every change already in force."""
    path = config_path(settings)
    log.info("config reloaded%s", f" from {path}" if path else ": no file, no routes")


__all__ = ["install", "load_names", "log_reloaded", "reload", "routed_chats", "routed_targets"]
