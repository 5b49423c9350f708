"""Nobody in: secrets never in the output, the webhooks' secrets checked, data only for the
configured chats, SQL only with parameters, and the service content to run as nobody with
a code directory it cannot write to."""

from __future__ import annotations

import ast
import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot import i18n, logs
from bot.delivery.channels.telegram import SECRET_HEADER, TelegramChannel, build_application
from tests.conftest import GROUP, RIA_KEY, RIA_USER, TG_TOKEN, telegram_env
from tests.fakes.ria import FakeRia, make_call
from tests.fakes.telegram import FakeTelegram
from tests.reliability import caller, db_rows, e164, until
from tests.service import BIN, WEBHOOK_SECRET, base_env, free_port

ROOT = Path(__file__).resolve().parent.parent
TG_HOOK_SECRET = "tg-hook-secret-4242"
PRIVATE = "42"


# ---- secrets never in the output --------------------------------------------------------


async def raw_http(port: int, data: bytes) -> None:
    """Send bytes that are not quite HTTP, the way a scanner would."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        await asyncio.wait_for(reader.read(1000), 2)
    except TimeoutError:
        pass
    writer.close()


async def test_no_secret_in_any_output_through_a_storm_of_errors_at_debug(
    services, telegram: FakeTelegram
) -> None:
    """RIA refusing the key, failing and hanging; Telegram 401, 500, refusing connections
    and timing out; bad and forged webhooks: at LOG_LEVEL=DEBUG, stdout and stderr must not
    contain the RIA key, the bot token, or either webhook secret."""
    port = free_port()
    async with FakeRia(api_key="a-different-key-" + "x" * 24, user_id=RIA_USER) as ria:
        service = await services(
            **telegram_env(telegram, chats=f"{GROUP},{PRIVATE}"),
            RIA_API_KEY=RIA_KEY,  # RIA answers 403 API_KEY_INVALID to it
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url,
            RIA_POLL_INTERVAL_MINUTES="0.02",
            RIA_POLL_SPREAD="off",  # fast polls at any minute of the hour
            HTTP_PORT=str(port),
            PUBLIC_URL=f"http://127.0.0.1:{port}",
            TELEGRAM_WEBHOOK_SECRET=TG_HOOK_SECRET,
            LOG_LEVEL="DEBUG",
        )
        # Telegram: a read timeout (10 s) in the group while the other chat gets 500s
        # (retried) and then a 401. The 401 comes last: a refused token pauses that chat (its
        # alerts stay pending, one probe a minute, issue 15), so nothing after it reaches it.
        telegram.hang_chat(GROUP)
        telegram.fail_next_in(PRIVATE, 2, status=500)
        telegram.fail_next_in(PRIVATE, 1, status=401)
        await service.post(service.webhook_url, json=make_call(1, caller=caller(1)))
        await until(lambda: "Internal Server Error" in service.stderr(), 10, "a 500")
        await until(lambda: "Unauthorized" in service.stderr(), 20, "the 401")
        await service.post(service.webhook_url, json=make_call(2, caller=caller(2)))
        # bad payloads, wrong secrets, forged Telegram updates, broken HTTP
        await service.post(service.webhook_url, data=b'{"call_id": ')
        await service.post(service.webhook_url, data=b"\xff\xfe" * 10)
        await service.post(service.webhook_url + "x", json=make_call(9))
        await service.post(f"/webhooks/telegram/{TG_HOOK_SECRET}", json={"update_id": 1})
        await service.post(
            f"/webhooks/telegram/{TG_HOOK_SECRET}",
            data=b"not json",
            headers={SECRET_HEADER: TG_HOOK_SECRET},
        )
        await raw_http(
            port,
            f"POST /webhooks/ria/{WEBHOOK_SECRET} HTTP/1.1\r\nContent-Length: x\r\n\r\n".encode(),
        )
        await raw_http(port, f"GET /webhooks/ria/{WEBHOOK_SECRET}?\x00 HTTP/9\r\n\r\n".encode())
        # RIA: the key refused (403), then 500s, then hanging
        await until(lambda: ria.request_count >= 2, 10, "RIA refusing the key")
        ria.api_key = RIA_KEY
        ria.fail_next(2, status=500)
        await until(lambda: "RIA API answered HTTP 500" in service.stderr(), 10, "RIA's 500")
        ria.mode = "hang"
        await until(lambda: "Timed out" in service.stderr(), 15, "the send to time out")
        telegram.release_chat(GROUP)
        await telegram.stop()  # connection refused from here on
        await service.post(service.webhook_url, json=make_call(4, caller=caller(4)))
        # the service's own record that it tried (and failed) to send call 4 to a Telegram
        # refusing connections: the error it logs for that is in the output checked below
        db = service.env["DATABASE_PATH"]
        await until(
            lambda: db_rows(db, "SELECT 1 FROM outbox WHERE call_id = 4 AND attempts > 0"),
            20,
            "a send of call 4 refused",
        )
        assert await service.stop() == 0
    output = service.output()
    for what in (
        "API_KEY_INVALID",
        "RIA API answered HTTP 500",
        "Internal Server Error",
        "Unauthorized",
        "Timed out",
    ):
        assert what in output, f"the scenario did not produce {what!r}"
    for secret in (RIA_KEY, TG_TOKEN, TG_TOKEN.split(":", 1)[1], WEBHOOK_SECRET, TG_HOOK_SECRET):
        assert secret not in output, f"{secret[:6]}... leaked"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_redaction_also_covers_warnings_uncaught_exceptions_and_encoded_tokens(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """What Python prints by itself (warnings, uncaught exceptions in any thread) goes
    through the same filter; a bot token whose ":" was URL-encoded is caught by its half."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    tail = TG_TOKEN.split(":", 1)[1]
    try:
        logs.setup("DEBUG", fmt, [RIA_KEY, TG_TOKEN, WEBHOOK_SECRET])
        warnings.showwarning(
            UserWarning(f"deprecated call to https://x/bot{TG_TOKEN}/getMe"),
            UserWarning,
            __file__,
            1,
        )

        def fail() -> None:
            raise RuntimeError(f"GET https://developers.ria.com/x?api_key={RIA_KEY}")

        thread = threading.Thread(target=fail)
        thread.start()
        thread.join()
        try:
            raise ValueError(f"webhook /webhooks/ria/{WEBHOOK_SECRET} failed")
        except ValueError:
            sys.excepthook(*sys.exc_info())
        logging.getLogger("httpx").warning("POST /bot123456%%3A%s/sendMessage", tail)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        sys.excepthook, threading.excepthook = saved[2], saved[3]
        logging.captureWarnings(False)
    err = capsys.readouterr().err
    assert err.count("***") >= 4, err
    assert "deprecated call" in err and "RuntimeError" in err and "ValueError" in err
    for secret in (RIA_KEY, TG_TOKEN, tail, WEBHOOK_SECRET):
        assert secret not in err


# ---- the webhooks' secrets ----------------------------------------------------------------


@pytest.fixture
async def telegram_hook(telegram: FakeTelegram) -> AsyncIterator[TestClient]:
    application = build_application(TG_TOKEN, telegram.url, webhook_mode=True)
    channel = TelegramChannel(application, webhook_secret=TG_HOOK_SECRET)
    app = web.Application()
    app.add_routes(channel.routes())
    async with TestClient(TestServer(app)) as client:
        # until python-telegram-bot runs, even a right update gets 503 (Telegram sends it
        # again later, issue 15): the route takes updates once the application has started
        await application.initialize()
        await application.start()
        try:
            yield client
        finally:
            await application.stop()
            await application.shutdown()


async def test_telegram_webhook_answers_503_until_the_bot_runs(telegram: FakeTelegram) -> None:
    """A right secret before python-telegram-bot runs: 503 (not taken, so Telegram delivers
    it again), a wrong one still 403."""
    application = build_application(TG_TOKEN, telegram.url, webhook_mode=True)
    app = web.Application()
    app.add_routes(TelegramChannel(application, webhook_secret=TG_HOOK_SECRET).routes())
    async with TestClient(TestServer(app)) as client:
        url = f"/webhooks/telegram/{TG_HOOK_SECRET}"
        right, wrong = {SECRET_HEADER: TG_HOOK_SECRET}, {SECRET_HEADER: "x"}
        assert (await client.post(url, json={"update_id": 1}, headers=right)).status == 503
        assert (await client.post(url, json={"update_id": 1}, headers=wrong)).status == 403
    await application.bot.shutdown()


@pytest.mark.parametrize(
    ("path", "header", "status"),
    [
        (TG_HOOK_SECRET, TG_HOOK_SECRET, 200),
        (TG_HOOK_SECRET, None, 403),
        (TG_HOOK_SECRET, "", 403),
        (TG_HOOK_SECRET, TG_HOOK_SECRET + "x", 403),
        (TG_HOOK_SECRET, TG_HOOK_SECRET[:-1], 403),
        ("x" * len(TG_HOOK_SECRET), TG_HOOK_SECRET, 403),
        ("x", "x", 403),
    ],
)
async def test_telegram_webhook_needs_the_secret_in_path_and_header(
    telegram_hook: TestClient, path: str, header: str | None, status: int
) -> None:
    headers = {} if header is None else {SECRET_HEADER: header}
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 1, "type": "private"},
            "text": "/stats",
        },
    }
    response = await telegram_hook.post(f"/webhooks/telegram/{path}", json=update, headers=headers)
    assert response.status == status


# every module that takes a secret from a request: the webhooks' path secrets and headers,
# Slack's signature, the metrics' bearer token
SECRET_CHECKERS = {
    "handlers/ria/webhook.py",
    "bot/delivery/channels/telegram_receive.py",
    "bot/delivery/channels/slack_http.py",
    "handlers/metrics.py",
}
SECRET_WORDS = ("secret", "token", "signature", "authorization")


def _request_readers_with_secrets() -> set[str]:
    """The modules that read requests (routes, headers) and mention a secret: a new one
    that checks a secret must be added to SECRET_CHECKERS (and so checked below)."""
    found = set()
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        source = path.read_text()
        reads = any(s in source for s in ("web.post(", "web.get(", "request.headers"))
        if reads and any(w in source.lower() for w in SECRET_WORDS):
            found.add(str(path.relative_to(ROOT)))
    return found


def test_secrets_are_compared_in_constant_time() -> None:
    """Every secret a request brings (RIA's and Telegram's path secrets, Telegram's header,
    Slack's signature, the metrics token) is compared with hmac.compare_digest, never ==."""
    assert _request_readers_with_secrets() <= SECRET_CHECKERS, "a new module checks a secret"
    for module in sorted(SECRET_CHECKERS):
        source = (ROOT / module).read_text()
        assert "hmac.compare_digest(" in source, module
        for node in ast.walk(ast.parse(source)):
            if (
                isinstance(node, ast.Compare)
                and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops)
                and any(
                    word in ast.unparse(side).lower()
                    for side in (node.left, *node.comparators)
                    for word in SECRET_WORDS
                )
            ):
                pytest.fail(f"{module}: a secret compared with ==: {ast.unparse(node)}")


async def test_commands_from_other_chats_get_a_refusal_without_data(
    services, telegram: FakeTelegram
) -> None:
    """A stranger's chat gets one refusal, then nothing for an hour (issue 15: refusals
    share the bot's message budget with alerts); a configured chat still gets its data."""
    service = await services(**telegram_env(telegram), LANGUAGE="en")
    for i in (1, 2):
        await service.post(service.webhook_url, json=make_call(i, caller=caller(i)))
    await telegram.wait_for_messages(2, chat_id=GROUP, timeout=10)
    stranger, stranger_group = 777, -1009999999999
    for chat, text in ((stranger, "/stats today"), (stranger_group, "/missed week")):
        update = telegram.push_command(chat, text)
        reply = await telegram.wait_for_reply(chat, after_update_id=update, timeout=10)
        assert reply["plain_text"] == i18n.t("en", "refusal"), reply
    for chat, text in ((stranger, "/missed"), (stranger_group, "/stats"), (stranger, "/help")):
        telegram.push_command(chat, text)
    # updates are handled one after another: once the group's answer is out, the strangers'
    # later commands have been handled, and any refusal to them would already be sent
    update = telegram.push_command(GROUP, "/missed today")
    answer = await telegram.wait_for_reply(GROUP, after_update_id=update, timeout=10)
    assert e164(1) in answer["plain_text"] and e164(2) in answer["plain_text"], answer
    texts = [m["plain_text"] for m in telegram.messages if m["chat_id"] in (777, -1009999999999)]
    assert texts == [i18n.t("en", "refusal")] * 2, texts
    assert await service.stop() == 0


# ---- SQL: values only through parameters -------------------------------------------------

# names that may be interpolated into SQL text although the check cannot see where they come
# from: placeholder lists ("?,?,?") built from a count, and scripts / step numbers from code
SAFE_NAMES = {"marks", "script", "number"}
# the same, for one file only, each with the reason it is code and not a value
ALLOWED = {
    ("schema.py", "step"): "a migration of MIGRATIONS: SQL text written in storage/schema.py",
}
UNKNOWN = ast.Name("<bound by a loop, an argument or unpacking>")


def _bindings(tree: ast.AST) -> dict[str, list[ast.AST]]:
    """Every value each name is given anywhere in the module (any scope: stricter). A name
    bound otherwise (loop variable, argument, unpacking, `with ... as`) gets UNKNOWN."""
    values: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    values.setdefault(target.id, []).append(node.value)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign) and isinstance(node.target, ast.Name):
            values.setdefault(node.target.id, []).append(node.value or ast.Constant(""))
        elif isinstance(node, ast.arg):
            values.setdefault(node.arg, []).append(UNKNOWN)
    simple = {
        id(t)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign)
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Store)
            and id(node) not in simple
        ):
            values.setdefault(node.id, []).append(UNKNOWN)
    return values


def _safe_sql(
    node: ast.AST,
    bound: dict[str, list[ast.AST]],
    allowed: frozenset[str] = frozenset(),
    seen: frozenset[str] = frozenset(),
) -> bool:
    def safe(n: ast.AST) -> bool:
        return _safe_sql(n, bound, allowed, seen)

    if isinstance(node, ast.Constant):
        # a string, or a number written in the code (PRAGMA wal_autocheckpoint = {PAGES})
        return isinstance(node.value, str | int)
    if isinstance(node, ast.Name):
        if node.id in SAFE_NAMES or node.id in allowed or node.id in seen:
            return True
        values = bound.get(node.id)
        return bool(values) and all(_safe_sql(v, bound, allowed, seen | {node.id}) for v in values)
    if isinstance(node, ast.JoinedStr):
        return all(safe(v.value if isinstance(v, ast.FormattedValue) else v) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return safe(node.left) and safe(node.right)
    if isinstance(node, ast.IfExp):  # either of two fragments written in the code
        return safe(node.body) and safe(node.orelse)
    if isinstance(node, ast.Tuple | ast.List):  # e.g. a tuple of statements picked by index
        return all(safe(e) for e in node.elts)
    if isinstance(node, ast.Subscript):
        return safe(node.value)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("replace", "strip")
    ):  # a fragment of the code edited with other fragments of it
        return safe(node.func.value) and all(safe(a) for a in node.args) and not node.keywords
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and isinstance(node.func.value, ast.Constant)
        and len(node.args) == 1
    ):
        (items,) = node.args
        if (
            isinstance(items, ast.BinOp)
            and isinstance(items.op, ast.Mult)
            and isinstance(items.left, ast.Constant)
            and items.left.value == "?"
        ):
            return True  # placeholders: ",".join("?" * len(values))
        if isinstance(items, ast.GeneratorExp | ast.ListComp):
            return safe(items.elt)  # the same fragment once per value: the count only
        # column lists made of constants (storage/calls.py); checked by eye
        return node.func.value.value in (", ", " ")
    return False


def test_all_sql_is_parameterised() -> None:
    """Every execute()/executemany()/executescript() gets SQL made only of literals and
    names whose every value is made of them: no value is ever formatted into a statement."""
    problems = []
    for path in sorted(
        [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/**/*.py"), *ROOT.glob("storage/**/*.py")]
    ):
        tree = ast.parse(path.read_text())
        bound = _bindings(tree)
        allowed = frozenset(name for (file, name) in ALLOWED if file == path.name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "executemany", "executescript")
                and node.args
                and not _safe_sql(node.args[0], bound, allowed)
            ):
                problems.append(f"{path.name}:{node.lineno} {ast.unparse(node.args[0])[:80]}")
    assert not problems, "SQL built from values:\n" + "\n".join(problems)
    # and the check does catch what it is for
    for bad in (
        'f"SELECT * FROM calls WHERE id = {call_id}"',
        '"DELETE FROM t WHERE x = " + x',
        '"SELECT %s" % value',
        '"SELECT {}".format(v)',
        '"SELECT 1" if c else value',
        "(SQL, value)[i]",
        '" OR ".join(f"x = {v}" for v in values)',
        '" OR ".join(values)',
        '",".join(str(i) for i in ids)',
        '",".join("x" * n)',
        'SQL.replace("?", value)',
        'f"SELECT {step}"',  # allowed in schema.py only
    ):
        assert not _safe_sql(ast.parse(bad).body[0].value, {"SQL": [ast.Constant("")]}), bad
    # a name is safe only if every value it is ever given is
    tree = ast.parse('sql = "SELECT 1"\ndef f(v):\n    sql = f"SELECT {v}"\n    run(sql)')
    assert not _safe_sql(ast.Name("sql"), _bindings(tree))
    tree = ast.parse('for sql in texts:\n    pass\nsql = "SELECT 1"')
    assert not _safe_sql(ast.Name("sql"), _bindings(tree))


# ---- running as nobody, with code it cannot write to --------------------------------------


def _setpriv_works() -> str | None:
    if os.geteuid() != 0:
        return "the tests do not run as root"
    if shutil.which("setpriv") is None:
        return "setpriv is not installed"
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(BIN), "--version"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return f"nobody cannot run {BIN}: {done.stderr.strip()[:200]}"
    return None


def _nobody_can_write(directory: Path) -> bool:
    probe = directory / "nobody-was-here"
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "touch", str(probe)],
        capture_output=True,
    )
    probe.unlink(missing_ok=True)
    return done.returncode == 0


async def test_runs_as_nobody_with_a_read_only_code_directory() -> None:
    reason = _setpriv_works()
    if reason:
        pytest.skip(reason)
    data = Path(tempfile.mkdtemp(prefix="ria-nobody-"))
    try:
        os.chown(data, 65534, 65534)
        env = base_env(data)
        # the code, the venv and the working directory's parent are not writable for nobody
        assert not _nobody_can_write(ROOT / "bot"), "the code directory is writable for nobody"
        proc = await asyncio.create_subprocess_exec(
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            str(BIN),
            "run",
            env=env,
            cwd=data,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            url = f"http://127.0.0.1:{env['HTTP_PORT']}"
            async with aiohttp.ClientSession() as session:
                for _ in range(200):
                    try:
                        async with session.get(f"{url}/healthz") as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    assert proc.returncode is None
                    await asyncio.sleep(0.05)
                status = (Path("/proc") / str(proc.pid) / "status").read_text()
                uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
                assert uid_line.split()[1:] == ["65534"] * 4, uid_line
                async with session.post(
                    f"{url}/webhooks/ria/{WEBHOOK_SECRET}", json=make_call(1, caller=caller(1))
                ) as response:
                    assert response.status == 200, await response.text()
                async with session.get(f"{url}/healthz") as response:
                    assert response.status == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0, err.decode()
        assert e164(1) in out.decode()  # the console alert
        assert (data / "calls.db").stat().st_uid == 65534
    finally:
        shutil.rmtree(data, ignore_errors=True)
