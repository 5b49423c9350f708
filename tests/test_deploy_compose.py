"""compose.yaml: hardened by default, Caddy in front under the `https` profile.

`hardening_args()` turns the bot service's settings into `podman run` arguments, so that the
container test (tests/test_container.py) runs the image exactly as compose would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "compose.yaml"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def service(name: str) -> dict[str, Any]:
    """One service, with the `<<: *hardening` merge already applied by the YAML loader."""
    found: dict[str, Any] = compose()["services"][name]
    return found


def hardening_args(name: str = "bot") -> list[str]:
    """The compose settings of a service as `podman run` arguments (what docker compose does)."""
    svc = service(name)
    args: list[str] = []
    if svc.get("read_only"):
        # docker's --read-only adds no tmpfs of its own; podman's would add /tmp and others
        args += ["--read-only", "--read-only-tmpfs=false"]
    for mount in svc.get("tmpfs", []):
        # docker starts a tmpfs empty; podman would copy the image's files into it
        path, _, options = mount.partition(":")
        args += ["--tmpfs", f"{path}:{options + ',' if options else ''}notmpcopyup"]
    for cap in svc.get("cap_drop", []):
        args += ["--cap-drop", cap]
    for cap in svc.get("cap_add", []):
        args += ["--cap-add", cap]
    for opt in svc.get("security_opt", []):
        args += ["--security-opt", opt]
    if "mem_limit" in svc:
        args += ["--memory", str(svc["mem_limit"])]
    if "pids_limit" in svc:
        args += ["--pids-limit", str(svc["pids_limit"])]
    logging = svc.get("logging", {})
    if logging:
        # podman has no json-file driver of its own (it maps to k8s-file) nor max-file
        args += ["--log-driver", "k8s-file"]
        if "max-size" in logging.get("options", {}):
            args += ["--log-opt", f"max-size={logging['options']['max-size']}"]
    return args


def test_bot_service_is_hardened_by_default() -> None:
    bot = service("bot")
    assert bot["read_only"] is True
    assert bot["cap_drop"] == ["ALL"]
    assert "cap_add" not in bot
    assert bot["security_opt"] == ["no-new-privileges:true"]
    assert [m.split(":")[0] for m in bot["tmpfs"]] == ["/tmp"]
    assert bot["mem_limit"] and bot["pids_limit"]
    assert bot["logging"]["driver"] == "json-file"
    assert set(bot["logging"]["options"]) == {"max-size", "max-file"}
    assert bot["restart"] == "unless-stopped"
    # the plain-HTTP port is published on loopback unless the operator says otherwise
    # Caddy's peer address is on the project's network, which the bot trusts for X-Forwarded-For
    (subnet,) = [c["subnet"] for c in compose()["networks"]["default"]["ipam"]["config"]]
    assert subnet in bot["environment"]["TRUSTED_PROXIES"]
    (port,) = bot["ports"]
    assert port.startswith("${BOT_BIND:-127.0.0.1}:"), port
    assert "profiles" not in bot


def test_https_profile_puts_caddy_in_front() -> None:
    caddy = service("caddy")
    assert caddy["profiles"] == ["https"]
    assert caddy["read_only"] is True
    assert caddy["cap_drop"] == ["ALL"] and caddy["cap_add"] == ["NET_BIND_SERVICE"]
    assert caddy["depends_on"]["bot"]["condition"] == "service_healthy"
    assert caddy["environment"]["UPSTREAM"] == "bot:8080"
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert {p.split(":")[-1].split("/")[0] for p in caddy["ports"]} == {"80", "443"}
    assert (REPO / "deploy" / "Caddyfile").is_file()
    # the volumes it names exist
    names = {v.split(":")[0] for v in caddy["volumes"] if not v.startswith(".")}
    assert names <= set(compose()["volumes"])


def test_hardening_args_follow_compose() -> None:
    args = hardening_args("bot")
    assert "--read-only" in args
    assert args[args.index("--cap-drop") + 1] == "ALL"
    assert args[args.index("--security-opt") + 1] == "no-new-privileges:true"
    assert args[args.index("--tmpfs") + 1].startswith("/tmp:")
