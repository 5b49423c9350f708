"""The Docker image, built and run for real with podman (`make test-container`).

Builds the Dockerfile against a local stand-in for `python:3.x-slim` with the scripts in
`../shared/container/` (beside the repository; override with CONTAINER_TOOLS=DIR), runs it
with `--network host` against the fake Telegram and RIA servers of this test, hardened exactly
as compose.yaml runs it (read-only root, a tmpfs /tmp, no capabilities, no-new-privileges,
memory and pids limits: tests/test_deploy_compose.py reads them from compose.yaml), and checks
what an operator relies on: healthy (by the image's HEALTHCHECK too), alerts, non-root, a clean
SIGTERM stop, the data surviving on its volume, and `IMAGE stats today`. Size and timings are printed and written to
bench/results/container.json, not asserted.

Skipped when podman cannot be set up here; REQUIRE_CONTAINER_TESTS=1 (CI) makes that a failure.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from handlers.ria.records import to_e164
from tests.conftest import GROUP, RIA_KEY, RIA_USER, TG_TOKEN
from tests.fakes.ria import KYIV, SAMPLE, FakeRia, make_call
from tests.fakes.telegram import FakeTelegram
from tests.service import WEBHOOK_SECRET, free_port
from tests.test_deploy_compose import hardening_args

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parents[1]
TOOLS = Path(os.environ.get("CONTAINER_TOOLS") or REPO.parent / "shared" / "container")
IMAGE = os.environ.get("CONTAINER_TEST_IMAGE", "localhost/ria-calls-bot:test")
RESULTS = REPO / "bench" / "results" / "container.json"
REQUIRED = os.environ.get("REQUIRE_CONTAINER_TESTS") == "1"
MISSED = ("NOANSWER", "CANCEL", "BUSY")
MB = 1_000_000  # as podman and docker count
HARDENED = hardening_args("bot")  # compose.yaml's settings, as podman run arguments


# --- podman ----------------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"REQUIRE_CONTAINER_TESTS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _podman_works() -> bool:
    if shutil.which("podman") is None:
        return False
    try:
        done = subprocess.run(["podman", "info"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="module")
def podman_ready() -> None:
    """podman works, or is set up with ../shared/container/setup (root only), or skip."""
    if _podman_works():
        return
    setup = TOOLS / "setup"
    if not setup.is_file():
        _unavailable(f"podman is not usable and {setup} is missing (set CONTAINER_TOOLS)")
    if os.geteuid() != 0:
        _unavailable(f"podman is not usable; run `sudo bash {setup}` first")
    done = subprocess.run(["bash", str(setup)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not _podman_works():
        _unavailable(f"podman could not be set up by {setup}: {done.stderr.strip()[-800:]}")


def podman_sync(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"podman {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return done.stdout


async def podman(*args: str, limit_s: float = 120, check: bool = True) -> tuple[int, str, str]:
    """podman without blocking the event loop: the fakes must keep answering meanwhile."""
    proc = await asyncio.create_subprocess_exec(
        "podman", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    rc = proc.returncode
    assert rc is not None
    text, errors = out.decode(errors="replace"), err.decode(errors="replace")
    if check:
        assert rc == 0, f"podman {' '.join(args[:3])} ... exited {rc}:\n{errors}\n{text}"
    return rc, text, errors


# --- the image -------------------------------------------------------------------------------


@dataclass
class Image:
    name: str
    base: str
    config: dict[str, Any]


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    """Figures gathered by the tests; printed and written to bench/results at the end."""
    figures: dict[str, Any] = {"image": IMAGE}
    yield figures
    figures["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print("\ncontainer figures (targets: <= 250 MB over the base, healthy <= 3 s):")
    for key, value in figures.items():
        print(f"  {key:>22}: {value}")
    print(f"  written to {RESULTS.relative_to(REPO)}")


@pytest.fixture(scope="module")
def image(podman_ready: None, report: dict[str, Any]) -> Image:
    t0 = time.monotonic()
    base = subprocess.run(
        ["bash", str(TOOLS / "base-image")], capture_output=True, text=True, timeout=900
    )
    assert base.returncode == 0, f"base-image failed:\n{base.stderr}"
    base_name = base.stdout.strip().splitlines()[-1]
    report["base_image"] = base_name
    report["base_image_prep_s"] = round(time.monotonic() - t0, 1)

    # the docker format keeps HEALTHCHECK (podman's default OCI format drops it)
    cmd = ["bash", str(TOOLS / "build"), str(REPO), IMAGE, "--format", "docker"]
    no_cache = os.environ.get("CONTAINER_NO_CACHE") == "1"
    if no_cache:
        cmd.append("--no-cache")
    t0 = time.monotonic()
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    report["build_s"] = round(time.monotonic() - t0, 1)
    report["build_cache"] = "off" if no_cache else "on (layers reused when unchanged)"
    assert built.returncode == 0, f"image build failed:\n{built.stderr[-6000:]}"

    size = int(podman_sync("image", "inspect", "--format", "{{.Size}}", IMAGE))
    base_size = int(podman_sync("image", "inspect", "--format", "{{.Size}}", base_name))
    report["image_size_mb"] = round(size / MB, 1)
    report["base_size_mb"] = round(base_size / MB, 1)
    report["over_base_mb"] = round((size - base_size) / MB, 1)
    config = json.loads(podman_sync("image", "inspect", IMAGE))[0]
    return Image(IMAGE, base_name, config)


def test_image_is_configured_for_self_hosting(image: Image) -> None:
    config = image.config["Config"]
    user = config.get("User") or "root"
    assert user.split(":")[0] not in ("", "root", "0"), f"image runs as {user!r}"
    assert config["Entrypoint"] == ["ria-calls-bot"]
    assert config["Cmd"] == ["run"]
    assert "8080/tcp" in config["ExposedPorts"]
    assert "/data" in config["Volumes"]
    assert "DATABASE_PATH=/data/calls.db" in config["Env"]
    health = image.config.get("Healthcheck") or config.get("Healthcheck")
    assert health, "no HEALTHCHECK (built in OCI format?)"
    test = " ".join(health["Test"])
    assert "/healthz" in test and "curl" not in test

    # what is inside: the service with its chart extra, nothing from [test], no build tools
    probe = (
        "import importlib.util as u, shutil, json; "
        "print(json.dumps({'modules': [m for m in ('bot', 'handlers', 'storage', 'matplotlib',"
        " 'telegram', 'pytest', 'hypothesis', 'ruff', 'pip', 'setuptools') if u.find_spec(m)],"
        " 'tools': [t for t in ('gcc', 'cc', 'make', 'curl', 'pip', 'pip3') if shutil.which(t)]}))"
    )
    out = podman_sync(
        "run", "--rm", "--network", "none", "--entrypoint", "python", image.name, "-c", probe
    )
    found = json.loads(out.strip().splitlines()[-1])
    assert found["modules"] == ["bot", "handlers", "storage", "matplotlib", "telegram"]
    assert found["tools"] == []
    # the chart really renders (fonts, Agg backend, writable matplotlib cache)
    chart = (
        "import io, matplotlib.pyplot as plt; f, ax = plt.subplots(); ax.bar(['09', '10'],"
        " [3, 1]); ax.set_title('Дзвінки'); b = io.BytesIO(); f.savefig(b, format='png');"
        " print(len(b.getvalue()))"
    )
    # (hardened: read-only root, so matplotlib's cache must live on the tmpfs, silently)
    done = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--network",
            "none",
            *HARDENED,
            "--entrypoint",
            "python",
            image.name,
            "-c",
            chart,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) > 1000
    assert "matplotlib" not in done.stderr.lower(), done.stderr


# --- running it ------------------------------------------------------------------------------


def today_records(now: datetime) -> list[dict[str, Any]]:
    """RIA's sample once more, renumbered and moved into the last minutes of today (Kyiv),
    plus a missed call from a new number and an answered one from a number that missed."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)

    def at(i: int) -> datetime:
        moment = now - timedelta(seconds=20 * (i + 1))
        return moment if moment >= midnight else midnight + timedelta(seconds=i)

    records = []
    for i, record in enumerate(copy.deepcopy(SAMPLE)):
        record["call_id"] += 100_000_000
        record["date"] = at(i).strftime("%Y-%m-%dT%H:%M:%S")
        records.append(record)
    records.append(make_call(900_000_001, "NOANSWER", when=at(4), caller="0501234567"))
    records.append(make_call(900_000_002, "ANSWER", when=at(5), caller=SAMPLE[1]["caller_phone"]))
    return records


def alert_numbers(records: list[dict[str, Any]]) -> list[str]:
    return sorted(to_e164(r["caller_phone"]) for r in records if r["status"] in MISSED)


def env_args(env: dict[str, str]) -> list[str]:
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


class Containers:
    """Named containers and a volume for one test, all removed at the end."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.tag = uuid.uuid4().hex[:8]
        self.volume = f"ria-test-data-{self.tag}"
        self.names: list[str] = []

    async def start(self, env: dict[str, str], url: str, limit_s: float = 60) -> tuple[str, float]:
        """`podman run -d`, then wait for /healthz 200; returns (name, seconds to healthy)."""
        name = f"ria-test-{self.tag}-{len(self.names) + 1}"
        self.names.append(name)
        t0 = time.monotonic()
        await podman(
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "-v",
            f"{self.volume}:/data",
            *HARDENED,
            *env_args(env),
            self.image,
        )
        last_state_check = t0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() - t0 < limit_s:
                try:
                    async with session.get(f"{url}/healthz") as resp:
                        if resp.status == 200:
                            return name, time.monotonic() - t0
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() - last_state_check > 1:
                    last_state_check = time.monotonic()
                    if await self.state(name, "{{.State.Running}}") != "true":
                        break
                await asyncio.sleep(0.02)
        raise AssertionError(f"{name} not healthy within {limit_s} s:\n{await self.logs(name)}")

    async def state(self, name: str, fmt: str) -> str:
        return (await podman("inspect", "--format", fmt, name))[1].strip()

    async def logs(self, name: str) -> str:
        _, out, err = await podman("logs", name, check=False)
        return out + err

    async def stop(self, name: str) -> tuple[float, int]:
        """`podman stop -t 10`: (seconds it took, exit code)."""
        t0 = time.monotonic()
        await podman("stop", "-t", "10", name, limit_s=60)
        took = time.monotonic() - t0
        return took, int(await self.state(name, "{{.State.ExitCode}}"))

    async def cleanup(self) -> None:
        for name in self.names:
            await podman("rm", "--force", "--time", "0", name, check=False, limit_s=60)
        await podman("volume", "rm", "--force", self.volume, check=False, limit_s=60)


async def post(url: str, payload: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.post(url, json=payload) as resp:
            return resp.status, await resp.json(content_type=None)


async def wait_until(predicate: Any, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def test_container_alerts_stops_cleanly_and_keeps_its_data(
    image: Image, report: dict[str, Any]
) -> None:
    containers = Containers(image.name)
    telegram = FakeTelegram(token=TG_TOKEN)
    ria_api = FakeRia(api_key=RIA_KEY, user_id=RIA_USER)
    async with telegram as tg, ria_api as ria:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        webhook = f"{url}/webhooks/ria/{WEBHOOK_SECRET}"
        env = {
            "HTTP_HOST": "127.0.0.1",  # host network: keep the port off other interfaces
            "HTTP_PORT": str(port),
            "RIA_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TELEGRAM_BOT_TOKEN": TG_TOKEN,
            "TELEGRAM_CHAT_IDS": GROUP,
            "TELEGRAM_API_URL": tg.url,
            "RIA_API_KEY": RIA_KEY,
            "RIA_USER_ID": RIA_USER,
            "RIA_API_URL": ria.url,
            "TIMEZONE": "Europe/Kyiv",
            "LANGUAGE": "en",
            "SUMMARY_TIME": "",  # no daily summary among the alerts counted here
            "SUMMARY_WEEKLY": "off",  # nor a weekly one on Mondays
        }
        try:
            # 1. starts healthy, by the image's own HEALTHCHECK too
            first, healthy_s = await containers.start(env, url)
            report["healthy_s"] = round(healthy_s, 2)
            await podman("healthcheck", "run", first)
            assert await containers.state(first, "{{.State.Health.Status}}") == "healthy"

            # 2. the service is PID 1 and not root
            _, uid, _ = await podman("exec", first, "id", "-u")
            assert uid.strip() != "0"
            _, proc1, _ = await podman("exec", first, "cat", "/proc/1/cmdline", "/proc/1/status")
            assert "ria-calls-bot" in proc1
            uids = re.search(r"^Uid:\s+(\d+)", proc1, re.M)
            assert uids and uids.group(1) != "0", proc1
            # hardened as compose runs it: no capabilities, no privilege gain, read-only root
            assert re.search(r"^CapEff:\s+0+$", proc1, re.M), proc1
            assert re.search(r"^NoNewPrivs:\s+1$", proc1, re.M), proc1
            rc, _, err = await podman("exec", first, "touch", "/opt/venv/x", check=False)
            assert rc != 0 and "read-only" in err.lower(), err

            # 3. RIA's sample: 4 calls stored, 3 missed -> 3 alerts in the group
            sample = copy.deepcopy(SAMPLE)
            assert await post(webhook, sample) == (200, {"accepted": 4, "duplicates": 0})
            wanted = alert_numbers(sample)
            assert len(wanted) == 3
            messages = await tg.wait_for_messages(3, timeout=20, chat_id=GROUP)
            assert sorted(n for m in messages for n in wanted if n in (m["text"] or "")) == wanted

            # calls dated today, for `stats today` below
            now = datetime.now(KYIV).replace(tzinfo=None, microsecond=0)
            today = today_records(now)
            assert await post(webhook, today) == (200, {"accepted": len(today), "duplicates": 0})
            # a group takes a few messages in a burst; a backlog goes out as one message
            # listing every caller, so count callers, not messages
            expected = sorted(wanted + alert_numbers(today))

            def visible() -> list[str]:
                texts = [m["text"] or "" for m in tg.messages_for(GROUP)]
                return sorted(n for n in set(expected) for t in texts for _ in range(t.count(n)))

            assert await wait_until(lambda: visible() == expected, 30), visible()
            total_alerts = len(tg.messages_for(GROUP))
            # the poller reached the fake RIA from inside the container
            assert await wait_until(lambda: ria.request_count >= 1, 15)

            # 4. SIGTERM: exit 0 within 5 s, no secret in the logs
            stop_s, code = await containers.stop(first)
            report["stop_s"] = round(stop_s, 2)
            logs = await containers.logs(first)
            assert code == 0, logs
            assert stop_s < 5, f"podman stop took {stop_s:.1f} s"
            for secret in (TG_TOKEN, RIA_KEY, WEBHOOK_SECRET):
                assert secret not in logs

            # 5. a new container on the same volume: nothing is alerted again
            second, healthy_again_s = await containers.start(env, url)
            report["healthy_again_s"] = round(healthy_again_s, 2)
            assert await post(webhook, sample) == (200, {"accepted": 0, "duplicates": 4})
            assert await post(webhook, today) == (200, {"accepted": 0, "duplicates": len(today)})
            # SIGTERM flushes the outbox before exit: a late duplicate would be sent by then,
            # or still be pending, which `status` on the volume shows
            stop_s, code = await containers.stop(second)
            assert code == 0, await containers.logs(second)
            assert len(tg.messages_for(GROUP)) == total_alerts
            assert tg.rate_limited == 0
            # no alert is waiting either (an edit of a resolved alert may be: the group's
            # 20 a minute hold it, and it is not an alert sent twice)
            query = (
                "import sqlite3; print(sqlite3.connect('/data/calls.db').execute("
                "\"SELECT COUNT(*) FROM outbox WHERE kind = 'missed_call' AND state = 'pending'\""
                ").fetchone()[0])"
            )
            rc, out, err = await podman(
                "run", "--rm", "-v", f"{containers.volume}:/data", "--entrypoint", "python",
                image.name, "-c", query,
            )  # fmt: skip
            assert rc == 0 and out.strip() == "0", out + err

            # 6. `IMAGE stats today` on the same volume prints today's figures
            period = "today" if datetime.now(KYIV).date() == now.date() else now.date().isoformat()
            rc, out, err = await podman(
                "run",
                "--rm",
                "--network",
                "host",
                "-v",
                f"{containers.volume}:/data",
                *env_args(env),
                image.name,
                "stats",
                period,
                check=False,
            )
            assert rc == 0, err + out
            check_stats(out, today, now.date())
        finally:
            await containers.cleanup()


def check_stats(out: str, records: list[dict[str, Any]], day: date) -> None:
    """The figures of `stats` (LANGUAGE=en) against those computed from what was posted."""
    mine = [r for r in records if r["date"].startswith(day.isoformat())]
    total = len(mine)
    answered = sum(r["status"] == "ANSWER" for r in mine)
    missed = sum(r["status"] in MISSED for r in mine)
    callers = len({to_e164(r["caller_phone"]) for r in mine})

    def number(pattern: str) -> int:
        match = re.search(pattern, out)
        assert match, f"{pattern!r} not in the output:\n{out}"
        return int(match.group(1))

    assert number(r"Calls: (\d+)") == total, out
    assert number(r"callers: (\d+)") == callers, out
    assert number(r"Answered: (\d+)") == answered, out
    assert number(r"Answered: \d+ \((\d+)%\)") == round(100 * answered / total), out
    assert number(r"Missed: (\d+)") == missed, out
