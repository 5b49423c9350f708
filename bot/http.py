"""The HTTP server, hardened for the open internet.

aiohttp's defaults suit a server behind a proxy that does this work: an hour of keep-alive,
no limit on open connections, no time limit on a request whose body trickles in. Exposed
directly, 1,100 idle sockets were enough to make `/healthz` and RIA's webhooks time out. Here:

- keep-alive of KEEPALIVE_S. aiohttp's keep-alive timer runs from the moment a connection
  opens (or its last answer went out) until a request's headers are complete, so it is also
  the time limit for headers that trickle in;
- REQUEST_S for reading a body and answering it (a 408 after that);
- every body at most MAX_BODY (client_max_size; the routes read no further than that);
- at most `max_connections` open connections. When a new one would pass the cap, the oldest
  connection that is not in the middle of a request (idle, or still sending its headers) is
  closed to make room, so a flood of idle sockets cannot lock RIA or a health check out; only
  when every connection is busy is the new one refused. One log line a minute at most says so.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDictProxy

from handlers.proxies import Network, forwarded_for

log = logging.getLogger(__name__)

KEEPALIVE_S = 75.0  # longer than the usual proxy's idle timeout (Caddy, nginx: 60 s or less)
REQUEST_S = 30.0
SWEEP_S = 1.0  # how often requests are checked against REQUEST_S
MAX_BODY = 64 * 1024
FULL_LOG_EVERY_S = 60.0
# connections when HTTP_MAX_CONNECTIONS=0: half the open-file limit, leaving the rest to the
# database, the chat platforms and RIA; within [MIN_CAP, MAX_CAP]
MIN_CAP, MAX_CAP = 16, 4096
FD_RESERVE = 64
REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _soft_limit() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def accept_backlog() -> int:
    """listen()'s backlog, which is also how many sockets asyncio accepts in one go before
    the cap sees any of them: with a small open-file limit it must be small too."""
    soft = _soft_limit()
    return 100 if soft is None else max(16, min(100, soft // 16))


def default_cap() -> int:
    soft = _soft_limit()
    if soft is None:
        return MAX_CAP
    # asyncio may accept two bursts before the sockets the cap closed are freed (the
    # closes run on the next loop turn): room for both, or the flood hits EMFILE anyway
    return max(MIN_CAP, min(MAX_CAP, (soft - FD_RESERVE - 2 * accept_backlog()) // 2))


class _Refuse(asyncio.Protocol):
    """A connection past the cap while every other is busy: a 503 and close, at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(REFUSAL)
        transport.close()


class HttpServer:
    def __init__(
        self,
        *,
        max_connections: int = 0,
        trusted: Sequence[Network] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cap = max_connections or default_cap()
        self.trusted = tuple(trusted)
        self.clock = clock
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        # the requests being handled (their tasks), each with its deadline (REQUEST_S), and
        # those the sweep cancelled for running past it
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # per connection: its last request's headers, so the cap's log line can name who
        # holds the connections (X-Forwarded-For from a trusted proxy); turned into an
        # address only when a log line names it (parsing addresses on every request cost
        # ~3 % of ingest)
        self._client: dict[RequestHandler, CIMultiDictProxy[str]] = {}
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._logged_at = -FULL_LOG_EVERY_S
        self.evicted = self.refused = 0

    async def start(self, host: str, port: int) -> int:
        """Listen; the bound port (port 0 picks a free one). OSError if it cannot."""
        # no access log: the webhook paths hold the credentials of RIA and the chat platforms
        self._runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=1.0, keepalive_timeout=KEEPALIVE_S
        )
        await self._runner.setup()
        loop = asyncio.get_running_loop()
        # our own listener instead of web.TCPSite: the protocol factory is where a new
        # connection can be weighed against the cap before aiohttp takes it on
        self._listener = await loop.create_server(
            self._connection, host or None, port, reuse_address=True, backlog=accept_backlog()
        )
        self._sweeper = loop.create_task(self._sweep())
        loop.call_later(FREEZE_AFTER_S, tune_for_serving)
        return int(self._listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._listener is not None:
            self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()  # closes idle connections, waits for the rest

    # --- the cap ---------------------------------------------------------------------------

    def _connection(self) -> asyncio.BaseProtocol:
        assert self._runner is not None and self._runner.server is not None
        server = self._runner.server
        open_ = [h for h in server.connections if h.transport is not None]
        if len(open_) >= self.cap:
            idle = [h for h in open_ if not _busy(h)]
            if not idle:
                self.refused += 1
                self._log_full(open_, "every one is busy: refused a new one")
                return _Refuse()
            # the oldest first: a flood's sockets, or a keep-alive nobody is using
            idle[0].force_close()
            self.evicted += 1
            self._log_full(open_, "closed the oldest idle one to make room")
        self._client = {h: a for h, a in self._client.items() if h.transport is not None}
        return server()

    def _log_full(self, open_: list[RequestHandler], what: str) -> None:
        now = self.clock()
        if now - self._logged_at < FULL_LOG_EVERY_S:
            return
        self._logged_at = now
        holders = Counter(self._address(h) for h in open_)
        top = ", ".join(f"{addr} ({n})" for addr, n in holders.most_common(3))
        log.warning(
            "http: %d connections open, the most allowed (HTTP_MAX_CONNECTIONS=%d); %s; "
            "most from %s (this line once a minute at most: %d closed, %d refused so far)",
            len(open_),
            self.cap,
            what,
            top,
            self.evicted,
            self.refused,
        )

    def _address(self, protocol: RequestHandler) -> str:
        headers = self._client.get(protocol)
        if headers is None:
            return _peer(protocol)
        forwarded = ",".join(headers.getall("X-Forwarded-For", [])) or None
        return forwarded_for(_peer(protocol), forwarded, self.trusted)

    # --- every request -----------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # the hot path of every webhook: two dict stores, no timer of its own (an
        # asyncio.timeout per request, its TimerHandle and the middleware's bookkeeping were
        # ~8 % of the event loop's time at full ingest load, py-spy); the sweep below
        # enforces REQUEST_S for all requests at once, to within SWEEP_S
        self._client[request.protocol] = request.headers
        task = asyncio.current_task()
        assert task is not None
        self._deadlines[task] = self.clock() + REQUEST_S
        try:
            return await handler(request)
        except asyncio.CancelledError:
            if task not in self._expired or task.uncancel() > 0:
                raise  # not ours (the connection went, the server stops), or not only ours
            log.debug(
                "http: %s %s took over %g s",
                self._address(request.protocol),
                request.method,
                REQUEST_S,
            )
            response = web.Response(status=408, text="request timeout")
            response.force_close()
            return response
        finally:
            del self._deadlines[task]
            self._expired.discard(task)

    async def _sweep(self) -> None:
        """Every SWEEP_S: cancel the requests that have run past REQUEST_S (408)."""
        while True:
            await asyncio.sleep(SWEEP_S)
            now = self.clock()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()


# start-up's garbage collected and the rest frozen this long after the server listens:
# off the start-up path (a collection of the start-up heap takes 20-45 ms)
FREEZE_AFTER_S = 1.0
_frozen = False


def tune_for_serving() -> None:
    """Once the service is up, once per process: collect start-up's garbage, then move
    everything left (imports, configuration, clients: ~100,000 objects) out of the cyclic
    collector's sight, so that a full collection under load walks only what came after,
    instead of stalling the loop for 20-45 ms (measured) in the middle of a burst.
    (A shorter GIL switch interval was tried too and dropped: at 0.5 ms and below the
    threads' extra switching cost more CPU per webhook than the writer's shorter waits
    saved.)"""
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()


def _busy(handler: RequestHandler) -> bool:
    """Whether a connection is in the middle of a request (reading its body, handling it,
    answering): aiohttp's own flag, so no request pays for bookkeeping of ours."""
    return bool(getattr(handler, "_request_in_progress", True))


def _peer(handler: RequestHandler) -> str:
    transport = handler.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if peer else "unknown"
