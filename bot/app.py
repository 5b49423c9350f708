"""Wiring and lifecycle: one process, one event loop, one HTTP server, one writer thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import accounts, i18n
from bot.config import ConfigError, Settings
from bot.config_checks import database_problem, listen_problem
from bot.config_file import FileConfig
from bot.delivery import render
from bot.delivery.channels.base import Channel
from bot.delivery.channels.console import ConsoleChannel
from bot.delivery.channels.slack import SlackChannel, build_client
from bot.delivery.channels.slack import message as slack_message
from bot.delivery.channels.telegram import TelegramChannel, build_application
from bot.delivery.dispatcher import Dispatcher
from bot.http import HttpServer
from bot.logs import REDACT
from bot.reminders import Reminders
from bot.routing_setup import install as install_routing
from bot.routing_setup import reload as reload_routing
from bot.routing_setup import routed_chats, routed_targets
from bot.summary.schedule import SummaryScheduler
from bot.webhook_url import announce, webhook_secret_origin
from handlers.chat import commands
from handlers.chat.callback import Callbacks
from handlers.chat.slack import register as register_slack
from handlers.chat.slack import register_callbacks as slack_callbacks
from handlers.chat.telegram import COMMANDS, register, register_callbacks
from handlers.health import Health
from handlers.intake import Intake
from handlers.metrics import MetricsEndpoint
from handlers.ria.factory import build_poller
from handlers.ria.poller import RiaPoller
from handlers.ria.webhook import RiaWebhook
from storage import retention
from storage.db import Store

log = logging.getLogger(__name__)

STOP_FLUSH_S = 2.5  # of the 5 s a container runtime waits after SIGTERM
STOP_S = 4.0  # the whole graceful stop, however slow Telegram or Slack are to answer
STOP_HARD_S = 4.7  # ...and if it still hangs, leave anyway: everything is in the database


def make_channels(settings: Settings) -> dict[str, Channel]:
    # the console writes the summary's chart next to the database
    console = ConsoleChannel(image_dir=Path(settings.database_path).parent)
    channels: dict[str, Channel] = {"console": console}
    if settings.telegram_bot_token is not None:
        webhook_url = None
        secret = None
        if settings.telegram_webhook_mode:
            assert settings.public_url and settings.telegram_webhook_secret
            secret = settings.telegram_webhook_secret.get_secret_value()
            webhook_url = f"{settings.public_url.rstrip('/')}/webhooks/telegram/{secret}"
        application = build_application(
            settings.telegram_bot_token.get_secret_value(),
            settings.telegram_api_url,
            webhook_mode=settings.telegram_webhook_mode,
        )
        channels["telegram"] = TelegramChannel(
            application,
            commands=[
                (c, i18n.t(settings.language, f"command_{c}")) for c in COMMANDS if c != "start"
            ],
            webhook_url=webhook_url,
            webhook_secret=secret,
        )
    if settings.slack_bot_token is not None:
        channels["slack"] = SlackChannel(
            build_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url),
            signing_secret=_secret(settings.slack_signing_secret),
            app_token=_secret(settings.slack_app_token),
        )
    return channels


def _secret(value: Any) -> str | None:
    return None if value is None else value.get_secret_value()


@dataclass
class Service:
    settings: Settings
    store: Store = field(init=False)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    config: FileConfig | None = None  # the routing file (issue 13); None: no file

    def __post_init__(self) -> None:
        self.store = Store(self.settings.database_path)
        # set by start(); shutdown() closes whatever a failed start got as far as
        self.http: HttpServer | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.http_session: aiohttp.ClientSession | None = None
        self.dispatcher: Dispatcher | None = None
        self.channels: dict[str, Channel] = {}
        self.summaries: SummaryScheduler | None = None

    async def answer(
        self, command: str, argument: str, scope: tuple[str, str] | None = None
    ) -> commands.Reply:
        # scope: None in a chat of TELEGRAM_CHAT_IDS / SLACK_CHANNEL_IDS (every call), else
        # (channel, chat): a route's chat sees the calls routed to it (issue 13)
        return await commands.answer(
            command,
            argument,
            store=self.store,
            tz=self.settings.tz,
            callback_within_s=self.settings.callback_within_minutes * 60,
            scope=scope,
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        # SIGHUP re-reads the routing file; a bad one keeps the old routes (issue 13)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload)
        try:
            await self.start()
        except ConfigError as exc:
            # a setting in disguise (port in use, database path): said like any config
            # error, in one line, after a quiet clean-up (no "stopped": it never started)
            await self.shutdown(quiet=True)
            for line in exc.lines:
                print(f"config error: {line}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        try:
            await self.stopping.wait()
            log.info("stopping")
        finally:
            await self.shutdown()

    def _on_reload(self) -> None:
        if self.dispatcher is not None and hasattr(self, "intake"):
            reload_routing(self.settings, self.intake, self.dispatcher)

    def _on_signal(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        # the last resort, should a library ignore its timeouts: every call and alert is
        # already committed, so leaving without closing loses nothing
        timer = threading.Timer(STOP_HARD_S, _force_exit)
        timer.daemon = True
        timer.start()

    async def start(self) -> None:
        s = self.settings
        try:
            await self.store.open()
            secret, origin = await webhook_secret_origin(self.store, s)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError([database_problem(s.database_path, exc)]) from None
        REDACT.add([secret])

        self.channels = make_channels(s)
        self.dispatcher = Dispatcher(
            self.store, self.channels, lang=s.language, tz=s.tz, targets=s.alert_targets()
        )
        self.intake = Intake(
            self.store,
            targets=s.alert_targets(),
            missed_statuses=s.missed_statuses,
            on_alerts=self.dispatcher.submit,
        )
        install_routing(self.config, s, self.intake, self.dispatcher)
        self.http_session = session = aiohttp.ClientSession()
        self.poller = self._make_poller(session)
        # the [[account]]s' pollers (issue 13), each on its own budget; none without a file
        self.account_pollers = accounts.pollers(s, self.config, session, self.store, self.intake)

        self.http = HttpServer(max_connections=s.http_max_connections, trusted=s.trusted_networks)
        app = self.http.app
        app.add_routes(
            RiaWebhook(
                self.store,
                self.intake,
                secret=secret,
                tz=s.tz,
                trusted=s.trusted_networks,
                accounts=accounts.webhook_secrets(self.config),
            ).routes()
        )
        health = Health(
            self.store,
            storage_error=lambda: self.intake.storage_error,
            poller=self.poller.status if self.poller else (lambda: {"enabled": False}),
            channels=lambda: {name: ch.status() for name, ch in self.channels.items()},
            delivery=self.dispatcher.status,
            metrics=MetricsEndpoint(
                self.store,
                token=_secret(s.metrics_token),
                trusted=s.trusted_networks,
                tz=s.tz,
                monthly_quota=s.ria_monthly_quota if self.poller else None,
            ),
        )
        app.add_routes(health.routes())
        app.cleanup_ctx.append(health.keep_state)  # what `ria-calls-bot status` reads
        # presses of "✅ Called back" (issue 12): edits go to the outbox like alerts
        self.callbacks = Callbacks(
            self.store, lang=s.language, tz=s.tz, submit=self.dispatcher.submit
        )
        telegram = self.channels.get("telegram")
        if isinstance(telegram, TelegramChannel):
            register(
                telegram.app,
                chat_ids=s.telegram_chat_ids,
                answer=self.answer,
                render=lambda reply: render.reply(reply, "html", s.language, s.tz),
                refusal=i18n.t(s.language, "refusal"),
                send=telegram.send_now,
                routed=lambda: routed_chats("telegram"),
            )
            register_callbacks(
                telegram.app,
                chat_ids=s.telegram_chat_ids,
                callbacks=self.callbacks,
                routed=lambda: routed_chats("telegram"),
            )
            if s.telegram_webhook_mode:
                app.add_routes(telegram.routes())
        slack = self.channels.get("slack")
        if isinstance(slack, SlackChannel):
            self._register_slack(slack, app)
        try:
            port = await self.http.start(s.http_host, s.http_port)
        except OSError as exc:
            raise ConfigError([listen_problem(s.http_host, s.http_port, exc)]) from None
        announce(s, secret, origin, port)
        accounts.announce(s, self.config, port)

        await self.dispatcher.start()
        if isinstance(telegram, TelegramChannel):
            telegram.start()
        if isinstance(slack, SlackChannel):
            slack.start()
        self.scheduler = AsyncIOScheduler(timezone=s.tz)
        if self.poller is not None:
            self.poller.warn_if_quota_too_small()
            self.scheduler.add_job(
                self._poll,
                "interval",
                minutes=s.ria_poll_interval_minutes,
                id="poll",
                next_run_time=_now(s),
                max_instances=1,
                coalesce=True,
            )
        for poller in self.account_pollers:
            poller.warn_if_quota_too_small()
            self.scheduler.add_job(
                self._poll_one,
                "interval",
                args=[poller],
                minutes=s.ria_poll_interval_minutes,
                id=f"poll:{poller.account}",
                next_run_time=_now(s),
                max_instances=1,
                coalesce=True,
            )
        self.summaries = SummaryScheduler.from_settings(
            s, self.store, submit=self.dispatcher.submit, poller=self.poller, routed=routed_targets
        )
        self.summaries.schedule(self.scheduler)
        Reminders(
            self.store,
            submit=self.dispatcher.submit,
            within_s=s.callback_within_minutes * 60,
            alert_max_age_s=s.alert_max_age_minutes * 60,
        ).schedule(self.scheduler, _now(s))
        # daily, and once at start (a service restarted every night would otherwise never
        # get to it); rejected payloads expire even when calls are kept for ever
        self.scheduler.add_job(
            self._purge,
            "interval",
            hours=24,
            id="retention",
            next_run_time=_now(s),
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.start()
        log.info(
            "ready: %d alert target(s): %s",
            len(s.alert_targets()),
            ", ".join(map(str, s.alert_targets())),
        )

    def _register_slack(self, slack: SlackChannel, app: web.Application) -> None:
        s = self.settings
        register_slack(
            slack.app,
            channel_ids=s.slack_channel_ids,
            answer=self.answer,
            render=lambda reply: render.reply(reply, "mrkdwn", s.language, s.tz),
            message=slack_message,
            refusal=i18n.t(s.language, "refusal"),
            send=slack.send_now,
            routed=lambda: routed_chats("slack"),
        )
        slack_callbacks(
            slack.app,
            channel_ids=s.slack_channel_ids,
            callbacks=self.callbacks,
            routed=lambda: routed_chats("slack"),
        )
        if s.slack_signing_secret is not None:
            app.add_routes(slack.routes())
        if s.slack_signing_secret is None and s.slack_app_token is None:
            log.info(
                "slack: commands are off (set SLACK_SIGNING_SECRET for HTTP mode or "
                "SLACK_APP_TOKEN for Socket Mode); alerts go out"
            )

    async def _purge(self) -> None:
        total: Counter[str] = Counter()
        try:
            while True:
                done = await self.store.run(
                    retention.purge_step,
                    now=time.time(),
                    retention_days=self.settings.retention_days,
                )
                total.update(done)
                if not any(done.values()):
                    break
                await asyncio.sleep(0.05)  # webhooks get the writer between chunks
        except asyncio.CancelledError:
            return  # stopping: what is left goes at the next run
        except Exception as exc:
            log.error("retention: purge failed, next try tomorrow: %s", exc)
        if any(total.values()):
            log.info(
                "retention: deleted %d call(s), %d delivered message(s), %d rejected payload(s)",
                total["calls"],
                total["outbox"],
                total["rejected_payloads"],
            )

    def _make_poller(self, session: aiohttp.ClientSession) -> RiaPoller | None:
        poller = build_poller(self.settings, session, self.store, self.intake)
        if poller is None:
            log.info(
                "RIA polling is off (set RIA_API_KEY and RIA_USER_ID to turn it on); "
                "the webhook works without it"
            )
        return poller

    async def _poll(self) -> None:
        assert self.poller is not None
        await self._poll_one(self.poller)

    async def _poll_one(self, poller: RiaPoller) -> None:
        # retries after a transient failure are chained inside, ending before the next poll
        with contextlib.suppress(asyncio.CancelledError):  # stopping: the next start polls
            await poller.poll_and_retry()

    async def shutdown(self, quiet: bool = False) -> None:
        """Stop in order, within STOP_S whatever the platforms do (each step gets what is
        left); also after a start that failed half-way (port in use, say: `quiet`, as it
        never started)."""
        deadline = time.monotonic() + STOP_S

        def left(at_most: float = STOP_S) -> float:
            return max(min(deadline - time.monotonic(), at_most), 0.0)

        # stop taking requests first; a webhook already in progress still gets its answer
        if self.http is not None:
            await _bounded(self.http.stop(), left(1.5), "http server")
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.summaries is not None:  # its background poll uses the session and database
            await _bounded(self.summaries.close(), left(1.0), "summary reconciliation")
        if self.http_session is not None:
            await _bounded(self.http_session.close(), left(), "http client")
        if self.dispatcher is None:
            await self.store.close()
            return
        telegram = self.channels.get("telegram")
        if isinstance(telegram, TelegramChannel) and telegram.app.updater is not None:
            if telegram.app.updater.running:
                await _bounded(telegram.app.updater.stop(), left(1.0), "telegram updates")
        # keep a second for closing: sends still in flight are simply not confirmed, and
        # their rows stay pending for the next start
        flushed = await self.dispatcher.flush(min(STOP_FLUSH_S, max(left() - 1.0, 0.0)))
        if not flushed:
            log.warning("stopping with messages still in the outbox; they go out on next start")
        await _bounded(self.dispatcher.stop(), left(), "dispatcher")
        if isinstance(telegram, TelegramChannel):
            await _bounded(telegram.stop(), left(), "telegram")
        slack = self.channels.get("slack")
        if isinstance(slack, SlackChannel):
            await _bounded(slack.stop(), left(), "slack")
        await self.store.close()
        if not quiet:
            log.info("stopped")


async def _bounded(aw: Awaitable[object], seconds: float, what: str) -> None:
    """Await `aw` for at most `seconds`; a stop goes on whatever one part does."""
    try:
        await asyncio.wait_for(aw, max(seconds, 0.01))
    except TimeoutError:
        log.warning("stopping: %s did not finish in time; going on", what)
    except Exception as exc:
        log.warning("stopping: %s: %s", what, exc)


def _force_exit() -> None:
    log.warning("stopping took too long; exiting now (nothing is lost: all is in the database)")
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(0)


def _now(settings: Settings) -> datetime:
    return datetime.now(settings.tz)
