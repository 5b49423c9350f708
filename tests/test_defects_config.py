"""Settings that used to fail silently or obscurely (issue 10 items 5, 8, 20, 22; issue 15
items 5, 6): each now stops the service with one `config error:` line naming the setting."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from tests.conftest import telegram_env
from tests.fakes.ria import SAMPLE
from tests.fakes.telegram import FakeTelegram
from tests.service import base_env, run_cli
from tests.test_config import clean_env  # noqa: F401  (autouse: nothing from the shell)

RIA_STATUSES = ("ANSWER", "NOANSWER", "CANCEL", "BUSY", "BYSY", "FAILED", "CONGESTION")
ROOT = Path(__file__).resolve().parent.parent


def one_line(error: ConfigError) -> str:
    assert len(error.lines) == 1, error.lines
    return error.lines[0]


def config_errors(stderr: str) -> list[str]:
    """The `config error:` lines, after checking nothing else went wrong on the way out."""
    assert "Traceback" not in stderr, stderr
    assert "stopped" not in stderr, stderr  # it never started: no "stopped" line
    return [line for line in stderr.splitlines() if line.startswith("config error: ")]


# --- item 5: MISSED_STATUSES --------------------------------------------------------------


@pytest.mark.parametrize("value", ["NO_ANSWER", "CANCELED", "", " , ", "NOANSWER,MISSED"])
def test_missed_statuses_typo_is_an_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MISSED_STATUSES", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    line = one_line(info.value)
    assert line.startswith("MISSED_STATUSES: ")
    for status in RIA_STATUSES:
        assert status in line


def test_every_ria_status_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISSED_STATUSES", "answer, NoAnswer,CANCEL,bysy,BUSY,FAILED,CONGESTION")
    statuses = load_settings().missed_statuses
    assert statuses == ("ANSWER", "NOANSWER", "CANCEL", "BUSY", "FAILED", "CONGESTION")


@pytest.mark.parametrize("command", ["run", "check"])
@pytest.mark.parametrize("value", ["NO_ANSWER", ""])
async def test_missed_statuses_typo_stops_run_and_check(
    tmp_path: Path, command: str, value: str
) -> None:
    env = base_env(tmp_path)
    env["MISSED_STATUSES"] = value  # base_env drops empty values; this one must stay
    code, out, err = await run_cli(env, tmp_path, command, timeout=30)
    assert code == 2, out + err
    [line] = config_errors(err)
    assert line.startswith("config error: MISSED_STATUSES: ")
    assert "CONGESTION" in line and "BYSY" in line


# --- item 22: RETENTION_DAYS --------------------------------------------------------------


@pytest.mark.parametrize(("value", "ok"), [("0", True), ("15", True), ("14", False), ("3", False)])
def test_retention_minimum_is_15_days(
    monkeypatch: pytest.MonkeyPatch, value: str, ok: bool
) -> None:
    monkeypatch.setenv("RETENTION_DAYS", value)
    if ok:
        assert load_settings().retention_days == int(value)
        return
    with pytest.raises(ConfigError) as info:
        load_settings()
    line = one_line(info.value)
    assert line.startswith(f'RETENTION_DAYS: "{value}" is too short')
    assert "at least 15" in line and "0 (keep for ever)" in line
    assert "week before" in line  # says why


# --- issue 15 item 5: TELEGRAM_WEBHOOK_SECRET -------------------------------------------


@pytest.mark.parametrize(
    ("secret", "ok"),
    [
        ("a", False),
        ("x" * 15, False),
        ("x" * 16, True),
        ("y" * 128, True),
        ("z" * 129, False),
        ("tg-hook/secret-4242", False),
        ("tg hook secret 4242", False),
        ("Tg_Hook-Secret_42", True),
    ],
)
def test_telegram_webhook_secret_like_ria_one(
    monkeypatch: pytest.MonkeyPatch, secret: str, ok: bool
) -> None:
    monkeypatch.setenv("PUBLIC_URL", "https://bot.example.com")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", secret)
    if ok:
        settings = load_settings()
        assert settings.telegram_webhook_secret is not None
        assert settings.telegram_webhook_secret.get_secret_value() == secret
        return
    with pytest.raises(ConfigError) as info:
        load_settings()
    line = one_line(info.value)
    assert line == (
        "TELEGRAM_WEBHOOK_SECRET: expects 16-128 characters of A-Z a-z 0-9 _ - "
        "(it is part of a URL)"
    )


# --- item 20: quotes and inline comments, as `docker run --env-file` would pass them ------


@pytest.mark.parametrize(
    ("name", "value", "what"),
    [
        ("LANGUAGE", '"en"', "quotes"),
        ("TIMEZONE", "'Europe/Kyiv'", "quotes"),
        ("TELEGRAM_BOT_TOKEN", '"123456:SECRET-token"', "quotes"),
        ("LANGUAGE", "en  # English", "comment"),
        ("RETENTION_DAYS", "30 # a month", "comment"),
        ("TELEGRAM_BOT_TOKEN", "123456:SECRET-token  # from @BotFather", "comment"),
    ],
)
def test_docker_style_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, what: str
) -> None:
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", "42")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    line = one_line(info.value)
    assert line.startswith(f"{name}: ")
    assert what in line and "docker --env-file" in line
    assert "SECRET" not in line  # the value itself is never echoed: it may be a token


def test_dotenv_with_quotes_or_comments_is_refused(tmp_path: Path) -> None:
    # python-dotenv strips both, so `make run` would work; `docker run --env-file .env`
    # would not: the same file must do for both
    (tmp_path / ".env").write_text(
        "# a comment line is fine\n"
        "LANGUAGE=en\n"
        'TIMEZONE="Europe/Kyiv"\n'
        "\n"
        "HTTP_PORT=8080   # the default\n"
        "SUMMARY_TIME=\n"
        "RIA_API_URL=https://developers.ria.com/#fragment-is-not-a-comment\n"
        "SOMETHING_ELSE='not ours'\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.lines == [
        "TIMEZONE: in .env, the value is in quotes; write it without them "
        "(docker --env-file keeps quotes as part of the value)",
        'HTTP_PORT: in .env, the value ends with a comment ("  # ..."); put comments on a '
        "line of their own (docker --env-file keeps it as part of the value)",
    ]


def test_env_example_is_docker_compatible() -> None:
    # the file users copy to .env: every line must pass as it stands
    settings = load_settings(_env_file=ROOT / ".env.example")
    assert settings.missed_statuses == ("NOANSWER", "CANCEL", "BUSY")


async def test_quoted_env_value_stops_run(tmp_path: Path) -> None:
    env = base_env(tmp_path, LANGUAGE='"en"')
    code, out, err = await run_cli(env, tmp_path, "run", timeout=30)
    assert code == 2, out + err
    assert config_errors(err) == [
        "config error: LANGUAGE: the value is in quotes; write it without them "
        "(docker --env-file keeps quotes as part of the value)"
    ]


# --- item 8: start-up failures that are settings in disguise ------------------------------


async def test_http_port_out_of_range(tmp_path: Path) -> None:
    code, out, err = await run_cli(base_env(tmp_path, HTTP_PORT="99999"), tmp_path, "run")
    assert code == 2, out + err
    assert config_errors(err) == [
        'config error: HTTP_PORT: "99999" is not a port (1-65535, or 0 for any free port)'
    ]
    assert "Input should" not in err  # not pydantic's wording


@pytest.mark.parametrize("where", ["under a file", "a folder", "impossible"])
async def test_database_path_that_cannot_be_opened(tmp_path: Path, where: str) -> None:
    (tmp_path / "plain-file").write_text("not a folder")
    (tmp_path / "folder").mkdir()
    path = {
        "under a file": tmp_path / "plain-file" / "calls.db",
        "a folder": tmp_path / "folder",
        "impossible": Path("/proc/no-such-process/calls.db"),
    }[where]
    env = base_env(tmp_path, DATABASE_PATH=str(path))
    code, out, err = await run_cli(env, tmp_path, "run", timeout=30)
    assert code == 2, out + err
    [line] = config_errors(err)
    assert line.startswith(f"config error: DATABASE_PATH: cannot open {path}")
    assert "set it to a file in a folder this user can create and write" in line
    assert err.strip().splitlines()[-1] == line  # nothing after it
    assert "[Errno" not in err and "unable to open database file" not in err


async def test_port_in_use(tmp_path: Path, telegram: FakeTelegram) -> None:
    # with a chat channel configured too: the clean-up of a half-made start stays quiet
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = base_env(tmp_path, HTTP_PORT=str(port), **telegram_env(telegram))
        code, out, err = await run_cli(env, tmp_path, "run", timeout=30)
    assert code == 2, out + err
    assert config_errors(err) == [
        f"config error: HTTP_PORT: port {port} is already in use on 127.0.0.1 (another "
        "program, or ria-calls-bot already running); stop that one or set HTTP_PORT to a "
        "free port"
    ]
    assert err.strip().splitlines()[-1].startswith("config error: HTTP_PORT")
    assert "RIA webhook URL" not in out


# --- issue 15 item 6: the generated RIA webhook secret is shown once ----------------------


async def test_generated_secret_shown_once_then_masked(services, tmp_path: Path) -> None:
    first = await services(RIA_WEBHOOK_SECRET="")
    match = re.search(r"RIA webhook URL: \S+/webhooks/ria/([A-Za-z0-9_-]{16,})", first.stdout())
    assert match, first.stdout()
    secret = match[1]
    assert await first.stop() == 0

    again = await services(RIA_WEBHOOK_SECRET="")
    out = again.stdout()
    assert "RIA webhook URL: " in out and "/webhooks/ria/********" in out
    assert "check --show-webhook-url" in out
    assert secret not in out + again.stderr()
    # the same secret still works
    status, body = await again.post(f"/webhooks/ria/{secret}", json=SAMPLE)
    assert (status, body) == (200, {"accepted": 4, "duplicates": 0})
    assert await again.stop() == 0
    assert secret not in again.stdout() + again.stderr()
