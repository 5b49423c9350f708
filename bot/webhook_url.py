"""The RIA webhook's secret (from RIA_WEBHOOK_SECRET, or generated once and kept in the
database) and the URL the operator gives RIA."""

from __future__ import annotations

import logging
import secrets
import socket

from bot.config import Settings
from bot.logs import WEBHOOK_MASK
from storage import meta
from storage.db import Store

log = logging.getLogger(__name__)

MASK = WEBHOOK_MASK  # stands for the generated webhook secret after the start that made it


def masked_url(base: str) -> str:
    """The RIA webhook URL with its secret masked: the one spelling the service's start-up
    lines and `check` share (`check --show-webhook-url` prints it in full)."""
    return f"{base.rstrip('/')}/webhooks/ria/{MASK}"


async def webhook_secret(store: Store, settings: Settings) -> tuple[str, bool]:
    """The RIA webhook secret and whether it was generated (kept in the database)."""
    value, origin = await webhook_secret_origin(store, settings)
    return value, origin != "setting"


async def webhook_secret_origin(store: Store, settings: Settings) -> tuple[str, str]:
    """The RIA webhook secret and where it comes from: "setting" (RIA_WEBHOOK_SECRET),
    "created" (generated just now and kept in the database) or "stored" (generated before)."""
    if settings.ria_webhook_secret is not None:
        return settings.ria_webhook_secret.get_secret_value(), "setting"
    created: list[str] = []

    def make() -> str:
        created.append(secrets.token_urlsafe(24))
        return created[-1]

    value = await store.run(meta.get_or_create, "ria_webhook_secret", make)
    return value, "created" if created and created[0] == value else "stored"


def announce(s: Settings, secret: str, origin: str, port: int) -> None:
    """Print the URL to give RIA: in full only when its secret was made just now."""
    host = s.http_host if s.http_host not in ("0.0.0.0", "::", "") else _local_name()
    base = (s.public_url or f"http://{host}:{port}").rstrip("/")
    log.info("listening on http://%s:%d", s.http_host, port)
    # the one place a secret may be shown: to the operator, on stdout, once, when it is
    # made; on later starts stdout ends up in the container runtime's logs, so it is masked
    if origin == "created":
        print(f"RIA webhook URL: {base}/webhooks/ria/{secret}", flush=True)
        print(
            "  (shown once; `ria-calls-bot check --show-webhook-url` shows it again)",
            flush=True,
        )
    elif origin == "stored":
        print(f"RIA webhook URL: {masked_url(base)}", flush=True)
        print(
            "  (secret hidden; `ria-calls-bot check --show-webhook-url` shows it)",
            flush=True,
        )
    else:
        print(f"RIA webhook URL: {base}/webhooks/ria/<RIA_WEBHOOK_SECRET>", flush=True)
    if not s.public_url:
        print(
            "  (set PUBLIC_URL to the address RIA can reach, e.g. https://bot.example.com)",
            flush=True,
        )


def _local_name() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
