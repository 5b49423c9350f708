"""Logging set-up: text or JSON lines, with every secret redacted from every record.

Redaction happens in the formatter, after the message and any traceback are rendered, so a
secret inside an exception from a client library (a URL with `api_key=` in it, a bot token in
a Telegram URL) is caught as well as one in our own messages.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType

REDACTED = "***"
# the RIA webhook URL's secret, masked: the same in the service's start-up line, `check` and
# any redacted output (bot.webhook_url.masked_url), so an operator sees one spelling
WEBHOOK_MASK = "*" * 8
_RIA_PATH = re.compile(r"(/webhooks/ria/)[^/\s?'\"]+")
# Secret-looking parts of URLs, whatever their value: RIA's key and Telegram's bot path
_PATTERNS = [
    re.compile(r"(?i)(api_key=)[^&\s'\"]+"),
    re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+"),
    re.compile(r"(/webhooks/telegram/)[^/\s?'\"]+"),
    re.compile(r"(xox[abpr]-)[A-Za-z0-9-]+"),
    re.compile(r"(xapp-)[A-Za-z0-9-]+"),
    # Slack: a Socket Mode URL's ticket, and response_url / webhook paths (bearer URLs)
    re.compile(r"(ticket=)[^&\s'\"]+"),
    re.compile(r"(hooks\.slack\.com/)[^\s'\"]+"),
]


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        values = set()
        for secret in secrets:
            values.add(secret)
            # a bot token's secret half alone (a URL-encoded ":" would hide the whole token)
            bot_id, colon, rest = secret.partition(":")
            if colon and bot_id.isdigit():
                values.add(rest)
        # longest first, so a secret containing another is replaced whole
        self.secrets = sorted({*self.secrets, *(s for s in values if len(s) >= 4)}, key=len)[::-1]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(rf"\g<1>{REDACTED}", text)
        return _RIA_PATH.sub(rf"\g<1>{WEBHOOK_MASK}", text)


REDACT = Redactor()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return REDACT(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return REDACT(json.dumps(entry, ensure_ascii=False))


def setup(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    REDACT.add(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO (with the bot token in it); keep those quiet
    for noisy in ("httpx", "httpcore", "apscheduler", "aiohttp.access", "telegram.ext.Updater"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # Whatever Python would print to stderr by itself goes through the redacting handler
    # too: warnings, and exceptions nobody caught (in the main thread or another one).
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda args: _log_uncaught(
        args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback
    )


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("ria-calls-bot").critical("uncaught exception", exc_info=(kind, value, tb))
