"""TRUSTED_PROXIES: X-Forwarded-For is believed only from a trusted proxy."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings
from handlers.proxies import forwarded_for, networks

LOCAL = networks(["127.0.0.1/8", "::1"])


def test_a_direct_client_is_its_peer_whatever_it_claims() -> None:
    assert forwarded_for("203.0.113.9", "1.2.3.4", LOCAL) == "203.0.113.9"
    assert forwarded_for("203.0.113.9", None, LOCAL) == "203.0.113.9"


def test_a_trusted_proxy_names_the_client() -> None:
    assert forwarded_for("127.0.0.1", "198.51.100.7", LOCAL) == "198.51.100.7"
    assert forwarded_for("::1", "2001:db8::5", LOCAL) == "2001:db8::5"
    assert forwarded_for("::ffff:127.0.0.1", "198.51.100.7", LOCAL) == "198.51.100.7"


def test_only_the_hops_appended_by_trusted_proxies_count() -> None:
    # the client wrote "1.2.3.4" itself; Caddy appended the real address
    assert forwarded_for("127.0.0.1", "1.2.3.4, 198.51.100.7", LOCAL) == "198.51.100.7"
    chain = networks(["127.0.0.1/8", "10.0.0.0/8"])
    assert forwarded_for("127.0.0.1", "1.2.3.4, 198.51.100.7, 10.1.2.3", chain) == "198.51.100.7"
    # every hop trusted: the leftmost is the best we know
    assert forwarded_for("127.0.0.1", "10.0.0.2", chain) == "10.0.0.2"


def test_garbage_is_never_returned() -> None:
    assert forwarded_for("127.0.0.1", "\x1b]0;pwned\x07", LOCAL) == "127.0.0.1"
    assert forwarded_for("127.0.0.1", "198.51.100.7:4711", LOCAL) == "198.51.100.7"
    assert forwarded_for("127.0.0.1", "[2001:db8::5]:443", LOCAL) == "2001:db8::5"
    assert forwarded_for(None, "198.51.100.7", LOCAL) == "unknown"


def test_the_setting_defaults_to_loopback_and_names_a_bad_entry() -> None:
    assert load_settings(_env_file=None).trusted_networks == LOCAL
    s = load_settings(_env_file=None, trusted_proxies="10.0.0.0/8, 192.168.1.1")
    assert [str(n) for n in s.trusted_networks] == ["10.0.0.0/8", "192.168.1.1/32"]
    with pytest.raises(ConfigError, match='TRUSTED_PROXIES: "caddy" is not an IP'):
        load_settings(_env_file=None, trusted_proxies="caddy")
