"""Routing (issue 13): which chats a call goes to, from the configuration file's objects.

Pure: no I/O, no clock of its own. bot/config_file.py builds these objects from the TOML
file; the router is handed to storage's ingest as a plain function (storage imports nothing
from here), so the decision is made once, in the call's transaction.
Semantics are Alertmanager's: routes in order, the first match wins unless it says
`continue = true`; a call that matches none goes to the default targets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from handlers.ria.records import normalise_status, to_e164
from storage.model import Call
from storage.outbox import Target
from storage.routes import Mode, Routed, RouteFn

MATCH_KEYS = ("account", "tracking_phone", "manager", "make", "status")
CACHE_SIZE = 4096  # decisions kept: distinct (account, number, manager, make, status)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Account:
    name: str
    user_id: str
    api_key: SecretStr
    webhook_secret: SecretStr
    monthly_quota: int = 1000


@dataclass(frozen=True)
class Manager:
    name: str
    phones: frozenset[str]  # E.164
    telegram: int | None = None  # user id: mentions, and the private chat when personal
    slack: str | None = None  # U...
    personal: bool = False


@dataclass(frozen=True)
class Hours:
    """Opening hours per weekday (0 = Monday) in local time; closed on holidays."""

    days: Mapping[int, tuple[tuple[time, time], ...]]
    holidays: frozenset[date] = frozenset()
    after_hours: Mode = "normal"

    def is_open(self, moment: datetime) -> bool:
        if moment.date() in self.holidays:
            return False
        now = moment.timetz().replace(tzinfo=None)
        return any(start <= now < end for start, end in self.days.get(moment.weekday(), ()))

    def next_opening(self, moment: datetime) -> datetime:
        """The first moment at or after `moment` when it is open (same tz as `moment`);
        a week of holidays or no opening hours at all: a year on, as a bound."""
        if self.is_open(moment):
            return moment
        day = moment.date()
        for _ in range(400):
            if day not in self.holidays:
                for start, _end in sorted(self.days.get(day.weekday(), ())):
                    at = datetime.combine(day, start, tzinfo=moment.tzinfo)
                    if at >= moment:
                        return at
            day += timedelta(days=1)
        return moment + timedelta(days=365)

    def mode_at(self, moment: datetime) -> Mode:
        return "normal" if self.is_open(moment) else self.after_hours

    def describe(self) -> str:
        texts = [
            ",".join(f"{a:%H:%M}-{_hhmm(b)}" for a, b in self.days.get(day, ())) or "closed"
            for day in range(7)
        ]
        parts = []
        first = 0
        for day in range(1, 8):  # runs of days with the same hours: "mon-fri 09:00-19:00"
            if day == 7 or texts[day] != texts[first]:
                last = day - 1
                days = DAYS[first] if first == last else f"{DAYS[first]}-{DAYS[last]}"
                parts.append(f"{days} {texts[first]}")
                first = day
        extra = f"; {len(self.holidays)} holiday(s)" if self.holidays else ""
        return f"{'; '.join(parts)}{extra}; after hours: {self.after_hours}"


@dataclass(frozen=True)
class Route:
    index: int  # 1-based, in file order
    line: int  # where [[route]] stands in the file (for `route` and `check`)
    match: Mapping[str, tuple[str, ...]]  # MATCH_KEYS -> values; every given key must match
    telegram: tuple[tuple[str, int | None], ...] = ()  # (chat id, topic id)
    slack: tuple[str, ...] = ()
    continue_: bool = False
    hours: Hours | None = None  # None: inherit the global [hours]

    def describe_match(self) -> str:
        if not self.match:
            return "every call"
        return " and ".join(f"{k} in [{', '.join(v)}]" for k, v in self.match.items())

    def describe_targets(self) -> str:
        names = [f"telegram:{c}" + (f"/{t}" if t is not None else "") for c, t in self.telegram]
        names += [f"slack:{c}" for c in self.slack]
        return ", ".join(names)


@dataclass
class Router:
    routes: Sequence[Route]
    default_targets: Sequence[Target]
    managers: Sequence[Manager] = ()
    hours: Hours | None = None
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Kyiv"))
    accounts: Sequence[Account] = ()

    def __post_init__(self) -> None:
        # destination_phone -> manager: one dict lookup per call at ingest
        self._by_phone = {p: m for m in self.managers for p in m.phones}
        # each route's values in the form a call's are compared in, computed once (ingest
        # stays as fast with 20 routes as with none)
        self._sets = [
            {key: frozenset(_norm(key, v) for v in values) for key, values in r.match.items()}
            for r in self.routes
        ]
        # the same, compiled for ingest: per route a tuple of (fact position, wanted set),
        # only the keys the route gives
        self._compiled = tuple(
            tuple((MATCH_KEYS.index(key), wanted) for key, wanted in sets.items())
            for sets in self._sets
        )
        # every Hours a decision can depend on: a decision is a pure function of the call's
        # match facts and of whether each of these is open, so it is cached on both
        hours = [self.hours] + [r.hours for r in self.routes]
        self._hours = tuple({id(h): h for h in hours if h is not None}.values())
        self._cache: dict[tuple[object, ...], list[Routed]] = {}

    def manager_of(self, call: Call) -> Manager | None:
        if not call.destination_phone:
            return None
        return self._by_phone.get(to_e164(call.destination_phone))

    @property
    def has_hours(self) -> bool:
        """Whether any decision depends on the moment (global or a route's [hours])."""
        return bool(self._hours)

    def _facts(self, call: Call, account: str | None, manager: Manager | None) -> tuple[str, ...]:
        """The call's value for each match key (MATCH_KEYS order), normalised once (as the
        routes' sets are)."""
        return (
            account or "",
            to_e164(call.phone) if call.phone else "",
            manager.name if manager else "",
            (call.marka or "").casefold(),
            call.status,
        )

    def _mismatch(self, index: int, facts: tuple[str, ...]) -> int | None:
        """None when the call matches route `index`; else the position of the first key
        (in MATCH_KEYS) that fails."""
        for position, wanted in self._compiled[index]:
            got = facts[position]
            if not got or got not in wanted:
                return position
        return None

    def _decide(
        self, call: Call, account: str | None, now: datetime | None, explain: bool = False
    ) -> tuple[list[Routed], list[str]]:
        # the moment matters only with opening hours (mode_at): no clock read without them
        moment = (now or datetime.now(self.tz)).astimezone(self.tz) if self._hours else _EPOCH
        manager = self.manager_of(call)
        facts = self._facts(call, account, manager)
        out: list[Routed] = []
        why: list[str] = []  # only with `explain`: ingest formats no text
        matched = False
        for index, route in enumerate(self.routes):
            position = self._mismatch(index, facts)
            if position is not None:
                if explain:
                    miss = MATCH_KEYS[position]
                    got = {"make": call.marka, "tracking_phone": call.phone}.get(
                        miss, facts[position]
                    )
                    why.append(
                        f"route {route.index} (line {route.line}): no: {miss} "
                        f"{got or '(none)'} is not in [{', '.join(route.match[miss])}]"
                    )
                continue
            matched = True
            hours = route.hours or self.hours
            mode: Mode = hours.mode_at(moment) if hours else "normal"
            reason = f"route {route.index}"
            for chat, topic in route.telegram:
                out.append(
                    Routed(
                        Target("telegram", chat), topic, mode, _mention(manager, "telegram"), reason
                    )
                )
            for channel in route.slack:
                out.append(
                    Routed(Target("slack", channel), None, mode, _mention(manager, "slack"), reason)
                )
            stop = not route.continue_
            if explain:
                why.append(
                    f"route {route.index} (line {route.line}): matches ({route.describe_match()})"
                    + ("; stops here (continue = false)" if stop else "; continue = true")
                )
            if stop:
                break
        if not matched:
            mode = self.hours.mode_at(moment) if self.hours else "normal"
            for target in self.default_targets:
                out.append(Routed(target, None, mode, _mention(manager, target.channel), "default"))
            why.append(
                "no route matched: the default targets (TELEGRAM_CHAT_IDS / SLACK_CHANNEL_IDS)"
            )
        if manager is not None:
            why.append(f"manager: {manager.name} (destination_phone {call.destination_phone})")
            if manager.personal and manager.telegram is not None:
                mode = self.hours.mode_at(moment) if self.hours else "normal"
                out.append(
                    Routed(Target("telegram", str(manager.telegram)), None, mode, None, "personal")
                )
                why.append(f"personal = true: a copy to {manager.name}'s private chat")
        if explain and (mode_note := _hours_note(self, out, moment)):
            why.append(mode_note)
        return _unique(out), why

    def targets_for(
        self, call: Call, account: str | None = None, now: datetime | None = None
    ) -> list[Routed]:
        """The call's targets (do not mutate the list: it is shared by the cache). Ingest
        calls this for every call: a repeat of a known (account, tracking number, manager,
        make, status, hours state) is one dict lookup; a new one is decided once."""
        modes: tuple[Mode, ...] = ()
        if self._hours:
            moment = (now or datetime.now(self.tz)).astimezone(self.tz)
            modes = tuple(h.mode_at(moment) for h in self._hours)
        key = (account, call.phone, call.destination_phone, call.marka, call.status, modes)
        found = self._cache.get(key)
        if found is None:
            found = self._decide(call, account, now)[0]
            if len(self._cache) >= CACHE_SIZE:  # oldest first out: a bound, not a policy
                del self._cache[next(iter(self._cache))]
            self._cache[key] = found
        return found

    def explain(
        self, call: Call, account: str | None = None, now: datetime | None = None
    ) -> list[str]:
        routed, why = self._decide(call, account, now, explain=True)
        lines = list(why)
        for r in routed:
            extras = [r.reason]
            if r.mode != "normal":
                extras.append(f"after hours: {r.mode}")
            if r.mention:
                extras.append(f"mention {r.mention}")
            topic = f"/{r.topic}" if r.topic is not None else ""
            lines.append(f"-> {r.target}{topic} ({', '.join(extras)})")
        return lines

    def all_targets(self) -> set[Target]:
        """Every target any call could be routed to (the dispatcher serves these)."""
        found = set(self.default_targets)
        for route in self.routes:
            found |= {Target("telegram", c) for c, _ in route.telegram}
            found |= {Target("slack", c) for c in route.slack}
        found |= {
            Target("telegram", str(m.telegram))
            for m in self.managers
            if m.personal and m.telegram is not None
        }
        return found

    def table(self) -> list[str]:
        """The routing table as `check` prints it."""
        lines = [
            f"route {r.index} (line {r.line}): {r.describe_match()} -> {r.describe_targets()}"
            + (" (continue)" if r.continue_ else "")
            + (f" [hours: {r.hours.describe()}]" if r.hours else "")
            for r in self.routes
        ]
        lines.append("otherwise -> " + ", ".join(map(str, self.default_targets)))
        if self.hours:
            lines.append(f"hours: {self.hours.describe()}")
        for m in self.managers:
            ids = [f"telegram {m.telegram}"] if m.telegram is not None else []
            ids += [f"slack {m.slack}"] if m.slack else []
            personal = ", personal copy" if m.personal else ""
            lines.append(
                f"manager {m.name}: {', '.join(sorted(m.phones))}"
                + (f" ({', '.join(ids)}{personal})" if ids else "")
            )
        return lines


_EPOCH = datetime(1970, 1, 1)  # stands for 'now' when no hours make it matter


def _hhmm(end: time) -> str:
    return "24:00" if end == time.max else f"{end:%H:%M}"


def _norm(key: str, value: str) -> str:
    if key == "tracking_phone":
        return to_e164(value)
    if key == "make":
        return value.casefold()
    if key == "status":
        return normalise_status(value)
    return value


def _mention(manager: Manager | None, channel: str) -> str | None:
    if manager is None:
        return None
    if channel == "telegram" and manager.telegram is not None:
        return f"telegram:{manager.telegram}"
    if channel == "slack" and manager.slack:
        return f"slack:{manager.slack}"
    return None


def _hours_note(router: Router, out: list[Routed], moment: datetime) -> str | None:
    modes = {r.mode for r in out} - {"normal"}
    if not modes:
        return None
    return f"closed at {moment:%Y-%m-%d %H:%M} ({'/'.join(sorted(modes))})"


def _unique(routed: list[Routed]) -> list[Routed]:
    """One message per chat and topic: the first route that named it decides."""
    seen: set[tuple[Target, int | None]] = set()
    out = []
    for r in routed:
        key = (r.target, r.topic)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def route_fn(router: Router, clock: Callable[[], float]) -> RouteFn:
    """The router as storage's ingest takes it: (call, account) -> targets, with the hours
    judged at `clock()` (the moment of ingest; tests inject a clock)."""

    def route(call: Call, account: str | None) -> Sequence[Routed]:
        # the moment only matters with opening hours (no datetime per call without them)
        now = datetime.fromtimestamp(clock(), router.tz) if router.has_hours else None
        return router.targets_for(call, account, now)

    return route
