"""`ria-calls-bot backup` while webhooks pour in (issue 14, Backups).

Every call acknowledged (200) before the backup began is in the copy, the copy passes
`PRAGMA integrity_check`, and a service started on it in a new folder runs.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import stat
from pathlib import Path

from tests.fakes.ria import make_call
from tests.service import Service, base_env, run_cli

WORKERS = 8


async def test_backup_during_a_webhook_flood_restores(services, tmp_path: Path) -> None:
    service: Service = await services()
    acked: list[int] = []
    stop = asyncio.Event()
    warm = asyncio.Event()  # enough calls in to make the backup worth checking

    async def flood(worker: int) -> None:
        n = 0
        while not stop.is_set():
            call_id = worker * 1_000_000 + n
            n += 1
            status, _ = await service.post(service.webhook_url, json=make_call(call_id))
            assert status == 200
            acked.append(call_id)
            if len(acked) >= 200:
                warm.set()

    tasks = [asyncio.create_task(flood(w)) for w in range(1, WORKERS + 1)]
    try:
        await asyncio.wait_for(warm.wait(), 60)
        before = set(acked)  # acknowledged before the backup began
        env = base_env(tmp_path)
        backup = tmp_path / "backups" / "calls.db"
        code, out, err = await run_cli(env, tmp_path, "backup", str(backup), "--keep", "2")
        assert code == 0, out + err
        during = len(acked) - len(before)
        code, out, err = await run_cli(env, tmp_path, "backup", str(backup), "--keep", "2")
        assert code == 0, out + err
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert during > 0, "the flood went on while the backup ran"
    assert "calls.db.1" in out  # the second run kept the first as FILE.1
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert sorted(p.name for p in backup.parent.iterdir()) == ["calls.db", "calls.db.1"]

    # restore the first backup into a new folder, as the README says: copy, check, start
    restored = tmp_path / "restored" / "calls.db"
    restored.parent.mkdir()
    shutil.copyfile(backup.with_name("calls.db.1"), restored)
    conn = sqlite3.connect(restored)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in conn.execute("SELECT call_id FROM calls")}
    finally:
        conn.close()
    missing = before - stored
    assert not missing, f"{len(missing)} acknowledged calls missing from the backup"

    await service.stop()
    again = await services(DATABASE_PATH=restored)
    status, body = await again.post(again.webhook_url, json=make_call(42))
    assert status == 200 and body["accepted"] == 1
