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
from collections.abc import Awaitable
from dataclasses import dataclass, field

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import accounts, clock
from bot.config import ConfigError, Settings
from bot.config_checks import database_problem, listen_problem
from bot.config_file import FileConfig
from bot.delivery import names
from bot.delivery.channels.base import Channel
from bot.delivery.channels.slack import SlackChannel
from bot.delivery.channels.telegram import TelegramChannel
from bot.delivery.dispatcher import Dispatcher
from bot.http import HttpServer
from bot.jobs import every, now_in, purge_expired
from bot.logs import REDACT
from bot.reminders import Reminders
from bot.routing_setup import install as install_routing
from bot.routing_setup import log_reloaded, routed_targets
from bot.routing_setup import reload as reload_routing
from bot.summary.schedule import SummaryScheduler
from bot.webhook_url import announce, webhook_secret_origin
from bot.wiring import make_channels, register_chats, secret_value
from handlers.chat import commands
from handlers.chat.callback import Callbacks
from handlers.health import Health
from handlers.intake import Intake
from handlers.metrics import MetricsEndpoint
from handlers.ria.factory import build_poller
from handlers.ria.poller import RiaPoller
from handlers.ria.webhook import RiaWebhook
from storage.db import Store

log = logging.getLogger(__name__)

STOP_FLUSH_S = 2.5  # of the 5 s a container runtime waits after SIGTERM
STOP_S = 4.0  # the whole graceful stop, however slow Telegram or Slack are to answer
STOP_HARD_S = 4.7  # ...and if it still hangs, leave anyway: everything is in the database


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
            group=names.canonical,  # one line per named manager (issue 13)
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
            # closing the loop would put the default handlers back, and a second SIGTERM
            # (a supervisor repeating itself) in the last milliseconds of the exit would
            # end the process with -15 instead of 0: it is leaving anyway, so ignore it.
            # Blocked meanwhile: remove_signal_handler puts the default back for a moment
            stop_signals = {signal.SIGTERM, signal.SIGINT}
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
            for sig in stop_signals:
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)  # one pending: ignored

    def _on_reload(self) -> None:
        if self.dispatcher is None or self.scheduler is None or self.http_session is None:
            return  # still starting: the file just read is the one in force
        taken, config = reload_routing(self.settings, self.intake, self.dispatcher)
        if not taken:
            return
        # the accounts too (issue 13): the webhook's secrets, and the changed pollers
        old, self.config = self.config, config
        accounts.swap(
            old,
            config,
            settings=self.settings,
            webhook=self.webhook,
            pollers=self.account_pollers,
            build=(self.http_session, self.store, self.intake),
            schedule=self._schedule_poll,
            unschedule=self._unschedule_poll,
            port=self.port,
        )
        log_reloaded(self.settings)

    def _time_moved(self) -> None:
        """The injected clock jumped (tests): what slept until a moment of the old time
        looks again (held digests, retries, reminders)."""
        if self.dispatcher is not None:
            for worker in self.dispatcher.workers.values():
                worker.wake.set()
        if self.reminders.enabled:
            self._reminding = asyncio.create_task(self._remind_now())

    async def _remind_now(self) -> None:
        found = await self.reminders.run_once()
        # the line a test waits for: after it, every reminder due at that time is queued
        log.info("test clock: reminders checked at %.0f: %d new", self.reminders.clock(), found)

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
        # the wall clock; the end-to-end tests inject one (bot/clock) to cross an opening
        self.test_clock = clock.from_env()
        now = self.test_clock or time.time
        self.dispatcher = Dispatcher(
            self.store,
            self.channels,
            lang=s.language,
            tz=s.tz,
            targets=s.alert_targets(),
            clock=now,
        )
        self.intake = Intake(
            self.store,
            targets=s.alert_targets(),
            missed_statuses=s.missed_statuses,
            on_alerts=self.dispatcher.submit,
            clock=now,
        )
        install_routing(self.config, s, self.intake, self.dispatcher)
        self.http_session = session = aiohttp.ClientSession()
        self.poller = self._make_poller(session)
        # the [[account]]s' pollers (issue 13), each on its own budget; none without a file
        self.account_pollers = {
            str(p.account): p
            for p in accounts.pollers(s, self.config, session, self.store, self.intake)
        }

        self.http = HttpServer(max_connections=s.http_max_connections, trusted=s.trusted_networks)
        app = self.http.app
        self.webhook = RiaWebhook(
            self.store,
            self.intake,
            secret=secret,
            tz=s.tz,
            trusted=s.trusted_networks,
            accounts=accounts.webhook_secrets(self.config),
        )
        app.add_routes(self.webhook.routes())
        health = Health(
            self.store,
            storage_error=lambda: self.intake.storage_error,
            poller=self.poller.status if self.poller else (lambda: {"enabled": False}),
            channels=lambda: {name: ch.status() for name, ch in self.channels.items()},
            delivery=self.dispatcher.status,
            metrics=MetricsEndpoint(
                self.store,
                token=secret_value(s.metrics_token),
                trusted=s.trusted_networks,
                tz=s.tz,
                monthly_quota=s.ria_monthly_quota if self.poller else None,
                accounts=self._account_quotas,
            ),
        )
        app.add_routes(health.routes())
        app.cleanup_ctx.append(health.keep_state)  # what `ria-calls-bot status` reads
        # presses of "✅ Called back" (issue 12): edits go to the outbox like alerts
        self.callbacks = Callbacks(
            self.store, lang=s.language, tz=s.tz, submit=self.dispatcher.submit, clock=now
        )
        register_chats(s, self.channels, app, answer=self.answer, callbacks=self.callbacks)
        try:
            port = await self.http.start(s.http_host, s.http_port)
        except OSError as exc:
            raise ConfigError([listen_problem(s.http_host, s.http_port, exc)]) from None
        self.port = port
        announce(s, secret, origin, port)
        accounts.announce(s, self.config, port)

        await self.dispatcher.start()
        for channel in self.channels.values():
            if isinstance(channel, TelegramChannel | SlackChannel):
                channel.start()
        self.scheduler = AsyncIOScheduler(timezone=s.tz)
        # RIA_* 's poller is "poll"; each [[account]]'s, "poll:<name>"
        main = [(self.poller, "poll")] if self.poller is not None else []
        jobs = [(p, f"poll:{name}") for name, p in self.account_pollers.items()]
        for poller, job in main + jobs:
            self._schedule_poll(poller, job)
        self.summaries = SummaryScheduler.from_settings(
            s, self.store, submit=self.dispatcher.submit, poller=self.poller, routed=routed_targets
        )
        self.summaries.schedule(self.scheduler)
        self.reminders = Reminders(
            self.store,
            submit=self.dispatcher.submit,
            within_s=s.callback_within_minutes * 60,
            alert_max_age_s=s.alert_max_age_minutes * 60,
            clock=now,
        )
        self.reminders.schedule(self.scheduler, now_in(s))
        if self.test_clock is not None:
            self._clock_task = asyncio.create_task(self.test_clock.watch(self._time_moved))
        # daily, and once at start (a service restarted every night would otherwise never
        # get to it); rejected payloads expire even when calls are kept for ever
        every(
            self.scheduler,
            purge_expired,  # a coroutine function: APScheduler runs it on the loop
            "retention",
            s,
            args=[self.store, s.retention_days],
            hours=24,
        )
        self.scheduler.start()
        log.info(
            "ready: %d alert target(s): %s",
            len(s.alert_targets()),
            ", ".join(map(str, s.alert_targets())),
        )

    def _account_quotas(self) -> list[tuple[str, int]]:
        """(name, monthly quota) of each [[account]] in force (metrics; SIGHUP changes it)."""
        return [(a.name, a.monthly_quota) for a in self.config.accounts] if self.config else []

    def _unschedule_poll(self, job: str) -> None:
        if self.scheduler is not None:
            with contextlib.suppress(Exception):  # JobLookupError: it was not scheduled
                self.scheduler.remove_job(job)

    def _schedule_poll(self, poller: RiaPoller, job: str) -> None:
        assert self.scheduler is not None
        poller.warn_if_quota_too_small()
        s = self.settings
        every(
            self.scheduler, self._poll, job, s, args=[poller], minutes=s.ria_poll_interval_minutes
        )

    def _make_poller(self, session: aiohttp.ClientSession) -> RiaPoller | None:
        poller = build_poller(self.settings, session, self.store, self.intake)
        if poller is None:
            log.info(
                "RIA polling is off (set RIA_API_KEY and RIA_USER_ID to turn it on); "
                "the webhook works without it"
            )
        return poller

    async def _poll(self, poller: RiaPoller) -> None:
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
        if (watch := getattr(self, "_clock_task", None)) is not None:
            watch.cancel()
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
