"""`ria-calls-bot forget PHONE`: erase one caller (issue 15: personal data on request)."""

from __future__ import annotations

import re
import sys

import phonenumbers

from bot.config import Settings
from handlers.ria.records import phone_forms
from storage.db import Store
from storage.forget import forget_caller


def spellings(text: str) -> tuple[str, list[str]] | None:
    """(E.164, every spelling to look for) of a number typed any way people type it:
    0671234567, +380671234567, 380671234567, 067 123-45-67. None if it is not a number."""
    typed = text.strip()
    forms = phone_forms(typed)
    if forms is None:
        return None
    e164, international = forms
    national = re.sub(
        r"\D",
        "",
        phonenumbers.format_number(
            phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL
        ),
    )
    found = [e164, e164.removeprefix("+"), international, typed]
    # "0671234567" as RIA sends it; a bare national number without its 0 (a foreign one)
    # is too short to look for in raw bodies without hitting other digits
    if national.startswith("0") and len(national) >= 10:
        found.append(national)
    return e164, list(dict.fromkeys(found))


async def forget(settings: Settings, phone: str) -> int:
    parsed = spellings(phone)
    if parsed is None:
        print(
            f'forget: "{phone}" is not a phone number (e.g. 0671234567 or +380671234567)',
            file=sys.stderr,
        )
        return 2
    e164, forms = parsed
    # create=False: forgetting in the wrong folder must not make an empty database
    store = Store(settings.database_path, create=False)
    await store.open()
    try:
        done = await store.run(forget_caller, e164=e164, spellings=forms)
    finally:
        await store.close()
    print(
        f"forgot {e164}: {done.calls} call(s), {done.alerts} alert(s), "
        f"{done.other_messages} other message(s) (edits, reminders), "
        f"{done.rejected_payloads} raw payload(s) kept as rejected"
    )
    if done.calls or done.rejected_payloads:
        print("backups made before now still hold them: delete or redo those backups")
    return 0
