"""SQLite storage: schema, calls, outbox, stats. Imports nothing from bot/ or handlers/."""

import sys


def _import_sqlite_utils_without_numpy() -> None:
    """Import sqlite-utils with numpy and pandas hidden from it.

    sqlite-utils imports numpy and pandas when they are installed, only to adapt their types,
    which this service never stores. numpy is installed with matplotlib (the summary chart)
    and costs 15 MB of resident memory and ~50 ms of start-up (found by `make bench`) in a
    process that may not draw a chart for hours. Hidden only while sqlite-utils is first
    imported (this package is imported before anything else imports it); `import numpy`
    afterwards, matplotlib's, works as usual.

    Why still this, not a cleaner way: sqlite-utils 4 imports numpy unconditionally when it
    is installed, and the service's handle on the database is a sqlite_utils.Database from
    the first statement on, so sqlite-utils cannot be imported late. tests/test_imports.py
    checks the running service's memory map, not sqlite-utils' internals: drop this when a
    sqlite-utils release imports numpy lazily and that test still passes.
    """
    if "sqlite_utils" in sys.modules:
        return
    hidden = [name for name in ("numpy", "pandas") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` -> ImportError
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


_import_sqlite_utils_without_numpy()
