"""Benchmarks (`make bench`, i.e. `python -m bench`): one module per row of the table.

Each row module has a `Params` dataclass (defaults: the full run; the smoke test passes a
tiny one), an async `run(params, workdir) -> dict` that measures and returns JSON-able
figures, and `rows(result) -> list[Row]` that turns them into table lines with their
targets and the peer's reference figures. `bench/__main__.py` runs them all in one go.
"""
