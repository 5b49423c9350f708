"""The routing file's refusals (bot/config_file.py, bot/config_hours.py): every kind of bad
value is one line `FILE:LINE: KEY: what is wrong`, read from a real file by the real loader
with Settings as the service builds them (Telegram configured, Slack not)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, Settings
from bot.config_file import config_path, load
from tests.conftest import GROUP, TG_TOKEN

GOOD_ACCOUNT = """
[[account]]
name = "north"
user_id = "1505029"
api_key = "k"
webhook_secret = "north-secret-0123456789"
"""


def _settings(**kw: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_bot_token=TG_TOKEN,
        telegram_chat_ids=GROUP,
        ria_webhook_secret="test-webhook-secret-0123456789",
        **kw,
    )


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "routes.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(path, _settings())
    [line] = caught.value.lines
    prefix = f"{path}:"
    assert line.startswith(prefix), line
    return line[len(prefix) :]


CASES = [
    ("hours = 3\n", "1: hours: expects a table"),
    ("account = 3\n", "1: account: expects [[account]] tables"),
    ("[[account]]\nuser_id = 1\n", "1: account[1].name: is required (a non-empty string)"),
    (
        GOOD_ACCOUNT + GOOD_ACCOUNT,
        '9: account[2].name: "north" is used twice',
    ),
    (
        '[[account]]\nname = "a"\nuser_id = "12x"\n',
        '3: account[1].user_id: "12x" is not a RIA user id (digits only)',
    ),
    (
        '[[account]]\nname = "a"\nuser_id = "1"\napi_key = ""\n',
        '4: account[1].api_key: is required (the value, or "env:NAME" to read it from the environment)',
    ),
    (
        '[[account]]\nname = "a"\nuser_id = "1"\napi_key = "k"\nwebhook_secret = "short"\n',
        "5: account[1].webhook_secret: expects 16-128 characters of A-Z a-z 0-9 _ - (it is part of a URL)",
    ),
    (
        GOOD_ACCOUNT
        + '[[account]]\nname = "south"\nuser_id = "2"\napi_key = "k"\nwebhook_secret = "north-secret-0123456789"\n',
        "11: account[2].webhook_secret: is the same as another account's",
    ),
    (
        GOOD_ACCOUNT + "monthly_quota = -1\n",
        '7: account[1].monthly_quota: "-1" is not a number of requests (0 or more)',
    ),
    (
        '[[manager]]\nname = "O"\nphones = ["hello"]\n',
        '3: manager[1].phones: "hello" is not a phone number (e.g. 0731375686)',
    ),
    (
        '[[manager]]\nname = "O"\nphones = "0441112233"\n[[manager]]\nname = "I"\nphones = ["044 111 22 33"]\n',
        '6: manager[2].phones: "044 111 22 33" is already O\'s',
    ),
    (
        '[[manager]]\nname = "O"\nphones = "0441112233"\ntelegram = -5\n',
        '4: manager[1].telegram: "-5" is not a Telegram user id (a positive number)',
    ),
    (
        '[[manager]]\nname = "O"\nphones = "0441112233"\nslack = "olena"\n',
        '4: manager[1].slack: "olena" is not a Slack user id (e.g. U0123ABCD)',
    ),
    (
        '[[manager]]\nname = "O"\nphones = "0441112233"\npersonal = "yes"\n',
        "4: manager[1].personal: expects true or false",
    ),
    (
        '[[manager]]\nname = "O"\nphones = "0441112233"\npersonal = true\n',
        "4: manager[1].personal: needs telegram = <user id> (the private chat to send to)",
    ),
    (
        '[[route]]\ntelegram = "12ab"\n',
        '2: route[1].telegram: "12ab" is not a chat id (e.g. -1001234567890 or -1001234567890/42)',
    ),
    (
        '[[route]]\nslack = "general"\n',
        '2: route[1].slack: "general" is not a Slack channel id (e.g. C0123456789)',
    ),
    (
        "[[route]]\ncontinue = true\n",
        "1: route[1]: sends nowhere: give telegram = [...] and/or slack = [...]",
    ),
    (
        '[[route]]\nslack = "C0123456789"\n',
        "2: route[1].slack: needs SLACK_BOT_TOKEN (Slack is not configured)",
    ),
    (
        f'[[route]]\ntelegram = "{GROUP}"\ncontinue = 1\n',
        "3: route[1].continue: expects true or false",
    ),
    (
        f'[[route]]\ntelegram = "{GROUP}"\nhours = "always"\n',
        '3: route[1].hours: expects "inherit" or a table like [hours]',
    ),
    (
        f'[[route]]\ntelegram = "{GROUP}"\n[[route]]\ntelegram = "{GROUP}"\n',
        "3: route[2]: can never match: route 1 (line 1) above it takes every call and does not continue",
    ),
    (
        f'[[route]]\ntelegram = "{GROUP}"\nmatch = {{ account = "north" }}\n',
        '3: route[1].match.account: can never match: "north" is not an account (there is no [[account]] (declare one))',
    ),
    (
        f'[[manager]]\nname = "O"\nphones = "0441112233"\n[[route]]\ntelegram = "{GROUP}"\nmatch = {{ manager = "I" }}\n',
        '6: route[1].match.manager: can never match: "I" is not a manager (O)',
    ),
    (
        f'[[route]]\ntelegram = "{GROUP}"\nmatch = {{ status = "LOST" }}\n',
        'route[1].match.status: can never match: "LOST" is not one of RIA\'s call statuses',
    ),
    (
        f'[[route]]\ntelegram = "{GROUP}"\nmatch = {{ tracking_phone = "abc" }}\n',
        'route[1].match.tracking_phone: can never match: "abc" is not a phone number',
    ),
    (
        f'[[route]]\ntelegram = "{GROUP}"\nmatch = {{ make = [] }}\n',
        "route[1].match.make: is empty",
    ),
    (
        f'[[route]]\ntelegram = "{GROUP}"\nmatch = {{ make = true }}\n',
        "route[1].match.make: expects a string or a list of strings",
    ),
    (
        '[hours]\nholidays = ["25.12.2026"]\n',
        '2: hours.holidays: "25.12.2026" is not a date (YYYY-MM-DD)',
    ),
    ('[hours]\nafter_hours = "loud"\n', '2: hours.after_hours: "loud" is not one of: '),
    (
        '[hours]\nweekdays = "09:00-19:00"\n',
        "2: hours.weekdays: unknown key (expected a day or range of days",
    ),
    (
        '[hours]\nfri-mon = "09:00-19:00"\n',
        "2: hours.fri-mon: fri-mon: the range runs backwards (write e.g. mon-fri)",
    ),
    (
        "[hours]\nmon = 9\n",
        '2: hours.mon: expects opening hours as text, e.g. "09:00-19:00" or "closed"',
    ),
    (
        '[hours]\nmon = "9 to 5"\n',
        '2: hours.mon: "9 to 5" is not a time range (HH:MM-HH:MM, e.g. 09:00-19:00)',
    ),
    ('[hours]\nmon = "09:00-24:30"\n', '2: hours.mon: "09:00-24:30" is not a time range'),
    (
        '[hours]\nmon = "19:00-09:00"\n',
        '2: hours.mon: "19:00-09:00": closes before it opens (overnight: split it in two days)',
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_each_bad_value_is_one_line_with_its_line(tmp_path: Path, text: str, expected: str) -> None:
    line = _error(tmp_path, text)
    assert expected in line, line


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    settings = _settings()
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, settings)  # a folder
    assert caught.value.lines[0].startswith(f"CONFIG_FILE: {tmp_path}: cannot read it: ")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"# \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        load(latin, settings)
    assert caught.value.lines[0].startswith(f"CONFIG_FILE: {latin}: cannot read it: ")


def test_the_default_file_and_a_good_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # CONFIG_FILE unset: ria-calls-bot.toml in the working folder
    assert config_path(_settings()) is None
    (tmp_path / "ria-calls-bot.toml").write_text(
        GOOD_ACCOUNT
        + '[hours]\nmon-fri = "09:00-13:00, 14:00-19:00"\nsat = "closed"\nholidays = []\n'
        + f'[[route]]\ntelegram = ["{GROUP}/42"]\nmatch = {{ status = "bysy", account = "north" }}\n'
        + 'hours = "inherit"\ncontinue = true\n'
    )
    path = config_path(_settings())
    assert path is not None and path.name == "ria-calls-bot.toml"
    cfg = load(path, _settings())
    assert cfg.secrets() == ["k", "north-secret-0123456789"]
    assert cfg.routes[0].telegram == ((GROUP, 42),)
    assert cfg.hours is not None and cfg.hours.days[0] and not cfg.hours.days[5]
    assert cfg.router(_settings()).table()[0].startswith("route 1 (line ")
