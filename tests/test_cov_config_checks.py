"""Start-up failures that are settings in disguise (bot/config_checks.py): each becomes one
`config error:` line naming the variable to change.

The address that is not this machine's goes through the real CLI; the causes a test cannot
produce on this machine (running as root, the port below 1024 opens; a full disk) are fed
to the same functions as the exceptions the OS and SQLite raise for them."""

from __future__ import annotations

import errno
import socket
import sqlite3
from pathlib import Path

from bot.config_checks import database_problem, dotenv_problems, listen_problem
from tests.service import base_env, run_cli


async def test_http_host_that_is_not_an_address_of_this_machine(tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never assigned to a real interface
    env = base_env(tmp_path, HTTP_HOST="192.0.2.1")
    code, out, err = await run_cli(env, tmp_path, "run", timeout=30)
    assert code == 2, out + err
    lines = [line for line in err.splitlines() if line.startswith("config error:")]
    assert len(lines) == 1, err
    assert lines[0].startswith('config error: HTTP_HOST: cannot listen on "192.0.2.1" (')
    assert lines[0].endswith("set it to an address of this machine, or 0.0.0.0 for all")
    assert "Traceback" not in err
    assert "RIA webhook URL" not in out


def test_listen_problems_name_the_variable() -> None:
    denied = OSError(errno.EACCES, "Permission denied")
    assert listen_problem("0.0.0.0", 80, denied) == (
        "HTTP_PORT: no permission to listen on port 80 (ports below 1024 need privileges); "
        "set HTTP_PORT to 1024 or above"
    )
    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert listen_problem("nas.local", 8080, unknown).startswith(
        'HTTP_HOST: cannot listen on "nas.local" (Name or service not known)'
    )
    other = OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
    assert listen_problem("::1", 8080, other) == (
        "HTTP_HOST / HTTP_PORT: cannot listen on ::1:8080 (Address family not supported by "
        "protocol); check both"
    )


def test_database_problems_say_what_to_do(tmp_path: Path) -> None:
    path = str(tmp_path / "calls.db")
    locked = database_problem(path, sqlite3.OperationalError("database is locked"))
    assert locked == (
        f"DATABASE_PATH: cannot open {path} (database is locked); another ria-calls-bot may "
        "be using it: stop that one, or use another file"
    )
    full = database_problem(path, sqlite3.OperationalError("database or disk is full"))
    assert full.endswith("free some space on that disk, or set it to a file on another one")
    # a path through a file: the error names that file
    (tmp_path / "plain").write_text("x")
    under = str(tmp_path / "plain" / "calls.db")
    exc = NotADirectoryError(errno.ENOTDIR, "Not a directory", str(tmp_path / "plain"))
    assert f"({tmp_path / 'plain'} is a file, not a folder)" in database_problem(under, exc)
    # an OSError with its reason
    denied = PermissionError(errno.EACCES, "Permission denied")
    assert "(Permission denied); set it to a file in a folder" in database_problem(path, denied)


def test_an_env_file_that_cannot_be_read_is_left_to_pydantic(tmp_path: Path) -> None:
    folder = tmp_path / ".env"
    folder.mkdir()  # a folder named .env: reading it fails
    assert dotenv_problems(folder, {"telegram_bot_token"}) == []
    latin = tmp_path / "latin.env"
    latin.write_bytes(b"TELEGRAM_BOT_TOKEN=\xff\xfe\n")
    assert dotenv_problems(latin, {"telegram_bot_token"}) == []
    good = tmp_path / "good.env"
    good.write_text(
        "# a comment\nexport TELEGRAM_BOT_TOKEN='abc'\nOTHER=\"x\"\nNO_EQUALS\nLOG_LEVEL=INFO # why\n"
    )
    assert dotenv_problems(good, {"telegram_bot_token", "log_level"}) == [
        "TELEGRAM_BOT_TOKEN: in good.env, the value is in quotes; write it without them "
        "(docker --env-file keeps quotes as part of the value)",
        'LOG_LEVEL: in good.env, the value ends with a comment ("  # ..."); put comments on '
        "a line of their own (docker --env-file keeps it as part of the value)",
    ]
