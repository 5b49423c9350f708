"""The optional configuration file (TOML, issue 13): accounts, managers, routes, hours.

Every problem stops `run` and `check` with one line: `FILE:LINE: KEY: what is wrong`.
tomllib gives no line numbers for keys, so the line is found by scanning the text for the
table and key (see _Locator). Secrets may be written `env:NAME`, so the file can be committed.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import SecretStr

from bot.config import _CHAT_ID, _SLACK_CHANNEL, _URL_SECRET, RIA_STATUSES, ConfigError, Settings
from bot.config_hours import Bad as _Bad
from bot.config_hours import Key
from bot.config_hours import parse_hours as _hours
from bot.config_hours import strings as _strings
from bot.route_hours import HoursRouter
from handlers.ria.records import normalise_status, phone_forms
from handlers.routing import MATCH_KEYS, Account, Hours, Manager, Route

DEFAULT_NAME = "ria-calls-bot.toml"
TOP_KEYS = ("hours", "account", "manager", "route")
ACCOUNT_KEYS = ("name", "user_id", "api_key", "webhook_secret", "monthly_quota")
MANAGER_KEYS = ("name", "phones", "telegram", "slack", "personal")
ROUTE_KEYS = ("match", "telegram", "slack", "continue", "hours")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{6,}$")


@dataclass
class FileConfig:
    path: Path
    accounts: list[Account] = field(default_factory=list)
    managers: list[Manager] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    hours: Hours | None = None

    def router(self, settings: Settings) -> HoursRouter:
        # rows of a route with hours of its own name them (delivery holds and reminds by
        # them: bot/route_hours)
        return HoursRouter(
            routes=self.routes,
            default_targets=settings.alert_targets(),
            managers=self.managers,
            hours=self.hours,
            tz=settings.tz,
            accounts=self.accounts,
        )

    def secrets(self) -> list[str]:
        return [s.get_secret_value() for a in self.accounts for s in (a.api_key, a.webhook_secret)]


def config_path(settings: Settings) -> Path | None:
    """CONFIG_FILE if set (it must exist), else ria-calls-bot.toml in the working directory
    if there is one, else None: no file, everything as without routing."""
    given = (settings.config_file or "").strip()
    if given:
        return Path(given)
    default = Path(DEFAULT_NAME)
    return default if default.is_file() else None


def load_for(settings: Settings) -> FileConfig | None:
    path = config_path(settings)
    return None if path is None else load(path, settings)


def load(path: Path, settings: Settings) -> FileConfig:
    """Read and validate the file; raises ConfigError with one line naming file, line, key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"CONFIG_FILE: {path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"CONFIG_FILE: {path}: cannot read it: {exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        line = found[1] if found else "1"
        what = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg) or "not valid TOML"
        raise ConfigError([f"{path}:{line}: syntax: {what}"]) from None
    locator = _Locator(text)
    try:
        return _parse(path, data, settings, locator)
    except _Bad as bad:
        line = locator.line_of(bad.key)
        raise ConfigError([f"{path}:{line}: {_key_name(bad.key)}: {bad.what}"]) from None


def _key_name(key: Key) -> str:
    out = ""
    for part in key:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "file"


# --- finding a key's line -------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?")


class _Locator:
    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        # (line index, name, is array) of every table header
        self.headers: list[tuple[int, str, bool]] = []
        for i, raw in enumerate(self.lines):
            m = _HEADER.match(raw)
            if m and not raw.lstrip().startswith("#"):
                self.headers.append((i, m[2].replace(" ", "").replace('"', ""), m[1] == "[["))

    def line_of(self, key: Key) -> int:
        start, end = 0, len(self.lines)
        rest = list(key)
        first_header = self.headers[0][0] if self.headers else end
        if rest and isinstance(rest[0], str) and rest[0] in TOP_KEYS:
            name = rest.pop(0)
            index = rest.pop(0) if rest and isinstance(rest[0], int) else 0
            seen = -1
            for n, (i, header, _array) in enumerate(self.headers):
                if header == name:
                    seen += 1
                    if seen == index:
                        start = i
                        # the section runs to the next header that is not its own subtable
                        end = next(
                            (
                                j
                                for j, h, _ in self.headers[n + 1 :]
                                if not h.startswith(name + ".")
                            ),
                            len(self.lines),
                        )
                        break
            else:
                return 1
        elif (
            rest
            and isinstance(rest[0], str)
            and (found := [i for i, h, _ in self.headers if h.split(".")[0] == rest[0]])
        ):
            return found[0] + 1  # an unknown table: its header
        else:
            end = first_header
        at = start
        for part in rest:
            if isinstance(part, int):
                continue
            pattern = re.compile(
                rf"(^|[\s{{,.]){re.escape(part)}\s*(=|\])|^\s*\[[^\]]*\.{re.escape(part)}\s*\]"
            )
            for i in range(at, end):
                text = self.lines[i].split("#", 1)[0]
                if pattern.search(text):
                    at = i
                    break
        return at + 1


# --- the sections ---------------------------------------------------------------------------


def _parse(path: Path, data: Mapping[str, Any], settings: Settings, loc: _Locator) -> FileConfig:
    _only(data, TOP_KEYS, ())
    cfg = FileConfig(path)
    if "hours" in data:
        cfg.hours = _hours(_table(data["hours"], ("hours",)), ("hours",))
    for i, raw in enumerate(_array(data.get("account", []), ("account",))):
        cfg.accounts.append(_account(_table(raw, ("account", i)), ("account", i), cfg.accounts))
    for i, raw in enumerate(_array(data.get("manager", []), ("manager",))):
        cfg.managers.append(_manager(_table(raw, ("manager", i)), ("manager", i), cfg.managers))
        if cfg.managers[-1].personal and not settings.telegram_enabled:
            raise _Bad(
                ("manager", i, "personal"), "needs TELEGRAM_BOT_TOKEN (the copy goes by Telegram)"
            )
    for i, raw in enumerate(_array(data.get("route", []), ("route",))):
        key: Key = ("route", i)
        route = _route(_table(raw, key), key, cfg, settings, loc.line_of(key))
        cfg.routes.append(route)
    return cfg


def _only(table: Mapping[str, Any], allowed: tuple[str, ...], key: Key) -> None:
    for name in table:
        if name not in allowed:
            raise _Bad((*key, name), f"unknown key (expected one of: {', '.join(allowed)})")


def _table(value: Any, key: Key) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(key, "expects a table")
    return value


def _array(value: Any, key: Key) -> list[Any]:
    if not isinstance(value, list):
        raise _Bad(key, f"expects [[{key[-1]}]] tables")
    return value


def _name(table: Mapping[str, Any], key: Key, taken: list[str]) -> str:
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _Bad((*key, "name"), "is required (a non-empty string)")
    if name in taken:
        raise _Bad((*key, "name"), f'"{name}" is used twice')
    return name


def _secret(value: Any, key: Key) -> SecretStr:
    if not isinstance(value, str) or not value.strip():
        raise _Bad(key, 'is required (the value, or "env:NAME" to read it from the environment)')
    if value.startswith("env:"):
        name = value[4:].strip()
        found = os.environ.get(name) or dotenv_values(".env").get(name) if name else None
        if not found:
            raise _Bad(key, f"env:{name}: the environment variable {name or '(none)'} is not set")
        return SecretStr(found.strip())
    return SecretStr(value)


def _account(t: Mapping[str, Any], key: Key, before: list[Account]) -> Account:
    _only(t, ACCOUNT_KEYS, key)
    name = _name(t, key, [a.name for a in before])
    user_id = t.get("user_id")
    if isinstance(user_id, bool) or not str(user_id or "").strip().isdigit():
        raise _Bad((*key, "user_id"), f'"{user_id}" is not a RIA user id (digits only)')
    api_key = _secret(t.get("api_key"), (*key, "api_key"))
    secret = _secret(t.get("webhook_secret"), (*key, "webhook_secret"))
    if not _URL_SECRET.fullmatch(secret.get_secret_value()):
        raise _Bad(
            (*key, "webhook_secret"),
            "expects 16-128 characters of A-Z a-z 0-9 _ - (it is part of a URL)",
        )
    if any(a.webhook_secret == secret for a in before):
        raise _Bad((*key, "webhook_secret"), "is the same as another account's")
    quota = t.get("monthly_quota", 1000)
    if isinstance(quota, bool) or not isinstance(quota, int) or quota < 0:
        raise _Bad((*key, "monthly_quota"), f'"{quota}" is not a number of requests (0 or more)')
    return Account(name, str(user_id).strip(), api_key, secret, quota)


def _manager(t: Mapping[str, Any], key: Key, before: list[Manager]) -> Manager:
    _only(t, MANAGER_KEYS, key)
    name = _name(t, key, [m.name for m in before])
    phones = set()
    for phone in _strings(t.get("phones"), (*key, "phones")):
        forms = phone_forms(phone)
        if forms is None or not any(c.isdigit() for c in phone):
            raise _Bad((*key, "phones"), f'"{phone}" is not a phone number (e.g. 0731375686)')
        for other in before:
            if forms[0] in other.phones:
                raise _Bad((*key, "phones"), f'"{phone}" is already {other.name}\'s')
        phones.add(forms[0])
    telegram = t.get("telegram")
    if telegram is not None and (
        isinstance(telegram, bool) or not isinstance(telegram, int) or telegram <= 0
    ):
        raise _Bad(
            (*key, "telegram"), f'"{telegram}" is not a Telegram user id (a positive number)'
        )
    slack = t.get("slack")
    if slack is not None and (not isinstance(slack, str) or not _SLACK_USER.match(slack)):
        raise _Bad((*key, "slack"), f'"{slack}" is not a Slack user id (e.g. U0123ABCD)')
    personal = t.get("personal", False)
    if not isinstance(personal, bool):
        raise _Bad((*key, "personal"), "expects true or false")
    if personal and telegram is None:
        raise _Bad((*key, "personal"), "needs telegram = <user id> (the private chat to send to)")
    return Manager(name, frozenset(phones), telegram, slack, personal)


def _route(t: Mapping[str, Any], key: Key, cfg: FileConfig, settings: Settings, line: int) -> Route:
    _only(t, ROUTE_KEYS, key)
    match = _match(_table(t.get("match", {}), (*key, "match")), (*key, "match"), cfg)
    telegram: list[tuple[str, int | None]] = []
    for spec in _strings(t["telegram"], (*key, "telegram")) if "telegram" in t else ():
        chat, _, topic = spec.partition("/")
        if not _CHAT_ID.match(chat):
            raise _Bad(
                (*key, "telegram"),
                f'"{spec}" is not a chat id (e.g. -1001234567890 or -1001234567890/42)',
            )
        if topic and not (topic.isdigit() and int(topic) > 0):
            raise _Bad(
                (*key, "telegram"), f'"{spec}": "{topic}" is not a topic id (a positive number)'
            )
        telegram.append((chat, int(topic) if topic else None))
    slack = _strings(t["slack"], (*key, "slack")) if "slack" in t else ()
    for channel in slack:
        if not _SLACK_CHANNEL.match(channel):
            raise _Bad((*key, "slack"), f'"{channel}" is not a Slack channel id (e.g. C0123456789)')
    if not telegram and not slack:
        raise _Bad(key, "sends nowhere: give telegram = [...] and/or slack = [...]")
    if telegram and not settings.telegram_enabled:
        raise _Bad((*key, "telegram"), "needs TELEGRAM_BOT_TOKEN (Telegram is not configured)")
    if slack and not settings.slack_enabled:
        raise _Bad((*key, "slack"), "needs SLACK_BOT_TOKEN (Slack is not configured)")
    cont = t.get("continue", False)
    if not isinstance(cont, bool):
        raise _Bad((*key, "continue"), "expects true or false")
    hours_value = t.get("hours", "inherit")
    hours = None
    if hours_value != "inherit":
        if not isinstance(hours_value, dict):
            raise _Bad((*key, "hours"), 'expects "inherit" or a table like [hours]')
        hours = _hours(hours_value, (*key, "hours"))
    for before in cfg.routes:
        if not before.match and not before.continue_:
            raise _Bad(
                key,
                f"can never match: route {before.index} (line {before.line}) above it takes "
                "every call and does not continue",
            )
    return Route(len(cfg.routes) + 1, line, match, tuple(telegram), slack, cont, hours)


def _match(t: Mapping[str, Any], key: Key, cfg: FileConfig) -> dict[str, tuple[str, ...]]:
    _only(t, MATCH_KEYS, key)
    match: dict[str, tuple[str, ...]] = {}
    for name in MATCH_KEYS:
        if name not in t:
            continue
        values = _strings(t[name], (*key, name))
        for value in values:
            problem = _never(name, value, cfg)
            if problem:
                raise _Bad((*key, name), f"can never match: {problem}")
        match[name] = values
    return match


def _never(name: str, value: str, cfg: FileConfig) -> str | None:
    if name == "account":
        names = [a.name for a in cfg.accounts]
        if value not in names:
            known = ", ".join(names) if names else "there is no [[account]] (declare one)"
            return f'"{value}" is not an account ({known})'
    if name == "manager":
        names = [m.name for m in cfg.managers]
        if value not in names:
            known = ", ".join(names) if names else "there is no [[manager]] (declare one)"
            return f'"{value}" is not a manager ({known})'
    if name == "status" and normalise_status(value) not in RIA_STATUSES:
        return f'"{value}" is not one of RIA\'s call statuses ({", ".join(RIA_STATUSES)})'
    if name == "tracking_phone" and phone_forms(value) is None:
        return f'"{value}" is not a phone number'
    return None
