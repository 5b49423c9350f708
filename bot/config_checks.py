"""Configuration problems found outside the values' own validators: `.env` lines that
Docker's `--env-file` would read differently, and start-up failures that are settings in
disguise (a database path that cannot be opened, a port that cannot be listened on). Each
is one line naming the variable to change."""

from __future__ import annotations

import re
from pathlib import Path

# what `docker run --env-file` keeps in a value although python-dotenv strips it
_QUOTED = re.compile(r"""^\s*["'].*|.*["']\s*$""", re.DOTALL)
_COMMENT_TAIL = re.compile(r"\s#")


def env_file_problem(raw: str) -> str | None:
    """Why a value as written would not survive `docker run --env-file` (the value itself is
    never repeated: it may be a secret)."""
    if _QUOTED.match(raw):
        return (
            "the value is in quotes; write it without them "
            "(docker --env-file keeps quotes as part of the value)"
        )
    if _COMMENT_TAIL.search(raw):
        return (
            'the value ends with a comment ("  # ..."); put comments on a line of their own '
            "(docker --env-file keeps it as part of the value)"
        )
    return None


def dotenv_problems(path: Path, fields: set[str]) -> list[str]:
    """Lines of a `.env` that python-dotenv reads fine but Docker would not: quoted values and
    comments after a value. The same file must work for `make run` and `--env-file`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []  # pydantic-settings reports an unreadable file its own way
    lines = []
    for line in text.splitlines():
        name, sep, raw = line.strip().removeprefix("export ").partition("=")
        name = name.strip()
        if not sep or name.startswith("#") or name.lower() not in fields:
            continue
        problem = env_file_problem(raw)
        if problem:
            lines.append(f"{name.upper()}: in {path.name}, {problem}")
    return lines


# --- start-up failures that are settings in disguise ---------------------------------------


def database_problem(path: str, exc: BaseException) -> str:
    """One config-error line for a database that cannot be opened or created."""
    where = Path(path).expanduser().absolute()
    # a "folder" on the way that is a file: SQLite only says "unable to open database file"
    blocker = next((p for p in where.parents if p.exists() and not p.is_dir()), None)
    if where.is_dir():
        reason = "that is a folder, not a file"
    elif isinstance(exc, FileExistsError | NotADirectoryError) and exc.filename:
        reason = f"{exc.filename} is a file, not a folder"
    elif blocker is not None:
        reason = f"{blocker} is a file, not a folder"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        reason = str(exc)
    if "locked" in reason:
        todo = "another ria-calls-bot may be using it: stop that one, or use another file"
    elif "full" in reason:
        todo = "free some space on that disk, or set it to a file on another one"
    else:
        todo = "set it to a file in a folder this user can create and write"
    return f"DATABASE_PATH: cannot open {where} ({reason}); {todo}"


def listen_problem(host: str, port: int, exc: OSError) -> str:
    """One config-error line for an HTTP server that cannot listen (port in use, ...)."""
    import errno
    import socket

    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return (
            f'HTTP_HOST: cannot listen on "{host}" ({exc.strerror or exc}); set it to an '
            "address of this machine, or 0.0.0.0 for all"
        )
    if exc.errno == errno.EADDRINUSE:
        return (
            f"HTTP_PORT: port {port} is already in use on {host} (another program, or "
            "ria-calls-bot already running); stop that one or set HTTP_PORT to a free port"
        )
    if exc.errno == errno.EACCES:
        return (
            f"HTTP_PORT: no permission to listen on port {port} (ports below 1024 need "
            "privileges); set HTTP_PORT to 1024 or above"
        )
    return (
        f"HTTP_HOST / HTTP_PORT: cannot listen on {host}:{port} ({exc.strerror or exc}); check both"
    )
