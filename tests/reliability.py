"""Helpers for the reliability tests: the real dispatcher, intake and Telegram channel in
this process, against the fake Telegram server (real HTTP, real python-telegram-bot)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.delivery.channels.telegram import TelegramChannel, build_application
from bot.delivery.dispatcher import Dispatcher
from handlers.intake import Intake
from handlers.ria.records import parse_record, to_e164
from storage.db import Store
from storage.outbox import Target
from tests.conftest import TG_TOKEN
from tests.fakes.ria import KYIV, make_call
from tests.fakes.telegram import FakeTelegram

MISSED = ("NOANSWER", "CANCEL", "BUSY")


@dataclass
class Rig:
    store: Store
    dispatcher: Dispatcher
    intake: Intake
    channel: TelegramChannel
    chats: list[str]

    async def missed(self, *call_ids: int) -> None:
        """Missed calls arrive (as from the webhook), one per id, caller derived from it."""
        calls = [parse_record(make_call(i, "NOANSWER", caller=caller(i)), KYIV) for i in call_ids]
        await self.intake.accept(calls, source="webhook")

    async def rows(self, sql: str, *args: Any) -> list[tuple]:
        return await self.store.run(lambda db: [tuple(r) for r in db.conn.execute(sql, args)])


def caller(call_id: int) -> str:
    """A distinct, valid Ukrainian number per call id."""
    return f"067{call_id:07d}"


def e164(call_id: int) -> str:
    return to_e164(caller(call_id))


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path,
    telegram: FakeTelegram,
    chats: Sequence[str],
    *,
    token: str = TG_TOKEN,
    db_path: Path | None = None,
    **dispatcher_args: Any,
) -> AsyncIterator[Rig]:
    store = Store(db_path or tmp_path / "calls.db")
    await store.open()
    application = build_application(token, telegram.url, webhook_mode=True)
    channel = TelegramChannel(application)
    dispatcher = Dispatcher(store, {"telegram": channel}, lang="en", tz=KYIV, **dispatcher_args)
    intake = Intake(
        store,
        targets=[Target("telegram", c) for c in chats],
        missed_statuses=MISSED,
        on_alerts=dispatcher.submit,
    )
    await dispatcher.start()
    try:
        yield Rig(store, dispatcher, intake, channel, list(chats))
    finally:
        await dispatcher.stop()
        await application.bot.shutdown()
        await store.close()


def texts_for(telegram: FakeTelegram, chat: str | int) -> list[str]:
    return [m["text"] or "" for m in telegram.messages_for(chat)]


def mentions(texts: list[str], call_ids: Sequence[int]) -> dict[int, int]:
    """How many messages name each call's caller."""
    return {i: sum(e164(i) in t for t in texts) for i in call_ids}


async def until(
    predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what}")
        await asyncio.sleep(step)


def db_rows(path: Path | str, sql: str, *args: Any) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, args).fetchall()


LONG_POLLS = frozenset({"getupdates"})  # always waiting by design: not a send in flight


def in_flight(*fakes: Any) -> int:
    """Requests a fake platform has received and not yet answered (long polls aside)."""
    return sum(
        r["status"] is None and str(r["method"]).lower() not in LONG_POLLS
        for fake in fakes
        for r in fake.requests
    )


async def settled(db: Path | str, *fakes: Any, timeout: float = 20.0) -> None:
    """Wait for the service's own "nothing left to do": no outbox row pending (a row stays
    pending until its send is answered and recorded) and no request to the fakes in flight.
    After this a later duplicate has nowhere to come from, so counting messages is final:
    the signal that replaces "sleep a while and check nothing more came"."""

    def quiet() -> bool:
        pending = db_rows(db, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
        return pending == [(0,)] and not in_flight(*fakes)

    await until(quiet, timeout, "the outbox drained and nothing in flight")


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str = "2m") -> Iterator[Path]:
    """A real filesystem of `size` at `path` (tmpfs), to fill up: needs root and mount.
    Raises OSError when it cannot be made (the caller skips)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise OSError(f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(directory: Path) -> Path:
    """Write a file into `directory` until its filesystem is full; returns the file."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for block in (65536, 4096, 512, 1):
            try:
                while f.write(b"\0" * block):
                    pass
            except OSError:
                pass
    return filler


def remount(path: Path, mode: str) -> None:
    """Remount the tmpfs at `path` read-only ("ro") or read-write ("rw"); instantaneous."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


@contextlib.contextmanager
def loop_filesystem(image: Path, mountpoint: Path, size_mb: int = 16) -> Iterator[Path]:
    """A real ext4 file system in a loop device at `mountpoint`: needs root and loop devices.
    Raises OSError when it cannot be made (the caller skips)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    with image.open("wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    for command in (
        ["mkfs.ext4", "-q", "-F", str(image)],
        ["mount", "-o", "loop", str(image), str(mountpoint)],
    ):
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError as exc:
            raise OSError(f"{command[0]} is not installed") from exc
        if done.returncode != 0:
            raise OSError(f"{' '.join(command[:2])}: {done.stderr.strip() or done.returncode}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def remount_loop(image: Path, mountpoint: Path) -> None:
    """Unmount and mount the image again (after `shut_down`, as an operator would)."""
    subprocess.run(["umount", str(mountpoint)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)


def shut_down(mountpoint: Path) -> None:
    """Make every later I/O on an ext4 file system fail (EIO), as a dying disk does: the
    kernel's EXT4_IOC_SHUTDOWN, without flushing the journal. Open files stay open."""
    fd = os.open(mountpoint, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
    finally:
        os.close(fd)


EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2
