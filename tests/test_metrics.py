"""GET /metrics as an operator's Prometheus meets it (issue 14): the service started through
the CLI, RIA's sample posted to the webhook, alerts delivered to the fake Telegram, RIA
polled on the fake RIA; and who may read it (loopback, the bearer token, nobody else)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GROUP, RIA_KEY, RIA_USER, telegram_env
from tests.fakes.ria import FakeRia, make_call
from tests.fakes.telegram import FakeTelegram
from tests.reliability import db_rows
from tests.service import Service

SAMPLE = json.loads((Path(__file__).parent / "data" / "ria-sample.json").read_text())
DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana-dashboard.json"
P = "ria_calls_bot_"
TOKEN = "metrics-token-Zq8vR2kL0pX"
PUBLIC = "203.0.113.7"  # a documentation address: not loopback
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(service: Service, **headers: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{service.url}/metrics", headers=headers) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((P + name, frozenset(labels.items())))


async def until_scraped(
    service: Service, predicate: Callable[[Samples], bool], what: str, timeout: float = 30
) -> Samples:
    """Scrape until `predicate` holds: the database gauges are up to REFRESH_S old."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, text = await scrape(service)
        assert status == 200
        found = samples(text)
        if predicate(found):
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what}\n{text}")
        await asyncio.sleep(0.2)


def states(db: str) -> list[str]:
    return sorted(state for (state,) in db_rows(db, "SELECT state FROM outbox"))


async def test_the_counters_and_gauges_follow_calls_alerts_and_ria_requests(
    services: Any, telegram: FakeTelegram
) -> None:
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        telegram.mode = "down_500"  # the alerts wait in the outbox first
        service = await services(
            **telegram_env(telegram),
            RIA_API_KEY=RIA_KEY,
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url,
        )
        db = service.env["DATABASE_PATH"]
        status, body = await service.post(service.webhook_url, json=SAMPLE)
        assert (status, body) == (200, {"accepted": 4, "duplicates": 0})
        status, body = await service.post(service.webhook_url, json=make_call(901, "NOANSWER"))
        assert status == 200

        found = await until_scraped(
            service,
            lambda f: (
                value(f, "outbox_pending", channel="telegram", target=GROUP) == 4
                and value(f, "ria_requests_total", code="200") == 1
            ),
            "4 alerts pending, one RIA request",
        )
        assert value(found, "calls_stored_total", source="webhook", status="CANCEL") == 2
        assert value(found, "calls_stored_total", source="webhook", status="BUSY") == 1
        assert value(found, "calls_stored_total", source="webhook", status="ANSWER") == 1
        assert value(found, "calls_stored_total", source="webhook", status="NOANSWER") == 1
        assert value(found, "ria_quota_left", window="hour") == 29
        assert value(found, "ria_quota_left", window="month") == 999
        # the sample's calls are from 2021: only today's missed caller is waiting
        assert value(found, "callers_waiting") == 1
        assert (
            value(found, "messages_total", channel="telegram", kind="alert", result="sent") is None
        )

        telegram.mode = "ok"
        deadline = time.monotonic() + 30
        while states(db) != ["sent"] * 4:
            assert time.monotonic() < deadline, states(db)
            await asyncio.sleep(0.05)
        # one alert the platform refuses for good (about the message): given up
        telegram.fail_next(1, 400, "Bad Request: can't parse entities")
        status, _ = await service.post(
            service.webhook_url, json=make_call(902, "BUSY", caller="0671112233")
        )
        assert status == 200

        found = await until_scraped(
            service,
            lambda f: (
                value(f, "outbox_pending", channel="telegram", target=GROUP) is None
                and value(f, "messages_total", channel="telegram", kind="alert", result="failed")
                == 1
            ),
            "the backlog gone, one alert given up",
        )
        assert states(db) == ["failed"] + ["sent"] * 4
        assert value(found, "messages_total", channel="telegram", kind="alert", result="sent") == 4
        assert value(found, "alert_delivery_seconds_count", channel="telegram") == 4
        # they waited out the outage: none was delivered within 0.1 s of its arrival
        # each observation is from the call's arrival to the platform's answer: the same span
        # the outbox records (created_at is received_at; sent_at a moment after the answer)
        ((spans,),) = db_rows(
            db, "SELECT SUM(sent_at - created_at) FROM outbox WHERE state = 'sent'"
        )
        observed = value(found, "alert_delivery_seconds_sum", channel="telegram")
        assert observed is not None and abs(observed - spans) < 0.2, (observed, spans)
        assert spans > 1.0  # they waited out the outage
        assert value(found, "callers_waiting") == 2
        assert value(found, "summaries_sent_total", period="daily") is None
        assert await service.stop() == 0


async def test_only_loopback_or_the_bearer_token_opens_it(services: Any) -> None:
    service = await services(METRICS_TOKEN=TOKEN)
    status, content_type, text = await scrape(service)
    assert status == 200
    assert content_type.startswith("text/plain") and "version=" in content_type
    assert f"# TYPE {P}calls_stored_total counter" in text
    # through a trusted proxy (the test client is loopback, as Caddy on the same host would
    # be), a request is judged by the client the proxy names: a public one needs the token
    relayed = {"X-Forwarded-For": PUBLIC}
    assert (await scrape(service, **relayed))[0] == 404
    assert (await scrape(service, **relayed, Authorization="Bearer wrong-token"))[0] == 404
    assert (await scrape(service, **relayed, Authorization=f"Basic {TOKEN}"))[0] == 404
    status, _, text = await scrape(service, **relayed, Authorization=f"Bearer {TOKEN}")
    assert status == 200 and f"{P}calls_stored_total" in text
    # a client that claims to be loopback from afar proves nothing: the proxy appended PUBLIC
    spoofed = {"X-Forwarded-For": f"127.0.0.1, {PUBLIC}"}
    assert (await scrape(service, **spoofed))[0] == 404
    assert await service.stop() == 0
    assert TOKEN not in service.output()


async def test_without_a_token_a_relayed_public_client_gets_404(services: Any) -> None:
    service = await services()
    assert (await scrape(service, **{"X-Forwarded-For": PUBLIC}))[0] == 404
    assert (await scrape(service, Authorization="Bearer anything", **{"X-Forwarded-For": PUBLIC}))[
        0
    ] == 404
    assert (await scrape(service))[0] == 200
    assert await service.stop() == 0


def dashboard_names() -> set[str]:
    """Every ria_calls_bot_* name the dashboard's queries use."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    assert exprs, "the dashboard queries nothing"
    return {name for expr in exprs for name in re.findall(rf"\b{P}[a-z_]+", expr)}


def exposed_names(text: str) -> set[str]:
    """The sample names a scrape declares (a family with no sample yet still counts)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes.get(family.type, [""])
    }


async def test_every_metric_the_grafana_dashboard_queries_exists(services: Any) -> None:
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        service = await services(RIA_API_KEY=RIA_KEY, RIA_USER_ID=RIA_USER, RIA_API_URL=ria.url)
        status, _ = await service.post(service.webhook_url, json=SAMPLE)
        assert status == 200
        _, _, text = await scrape(service)
        missing = dashboard_names() - exposed_names(text)
        assert not missing, f"the dashboard queries names /metrics does not have: {missing}"
        assert await service.stop() == 0
