"""`ria-calls-bot export` through the real CLI, on a seeded database."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from handlers.ria.records import parse_record
from storage.calls import ingest
from storage.db import connect
from tests.fakes.ria import make_call
from tests.service import base_env, run_cli

KYIV = ZoneInfo("Europe/Kyiv")

# (call_id, status, Kyiv wall time): 27.11 is before the range, 30.11 after it; 29.11 23:59
# is the last second of the range, 28.11 00:00 its first
SEEDED = [
    (1, "ANSWER", datetime(2026, 11, 27, 23, 59, 59)),
    (2, "NOANSWER", datetime(2026, 11, 28, 0, 0, 0)),
    (3, "ANSWER", datetime(2026, 11, 28, 10, 15, 0)),
    (4, "BUSY", datetime(2026, 11, 29, 23, 59, 59)),
    (5, "NOANSWER", datetime(2026, 11, 30, 0, 0, 0)),
]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = base_env(tmp_path, TIMEZONE="Europe/Kyiv")
    db = connect(env["DATABASE_PATH"])
    records = [
        make_call(
            call_id,
            status,
            when,
            caller="0951174074",
            destination_phone="0671112233",
            phone="0443334455",
            marka="Acura",
            model="MDX",
        )
        for call_id, status, when in SEEDED
    ]
    ingest(
        db,
        [parse_record(r, KYIV) for r in records],
        source="webhook",
        received_at=0.0,
        missed_statuses={"NOANSWER", "BUSY"},
        targets=[],
        alert_max_age_s=None,
    )
    db.conn.close()
    return env


async def test_csv_has_a_header_and_one_row_per_call_of_the_days(
    env: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = await run_cli(
        env, tmp_path, "export", "--from", "2026-11-28", "--to", "29.11.2026"
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["call_id"] for r in rows] == ["2", "3", "4"]
    first = rows[1]
    assert first["started_at"] == "2026-11-28T10:15:00+02:00"  # local, with its offset
    assert first["status"] == "ANSWER" and first["missed"] == "false"
    assert first["caller"] == "+380951174074"
    assert first["manager_phone"] == "+380671112233"
    assert first["tracking_phone"] == "+380443334455"
    assert first["car"] == "Acura MDX"
    assert rows[0]["missed"] == "true" and rows[2]["missed"] == "true"
    assert out.splitlines()[0].startswith("call_id,started_at,status,missed,caller,")


async def test_json_missed_only_to_a_file(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "missed.json"
    args = ["--from", "28.11.2026", "--to", "2026-11-30", "--missed", "--format", "json"]
    code, out, err = await run_cli(env, tmp_path, "export", *args, "--output", str(target))
    assert code == 0, err
    assert out == ""
    assert "3 call(s) written" in err
    calls = json.loads(target.read_text())
    assert [c["call_id"] for c in calls] == [2, 4, 5]
    assert all(c["missed"] is True for c in calls)
    assert calls[0]["started_at"] == "2026-11-28T00:00:00+02:00"
    assert calls[0]["caller"] == "+380951174074"


@pytest.mark.parametrize("fmt, expected", [("csv", 1), ("json", None)])
async def test_a_range_without_calls(
    env: dict[str, str], tmp_path: Path, fmt: str, expected: int | None
) -> None:
    args = ["--from", "2026-12-01", "--to", "2026-12-31", "--format", fmt]
    code, out, err = await run_cli(env, tmp_path, "export", *args)
    assert code == 0, err
    if fmt == "json":
        assert json.loads(out) == []
    else:
        assert len(out.splitlines()) == expected  # the header alone


@pytest.mark.parametrize(
    "bad, says",
    [
        (["--from", "31.02.2026", "--to", "2026-03-01"], "no such date"),
        (["--from", "yesterday", "--to", "2026-03-01"], "is not a date"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], "--to is before --from"),
    ],
)
async def test_a_bad_date_is_an_error(
    env: dict[str, str], tmp_path: Path, bad: list[str], says: str
) -> None:
    code, out, err = await run_cli(env, tmp_path, "export", *bad)
    assert code == 2
    assert says in err and out == ""


async def test_no_database_is_an_error_and_none_is_created(tmp_path: Path) -> None:
    env = base_env(tmp_path, DATABASE_PATH=str(tmp_path / "nowhere" / "calls.db"))
    code, out, err = await run_cli(
        env, tmp_path, "export", "--from", "2026-11-28", "--to", "2026-11-28"
    )
    assert code == 1
    assert "no database at" in err and out == ""
    assert not (tmp_path / "nowhere").exists()
