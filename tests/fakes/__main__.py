"""`python -m tests.fakes {telegram|slack|ria} [options]`: run one fake server standalone.

Same as `python -m tests.fakes.telegram` / `.slack` / `.ria`; the first stdout line is the
fake's URL.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("telegram", "slack", "ria"):
        sys.exit(
            "usage: python -m tests.fakes {telegram|slack|ria} [--port 0] [options; see --help]"
        )
    if args[0] == "telegram":
        from tests.fakes.telegram import main as run
    elif args[0] == "slack":
        from tests.fakes.slack import main as run
    else:
        from tests.fakes.ria import main as run
    run(args[1:])


if __name__ == "__main__":
    main()
