"""What a failed Slack call means: permanent, wait exactly (429), or retry; with a hint
that says what the operator should change."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.delivery.channels.base import DeliveryError

# Errors that sending again cannot fix: the token, the channel or the message is wrong.
# Everything else (internal_error, fatal_error, service_unavailable, HTTP 5xx, timeouts)
# is transient.
PERMANENT_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
        "ekm_access_denied",
        "team_access_not_granted",
        "org_login_required",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "too_many_attachments",
        "invalid_file_id",
        "file_not_found",
    }
)
# ...and of those, the ones that mean the token itself is refused
AUTH_ERRORS = frozenset(
    {"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired"}
)
_HINTS = {
    "invalid_auth": "check SLACK_BOT_TOKEN",
    "not_authed": "check SLACK_BOT_TOKEN",
    "account_inactive": "the app was uninstalled or its bot deactivated",
    "token_revoked": "the token was revoked: reinstall the app",
    "channel_not_found": "check SLACK_CHANNEL_IDS (a private channel needs the bot invited)",
    "not_in_channel": "invite the bot to the channel: /invite @bot",
    "is_archived": "the channel is archived",
    "missing_scope": "add the scope in the app's OAuth & Permissions and reinstall",
}


def error_code(exc: SlackApiError) -> str:
    """Slack's `error` ("channel_not_found"), or "HTTP 503" when the answer was not JSON."""
    response = exc.response
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return f"HTTP {status}" if status else "unexpected answer"


def _retry_after(exc: SlackApiError) -> float | None:
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    if status != 429 and error_code(exc) != "ratelimited":
        return None
    headers = getattr(response, "headers", None) or {}
    try:
        return max(float(headers.get("Retry-After", "1")), 0.0)
    except ValueError:
        return 1.0


def describe(code: str) -> str:
    """'not_in_channel (invite the bot to the channel: /invite @bot)'."""
    hint = _HINTS.get(code)
    return f"{code} ({hint})" if hint else code


def delivery_error(exc: Exception, what: str = "Slack") -> DeliveryError:
    """The dispatcher's view of a failed Slack call: permanent, wait exactly, or retry."""
    if isinstance(exc, SlackApiError):
        code = error_code(exc)
        retry_after = _retry_after(exc)
        if retry_after is not None:
            return DeliveryError(f"{what}: ratelimited", retry_after=retry_after)
        return DeliveryError(
            f"{what}: {describe(code)}",
            permanent=code in PERMANENT_ERRORS,
            target_problem=code in _NOT_THE_PICTURE,  # the operator fixes it: wait (W-deliv)
        )
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"{what}: no answer in time")
    # connection refused or reset, a bad upload answer, ...: worth another try
    return DeliveryError(f"{what}: {type(exc).__name__}: {exc}".rstrip(": "))


# refusals of an upload that concern the channel or the token, not the file: the text
# would be refused the same way, so they are not a "picture refused"
_NOT_THE_PICTURE = AUTH_ERRORS | {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "restricted_action_read_only_channel",
}


def upload_error(exc: Exception) -> DeliveryError:
    """A failed chart upload; a permanent refusal of the file alone (no `files:write`
    scope, ...) says so, so that the summary's text still goes out."""
    error = delivery_error(exc, "Slack file upload")
    if not isinstance(exc, SlackApiError) or not error.permanent:
        return error
    code = error_code(exc)
    if code in _NOT_THE_PICTURE:
        return error
    data = getattr(exc.response, "data", None)
    needed = data.get("needed") if isinstance(data, dict) else None
    if code == "missing_scope":
        scope = needed if isinstance(needed, str) and needed else "files:write"
        hint = (
            f"the Slack app lacks the {scope} scope: add it under OAuth & Permissions "
            "and reinstall the app"
        )
    else:
        hint = "Slack would not take the chart"
    return DeliveryError(
        f"Slack file upload: {code}: {hint}",
        permanent=True,
        counted=False,
        picture_refused=True,
    )


# what a call through slack-sdk raises when it fails
FAILURES = (SlackClientError, aiohttp.ClientError, TimeoutError)
