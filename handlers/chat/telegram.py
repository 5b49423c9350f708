"""Telegram adapter for the chat commands: PTB handlers around the neutral command core.

Rendering and the command descriptions come in from bot/ (this package does not import it),
so the same core answers Telegram, Slack and the CLI.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Set

from telegram import Message, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from handlers.chat.callback import Callbacks
from handlers.chat.commands import Reply, split_command
from storage.outbox import OutboxItem, Target

log = logging.getLogger(__name__)

COMMANDS = ("start", "help", "stats", "missed")

# (command, argument, scope): scope None = every call (a chat of TELEGRAM_CHAT_IDS), else
# ("telegram", chat id): the calls routed to that chat only (issue 13)
Scope = tuple[str, str] | None
AnswerFn = Callable[[str, str, Scope], Awaitable[Reply]]
# the chats the routing file sends alerts to (read at every update: SIGHUP may change them)
RoutedFn = Callable[[], Set[str]]
RenderFn = Callable[[Reply], str]
# sends a message to a chat within the channel's rate limits (the chat may be busy with alerts)
SendFn = Callable[[str, str], Awaitable[object]]


class RefusalGate:
    """Whether to refuse a stranger's chat now.

    Refusals share the bot's 30 messages/s with alerts, and anyone can add the bot to a
    group and type commands: each chat is refused at most once per `every` seconds, and all
    strangers together at most `per_minute` times a minute (a sliver of the budget). Chats
    are remembered in an LRU of `size`, so a stream of new strangers cannot grow it for ever.
    """

    def __init__(
        self,
        every: float = 3600.0,
        per_minute: int = 20,
        size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every = every
        self.per_minute = per_minute
        self.size = size
        self.clock = clock
        self._last: OrderedDict[str, float] = OrderedDict()
        self._recent: deque[float] = deque()

    def allow(self, chat: str) -> bool:
        now = self.clock()
        last = self._last.get(chat)
        if last is not None and now - last < self.every:
            return False
        while self._recent and now - self._recent[0] >= 60.0:
            self._recent.popleft()
        if len(self._recent) >= self.per_minute:
            return False  # not remembered: the chat is refused once things calm down
        self._recent.append(now)
        self._last[chat] = now
        self._last.move_to_end(chat)
        while len(self._last) > self.size:
            self._last.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._last)


def chat_filter(chat_ids: Iterable[str]) -> filters.BaseFilter:
    ids = [int(c) for c in chat_ids if not c.startswith("@")]
    names = [c[1:] for c in chat_ids if c.startswith("@")]
    return filters.Chat(chat_id=ids, username=names, allow_empty=False)


class RoutedChats(filters.MessageFilter):
    """A chat that only a route sends to (not in TELEGRAM_CHAT_IDS): its commands and presses
    are taken, scoped to its own calls. Asks `routed` each time, so a reload counts at once."""

    def __init__(self, routed: RoutedFn) -> None:
        super().__init__(name="RoutedChats")
        self.routed = routed

    def filter(self, message: Message) -> bool:
        return str(message.chat_id) in self.routed()


def _none() -> Set[str]:
    return frozenset()


def register(
    application: Application,
    *,
    chat_ids: Iterable[str],
    answer: AnswerFn,
    render: RenderFn,
    refusal: str,
    send: SendFn,
    gate: RefusalGate | None = None,
    routed: RoutedFn = _none,
) -> None:
    """Answer our commands in the configured chats; a short refusal anywhere else.

    A group holds other bots too, and with privacy mode off we see their commands. PTB's
    CommandHandler takes only our command words, bare or addressed to us (`/stats@our_bot`:
    it compares the suffix with getMe's username), so `/stats@other_bot` and `/ban` go by
    unanswered there. In a private chat every command is for us: an unknown one gets the help.
    """
    everything = chat_filter(list(chat_ids))
    allowed = everything | RoutedChats(routed)
    refusals = gate or RefusalGate()
    private = filters.ChatType.PRIVATE

    async def reply(update: Update, command: str, argument: str) -> None:
        message = update.effective_message
        if message is None:
            return
        # a chat of TELEGRAM_CHAT_IDS sees every call; a routed chat only the calls routed to it
        scope = None if everything.check_update(update) else ("telegram", str(message.chat_id))
        try:
            result = await answer(command, argument, scope)
            await send(str(message.chat_id), render(result))
        except Exception as exc:  # the platform's error, already worded for a log line
            log.warning("telegram: could not answer /%s: %s", command, exc)

    async def on_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        await reply(update, *split_command(message.text))

    async def on_unknown(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await reply(update, "help", "")

    async def on_stranger(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        if not refusals.allow(str(message.chat_id)):
            log.debug(
                "telegram: a command from chat %s: refused lately, no answer", message.chat_id
            )
            return
        log.info(
            "telegram: refused a command from chat %s (not in TELEGRAM_CHAT_IDS; the next "
            "refusal there comes an hour later at the earliest)",
            message.chat_id,
        )
        try:
            await send(str(message.chat_id), refusal)
        except Exception as exc:
            log.warning("telegram: could not send a refusal: %s", exc)

    # the first handler that takes an update wins; whatever none takes is ignored
    application.add_handler(CommandHandler(list(COMMANDS), on_command, filters=allowed))
    application.add_handler(CommandHandler(list(COMMANDS), on_stranger, filters=~allowed))
    application.add_handler(MessageHandler(filters.COMMAND & private & allowed, on_unknown))
    application.add_handler(MessageHandler(filters.COMMAND & private & ~allowed, on_stranger))


# callback_data of "✅ Called back" (bot/delivery/render): the call id, nothing else
CALLBACK_DATA = re.compile(r"^cb:(\d{1,18})$")


def register_callbacks(
    application: Application,
    *,
    chat_ids: Iterable[str],
    callbacks: Callbacks,
    routed: RoutedFn = _none,
) -> None:
    """Presses of "✅ Called back": counted in the configured chats only, answered at once
    (answerCallbackQuery, a toast for the presser); the edit of the alert follows through
    the outbox. block=False: a press is not queued behind a command reply that waits for
    the chat's rate limit."""
    ids = {c for c in chat_ids if not c.startswith("@")}
    names = {c[1:].lower() for c in chat_ids if c.startswith("@")}

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        match = CALLBACK_DATA.match(query.data or "")
        message = query.message
        edits: list[OutboxItem] = []
        try:
            if match is None or message is None:
                await query.answer()  # not ours (an old keyboard): stop the spinner
                return
            chat = message.chat
            if (
                str(chat.id) not in ids
                and (chat.username or "").lower() not in names
                and str(chat.id) not in routed()
            ):
                log.info("telegram: refused a press in chat %s (not in TELEGRAM_CHAT_IDS)", chat.id)
                await query.answer(callbacks.refused())
                return
            user = query.from_user
            name = user.first_name or (f"@{user.username}" if user.username else str(user.id))
            answer, edits = await callbacks.press(
                Target("telegram", str(chat.id)),
                str(message.message_id),
                int(match.group(1)),
                by_name=name,
                by_user=f"telegram:{user.id}",
            )
            await query.answer(answer)
        except Exception as exc:  # the platform's error, already worded for a log line
            log.warning("telegram: could not answer a press: %s", exc)
        callbacks.hand_over(edits)  # recorded: the edit goes out even if the answer did not

    application.add_handler(CallbackQueryHandler(on_press, block=False))
