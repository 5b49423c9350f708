"""Which address a request came from, for log lines: the peer, or, when the peer is a proxy
we trust (TRUSTED_PROXIES), the address that proxy says it forwarded for.

X-Forwarded-For is read from the right: each trusted hop appended the address it got the
request from, so the first address from the right that is not a trusted proxy is the client.
Anything left of it was written by the client itself and proves nothing."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def networks(values: Iterable[str]) -> tuple[Network, ...]:
    """'127.0.0.1/8', '::1', '10.0.0.5' to networks; ValueError names a bad one."""
    found = []
    for value in values:
        try:
            found.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f'"{value[:60]}" is not an IP address or network (e.g. 10.0.0.0/8)'
            ) from None
    return tuple(found)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]
) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in trusted)


def forwarded_for(peer: str | None, header: str | None, trusted: Sequence[Network]) -> str:
    """The client's address given the peer's and its X-Forwarded-For header."""
    current = _address(peer) if peer else None
    if current is None:
        return UNKNOWN
    if not header:
        return str(current)
    hops = [part for part in header.split(",") if part.strip()]
    while _trusted(current, trusted) and hops:
        claimed = _address(hops.pop())
        if claimed is None:  # a trusted hop forwarded garbage: the hop is what we know
            break
        current = claimed
    return str(current)


def seen_from(request: web.BaseRequest) -> tuple[str | None, str | None]:
    """The peer's address and the X-Forwarded-For it sent (all such headers, joined): what
    `forwarded_for` needs, cheap to keep until a log line asks for the client."""
    headers = request.headers.getall("X-Forwarded-For", [])
    return request.remote, ",".join(headers) or None


def client_address(request: web.BaseRequest, trusted: Sequence[Network]) -> str:
    """The address to name in a log line: X-Forwarded-For is believed only from a trusted
    proxy. Always an IP address (or "unknown"): never text a client chose."""
    return forwarded_for(*seen_from(request), trusted)
