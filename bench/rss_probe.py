"""Where the service's memory goes, sampled from inside it: `python -m bench.rss_probe run`.

It runs the real CLI (`bot.cli.main`, the same arguments) in this process, plus a daemon
thread that every RSS_PROBE_EVERY_S (10) seconds appends one JSON line to RSS_PROBE_OUT:

- RSS split by /proc/self/smaps: the main heap ([heap]), each anonymous mapping (glibc's
  per-thread malloc arenas, pymalloc's 1 MiB arenas, big mallocs), files;
- glibc's mallinfo2 (bytes in use and free, all arenas) and SQLite's own counter
  (sqlite3_memory_used: every connection's page cache, schema and statements), and each
  connection's share of it (sqlite3_db_status: page cache, schema, prepared statements;
  sqlite3.connect is wrapped to know the connections, named by the thread that made them);
- Python's: blocks allocated, objects the collector sees, and with RSS_PROBE_TRACEMALLOC=1
  the memory tracemalloc holds, and the lines whose allocations grew since the first
  sample after RSS_PROBE_WARM_S (RSS_PROBE_OUT + ".top").

Nothing of it is in the service: `make soak` with SOAK_PROBE=1 starts the service through
this module instead of the `ria-calls-bot` script (bench/soak.py), so a soak answers what
grew. tracemalloc slows every allocation: keep it for a diagnosis, not for figures.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import sqlite3
import sys
import threading
import time
import tracemalloc
from collections import Counter
from typing import Any


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # bytes from sbrk (the main arena)
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",  # bytes in blocks of their own (mmap)
            "usmblks",
            "fsmblks",
            "uordblks",  # bytes in use
            "fordblks",  # bytes free (kept by malloc, in RSS or not)
            "keepcost",
        )
    ]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_libc.mallinfo2.restype = _MallInfo2
# the library _sqlite3 is linked to: dlopen hands back the one already loaded
_sqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
_sqlite.sqlite3_memory_used.restype = ctypes.c_int64
_sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
_sqlite.sqlite3_memory_highwater.argtypes = [ctypes.c_int]

_sqlite.sqlite3_db_status.argtypes = [
    ctypes.c_void_p,
    ctypes.c_int,
    ctypes.POINTER(ctypes.c_int),
    ctypes.POINTER(ctypes.c_int),
    ctypes.c_int,
]
for _name, _res, _args in (
    ("sqlite3_db_mutex", ctypes.c_void_p, [ctypes.c_void_p]),
    ("sqlite3_mutex_enter", None, [ctypes.c_void_p]),
    ("sqlite3_mutex_leave", None, [ctypes.c_void_p]),
    ("sqlite3_next_stmt", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
    ("sqlite3_sql", ctypes.c_char_p, [ctypes.c_void_p]),
    ("sqlite3_stmt_status", ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]),
):
    getattr(_sqlite, _name).restype = _res
    getattr(_sqlite, _name).argtypes = _args
STMT_MEMUSED = 99  # SQLITE_STMTSTATUS_MEMUSED
DB_STATUS = {"cache": 1, "schema": 2, "statements": 3}  # SQLITE_DBSTATUS_*_USED

MB = 2**20
# every connection the service opens, with the name of the thread that opened it
_connections: list[tuple[str, sqlite3.Connection]] = []
_connect = sqlite3.connect


def _tracked(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    conn = _connect(*args, **kwargs)
    _connections.append((threading.current_thread().name, conn))
    return conn


def _db_handle(conn: sqlite3.Connection) -> int | None:
    """The sqlite3* of a connection: CPython 3.11's pysqlite_Connection keeps it right after
    the object header (NULL once closed). A diagnosis only: nothing else reads it."""
    return ctypes.c_void_p.from_address(id(conn) + object.__basicsize__).value


def connection_memory() -> dict[str, dict[str, float]]:
    """Per open connection (by the thread that made it): its memory in MB, by kind."""
    out: dict[str, dict[str, float]] = {}
    cur, high = ctypes.c_int(), ctypes.c_int()
    for i, (thread, conn) in enumerate(_connections):
        db = _db_handle(conn)
        if not db:
            continue
        row = {}
        for kind, op in DB_STATUS.items():
            _sqlite.sqlite3_db_status(db, op, ctypes.byref(cur), ctypes.byref(high), 0)
            row[kind] = round(cur.value / MB, 3)
        row.update(statements_of(db))
        out[f"{thread}#{i}"] = row
    return out


def statements_of(db: int) -> dict[str, Any]:
    """A connection's prepared statements: how many, and the five biggest (kB, SQL). The
    connection's mutex is held meanwhile, so its thread cannot finalize one under us."""
    mutex = _sqlite.sqlite3_db_mutex(db)
    found: list[tuple[int, str]] = []
    _sqlite.sqlite3_mutex_enter(mutex)
    try:
        stmt = _sqlite.sqlite3_next_stmt(db, None)
        while stmt:
            sql = (_sqlite.sqlite3_sql(stmt) or b"").decode(errors="replace")
            found.append((_sqlite.sqlite3_stmt_status(stmt, STMT_MEMUSED, 0), sql))
            stmt = _sqlite.sqlite3_next_stmt(db, stmt)
    finally:
        _sqlite.sqlite3_mutex_leave(mutex)
    found.sort(reverse=True)
    return {
        "n_statements": len(found),
        "biggest": [[round(n / 1024, 1), " ".join(sql.split())[:120]] for n, sql in found[:5]],
    }


def smaps() -> dict[str, Any]:
    """RSS by kind of mapping, in kB, and each anonymous mapping's RSS by its address."""
    kinds: Counter[str] = Counter()
    anon: dict[str, list[int]] = {}  # start address -> [size kB, rss kB]
    name = key = ""
    size = 0
    with open("/proc/self/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):  # a mapping's header line
                parts = line.split()
                name = parts[5] if len(parts) > 5 else ""
                key = first.split("-")[0]
            elif first == "Size:":
                size = int(line.split()[1])
            elif first == "Rss:":
                rss = int(line.split()[1])
                if name == "[heap]":
                    kinds["heap"] += rss
                elif name == "":
                    # glibc's per-thread malloc arenas start 64 MiB-aligned; thread stacks
                    # are 8 MiB; the rest is pymalloc's arenas and big mallocs (mmap)
                    if int(key, 16) % (64 * MB) == 0 and size <= 64 * 1024:
                        kinds["thread_arenas"] += rss
                    elif size == 8192:
                        kinds["stacks"] += rss
                    else:
                        kinds["anon"] += rss
                    anon[key] = [size, rss]
                elif name.startswith("["):
                    kinds["other"] += rss
                else:
                    kinds["file"] += rss
    return {"kinds_kb": dict(kinds), "anon_kb": anon}


def sample(started: float, first_types: Counter[str] | None) -> tuple[dict[str, Any], Counter[str]]:
    mi = _libc.mallinfo2()
    maps = smaps()
    objects = gc.get_objects()
    types = Counter(type(o).__name__ for o in objects)
    del objects
    row: dict[str, Any] = {
        "pid": os.getpid(),
        "t": round(time.monotonic() - started, 1),
        "rss_kb": sum(maps["kinds_kb"].values()),
        **maps,
        "malloc": {
            "arena_mb": round(mi.arena / MB, 2),
            "mmap_mb": round(mi.hblkhd / MB, 2),
            "in_use_mb": round(mi.uordblks / MB, 2),
            "free_mb": round(mi.fordblks / MB, 2),
        },
        "sqlite_mb": round(_sqlite.sqlite3_memory_used() / MB, 3),
        "sqlite_peak_mb": round(_sqlite.sqlite3_memory_highwater(0) / MB, 3),
        "connections": connection_memory(),
        "py_blocks": sys.getallocatedblocks(),
        "gc_objects": sum(types.values()),
        "gc_frozen": gc.get_freeze_count(),
        "threads": [t.name for t in threading.enumerate()],
    }
    if first_types is not None:
        grew = types.copy()
        grew.subtract(first_types)
        row["types_grew"] = dict(grew.most_common(12))
    if tracemalloc.is_tracing():
        row["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / MB, 2)
        row["tracemalloc_own_mb"] = round(tracemalloc.get_tracemalloc_memory() / MB, 2)
    return row, types


def _loop(out: str, every: float, warm: float) -> None:
    started = time.monotonic()
    first_types: Counter[str] | None = None
    next_dump = warm
    while True:
        time.sleep(every)
        row, types = sample(started, first_types)
        if first_types is None and row["t"] >= warm:
            first_types = types
        if tracemalloc.is_tracing() and row["t"] >= next_dump:
            # analysed in another process (python -m bench.rss_probe top): comparing
            # snapshots here would grow this process by more than what it looks for
            next_dump = row["t"] + 120
            snapshot = tracemalloc.take_snapshot()
            snapshot.dump(f"{out}.{os.getpid()}.{'base' if first_types is types else 'last'}")
            del snapshot
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


def top(base: str, last: str, n: int = 25) -> None:
    """What grew between two snapshots the probe dumped, by line and by traceback."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    a = tracemalloc.Snapshot.load(base).filter_traces(ignore)
    b = tracemalloc.Snapshot.load(last).filter_traces(ignore)
    for stat in b.compare_to(a, "lineno")[:n]:
        print(stat)
    for stat in b.compare_to(a, "traceback")[: n // 3]:
        print(f"\n{stat}\n" + "\n".join(stat.traceback.format()))


def main() -> int:
    if sys.argv[1:2] == ["top"]:
        top(sys.argv[2], sys.argv[3])
        return 0
    out = os.environ.get("RSS_PROBE_OUT", "rss-probe.jsonl")
    if os.environ.get("RSS_PROBE_TRACEMALLOC") == "1":
        tracemalloc.start(int(os.environ.get("RSS_PROBE_FRAMES", "1")))
    every = float(os.environ.get("RSS_PROBE_EVERY_S", "10"))
    warm = float(os.environ.get("RSS_PROBE_WARM_S", "120"))
    sqlite3.connect = _tracked  # type: ignore[assignment]
    threading.Thread(target=_loop, args=(out, every, warm), name="rss-probe", daemon=True).start()
    from bot.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
