"""RIA's calls_stat API, through aiohttp. The key rides in the query string, so no error or
log line built here ever contains the URL."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date
from typing import Any

import aiohttp

_KEY_IN_TEXT = re.compile(r"(?i)(api_key=)[^&\s'\"]+")


class RiaApiError(Exception):
    """A failed request. `status` is the HTTP status (None: no answer); `code` RIA's error."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(_KEY_IN_TEXT.sub(r"\1***", message))
        self.status = status
        self.code = code

    @property
    def rate_limited(self) -> bool:
        return self.status == 429

    @property
    def bad_key(self) -> bool:
        return self.status in (401, 403)

    @property
    def transient(self) -> bool:
        return self.status is None or self.status >= 500

    @property
    def permanent(self) -> bool:
        """An answer that repeats until the operator changes a setting: retrying sooner is
        pointless, so the poller waits for its normal interval."""
        return self.status in (400, 401, 403, 404)

    @property
    def fix(self) -> str | None:
        """What the operator must change, naming the setting, for a permanent answer."""
        if self.bad_key:
            return "check RIA_API_KEY (and that it belongs to RIA_USER_ID)"
        if self.status == 400 and self.code == "HTTPS_REQUIRED":
            return "RIA_API_URL must start with https:// (https://developers.ria.com)"
        if self.status == 400:
            return "check RIA_USER_ID and RIA_API_URL (https://developers.ria.com)"
        if self.status == 404:
            return "check RIA_API_URL: it should be https://developers.ria.com"
        return None


def _error_code(body: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or error.get("message") or "") or None
    return str(error) if error else None


class RiaClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str,
        user_id: str,
        timeout: float = 30.0,
    ) -> None:
        self.session = session
        self.url = base_url.rstrip("/") + "/auto/new/calls_stat"
        self._api_key = api_key
        self.user_id = user_id
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def calls_stat(self, day_from: date, day_to: date) -> list[Any]:
        """The raw call records for the inclusive local date range."""
        params = {
            "user_id": self.user_id,
            "from": day_from.isoformat(),
            "to": day_to.isoformat(),
            "api_key": self._api_key,
        }
        try:
            async with self.session.get(
                self.url,
                params=params,
                timeout=self.timeout,
                headers={"Accept": "application/json"},
            ) as response:
                body = await response.text(errors="replace")
                status = response.status
        except TimeoutError:
            raise RiaApiError("RIA API timed out") from None
        except asyncio.CancelledError:
            raise
        except aiohttp.ClientError as exc:
            # str(exc) of some aiohttp errors includes the URL: keep only the kind and host
            raise RiaApiError(f"RIA API unreachable: {type(exc).__name__}") from None
        if status != 200:
            code = _error_code(body)
            raise RiaApiError(
                f"RIA API answered HTTP {status}" + (f" ({code})" if code else ""),
                status=status,
                code=code,
            )
        # RIA has served JSON as text/html: parse whatever the content type says
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise RiaApiError(
                "RIA API answered something that is not JSON", status=status
            ) from None
        if isinstance(data, dict):
            data = data.get("calls", data.get("data", [data] if "call_id" in data else []))
        if not isinstance(data, list):
            raise RiaApiError("RIA API answered JSON that is not a list of calls", status=status)
        return data


__all__ = ["RiaApiError", "RiaClient"]
