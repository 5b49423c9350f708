"""The ingest hand-off (issue 14): the loop hands each group of writes to the writer thread
once and hears back once; every answer still waits for its COMMIT; a batch that breaks the
group fails alone; close() stores what was queued; the HTTP guard's request timeout."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import sqlite_utils
from aiohttp import web

import bot.http
from bot.http import HttpServer
from handlers.intake import Intake
from handlers.ria.records import parse_record
from storage.db import Store, transaction
from storage.outbox import Target
from tests.fakes.ria import make_call

TZ = ZoneInfo("Europe/Kyiv")


def _create(db: sqlite_utils.Database) -> None:
    db.conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")


def _insert(db: sqlite_utils.Database, value: int) -> int:
    with transaction(db) as conn:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
    return value


async def test_every_answer_comes_after_its_commit(tmp_path: Path) -> None:
    """Each write's answer: its row is already visible to another connection (committed,
    not in a transaction still open), however the writes were grouped."""
    path = tmp_path / "h.db"
    store = Store(path)
    await store.open()
    watcher = sqlite3.connect(path)
    seen_committed: list[bool] = []

    async def one(value: int) -> None:
        await store.write(_insert, value)
        rows = watcher.execute("SELECT COUNT(*) FROM t WHERE v = ?", (value,)).fetchone()
        seen_committed.append(rows[0] == 1)

    try:
        await store.run(_create)
        for wave in range(5):  # waves: some join a group in flight, some start one
            await asyncio.gather(*(one(wave * 100 + i) for i in range(40)))
        assert seen_committed == [True] * 200
    finally:
        watcher.close()
        await store.close()


async def test_writes_queued_while_a_group_is_on_the_thread_share_the_next_commit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.db"
    store = Store(path)
    await store.open()
    try:
        await store.run(_create)
        watcher = sqlite3.connect(path)
        before = watcher.execute("PRAGMA data_version").fetchone()[0]
        first = store.write_soon(_insert, -1)
        await asyncio.sleep(0)  # the first group leaves for the thread alone
        rest = [store.write_soon(_insert, i) for i in range(50)]
        assert await asyncio.gather(first, *rest) == [-1, *range(50)]
        after = watcher.execute("PRAGMA data_version").fetchone()[0]
        assert after - before <= 2  # the first group and one more, not 51 commits
        watcher.close()
    finally:
        await store.close()


async def test_close_stores_the_writes_still_queued(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = Store(path)
    await store.open()
    await store.run(_create)
    futures = [store.write_soon(_insert, i) for i in range(10)]
    await store.close()  # before the loop ever sent them: close must send and wait
    assert [f.result() for f in futures] == list(range(10))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 10


async def test_a_batch_that_breaks_the_group_fails_alone(tmp_path: Path) -> None:
    """Requests of one turn share an ingest; one that cannot be stored (its raw record
    cannot be encoded) fails its own request only, the others are stored and answered."""
    store = Store(tmp_path / "h.db")
    await store.open()
    alerted: list[int] = []
    intake = Intake(
        store,
        targets=[Target("console", "stdout")],
        missed_statuses=["NOANSWER"],
        on_alerts=lambda items: alerted.extend(i.call_id or 0 for i in items),
    )
    good = [parse_record(make_call(n, "NOANSWER"), TZ) for n in range(1, 9)]
    bad_record: dict[str, Any] = make_call(99, "NOANSWER")
    bad = parse_record(bad_record, TZ)
    bad.raw["x"] = {1, 2}  # a set: no JSON for it, so the ingest raises mid-transaction
    try:
        jobs = [intake.accept([c], source="webhook") for c in good]
        jobs.insert(4, intake.accept([bad], source="webhook"))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        assert len(failed) == 1 and isinstance(failed[0], TypeError)
        stored = await store.run(
            lambda db: [r[0] for r in db.conn.execute("SELECT call_id FROM calls ORDER BY 1")]
        )
        assert stored == list(range(1, 9))
        assert sorted(alerted) == list(range(1, 9))  # each alerted once, the bad one never
        # alone, it fails too, and says so to /healthz until a request is stored again
        with pytest.raises(TypeError):
            await intake.accept([bad], source="webhook")
        assert intake.storage_error is not None
        await intake.accept([parse_record(make_call(10, "ANSWER"), TZ)], source="webhook")
        assert intake.storage_error is None
    finally:
        await store.close()


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.http, "REQUEST_S", 0.3)
    monkeypatch.setattr(bot.http, "SWEEP_S", 0.05)


async def test_a_request_past_the_time_limit_gets_408_and_others_are_untouched(
    short_timeout: None,
) -> None:
    server = HttpServer()
    gate = asyncio.Event()

    async def stuck(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response(text="never")

    async def own_timeout(request: web.Request) -> web.Response:
        # a handler's own timeout is its own business: aiohttp answers it (504), not us
        async with asyncio.timeout(0.01):
            await gate.wait()
        return web.Response(text="never")

    async def quick(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    server.app.add_routes(
        [web.get("/stuck", stuck), web.get("/own", own_timeout), web.get("/quick", quick)]
    )
    port = await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{port}"

            async def get(path: str) -> tuple[int, str]:
                async with session.get(base + path) as resp:
                    return resp.status, await resp.text()

            stuck_answer, own, quick_answers = await asyncio.gather(
                get("/stuck"), get("/own"), asyncio.gather(*(get("/quick") for _ in range(20)))
            )
            assert stuck_answer == (408, "request timeout")
            assert own[0] == 504
            assert quick_answers == [(200, "ok")] * 20
            assert server._deadlines == {} and server._expired == set()
    finally:
        await server.stop()


def _insert_then_fail(db: sqlite_utils.Database, value: int) -> int:
    with transaction(db) as conn:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        raise ValueError("broken alone")


async def test_a_write_alone_in_its_group_fails_without_a_trace(tmp_path: Path) -> None:
    """A group of one runs without a savepoint: its failure rolls the transaction back,
    and the next write starts a fresh one."""
    path = tmp_path / "h.db"
    store = Store(path)
    await store.open()
    try:
        await store.run(_create)
        with pytest.raises(ValueError, match="broken alone"):
            await store.write(_insert_then_fail, 1)
        assert await store.write(_insert, 2) == 2
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT v FROM t").fetchall() == [(2,)]
    finally:
        await store.close()
