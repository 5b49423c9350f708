"""The CLI's refusals that the feature tests pass by: arguments argparse rejects through our
own types, backfill without polling or with its dates swapped, RIA refusing a backfill
midway, and a read command on a file that is not a database. All through the real
`ria-calls-bot` with environment variables, against the fake RIA."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RIA_KEY, RIA_USER
from tests.fakes.ria import FakeRia
from tests.service import base_env, run_cli


async def test_bad_dates_and_timeouts_are_usage_errors(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    code, out, err = await run_cli(
        env, tmp_path, "backfill", "--from", "31.02.2026", "--to", "2026-03-01"
    )
    assert code == 2, out + err
    assert "argument --from: " in err and "Traceback" not in err
    for value in ("0", "soon", "7200"):
        code, out, err = await run_cli(env, tmp_path, "send-test", "--timeout", value)
        assert code == 2, out + err
        assert f'argument --timeout: "{value}" is not a number of seconds (1-3600)' in err


async def test_backfill_refusals(tmp_path: Path) -> None:
    code, out, err = await run_cli(
        base_env(tmp_path), tmp_path, "backfill", "--from", "2026-11-01", "--to", "2026-11-02"
    )
    assert code == 2, out + err
    assert "backfill needs RIA_API_KEY and RIA_USER_ID" in err

    env = base_env(tmp_path, RIA_API_KEY=RIA_KEY, RIA_USER_ID=RIA_USER)
    code, out, err = await run_cli(
        env, tmp_path, "backfill", "--from", "2026-11-05", "--to", "2026-11-01"
    )
    assert code == 2, out + err
    assert "backfill: --to is before --from" in err


async def test_backfill_stops_when_ria_refuses(tmp_path: Path) -> None:
    # RIA knows another key: the first request is refused, the backfill says where it stopped
    async with FakeRia(api_key="K" * 40, user_id=RIA_USER) as ria:
        env = base_env(tmp_path, RIA_API_KEY=RIA_KEY, RIA_USER_ID=RIA_USER, RIA_API_URL=ria.url)
        code, out, err = await run_cli(
            env, tmp_path, "backfill", "--from", "2026-09-01", "--to", "2026-11-01"
        )
    assert code == 1, out + err
    assert "backfill stopped at 2026-09-01: " in err
    assert "backfill stopped: 0 calls from RIA, 0 new, 0 alert(s)" in out
    assert RIA_KEY not in out + err


async def test_read_command_on_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "calls.db"
    junk.write_bytes(b"a spreadsheet, perhaps\n" * 100)
    env = base_env(tmp_path, DATABASE_PATH=str(junk))
    for command in ("stats", "missed"):
        code, out, err = await run_cli(env, tmp_path, command, "yesterday")
        assert code == 1, out + err
        assert f"database {junk}: file is not a database" in err, err
        assert "Traceback" not in err
