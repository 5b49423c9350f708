"""The ingest row's yardstick: an aiohttp server whose webhook handler only parses the JSON.

`python -m bench.bare_server --port N` serves POST /webhooks/ria/{secret} and answers what
the service answers, without storing anything. It runs as its own process, like the service,
so both are measured the same way by the same load generator.
"""

from __future__ import annotations

import argparse

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    records = await request.json()
    accepted = len(records) if isinstance(records, list) else 1
    return web.json_response({"accepted": accepted, "duplicates": 0})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = web.Application()
    app.add_routes([web.post("/webhooks/ria/{secret}", handle), web.get("/healthz", healthz)])
    # no access log, as in the service
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
