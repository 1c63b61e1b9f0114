"""Forwarded headers count only from the proxies the operator lists (issue 16, item 2).

Uvicorn rewrites the client address from `X-Forwarded-For` when the peer is a host it trusts,
and it trusts 127.0.0.1 unless told otherwise; a client on loopback could then dodge the
per-IP login limit with a new forged address on every attempt. These tests run the real
`reelforge serve` process (embedded, and production with real PostgreSQL and Redis and an
S3 server) and send the attempts over loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from api.core.settings import Settings, SettingsError
from api.middleware.ratelimit import AUTH_LIMIT_PER_MINUTE
from tests.support.services import (
    ApiProcess,
    free_port,
    mode_env,
)


@contextmanager
def serving(tmp_path: Path, mode: str, **extra: str) -> Iterator[ApiProcess]:
    """`reelforge serve` in `mode`, ready; everything it needs torn down afterwards."""
    with ExitStack() as stack:
        env = mode_env(stack, mode, tmp_path / "data", **extra)
        api = stack.enter_context(ApiProcess(env, free_port(), tmp_path / "api.log"))
        api.start()
        yield api


def login(client: httpx.Client, forwarded_for: str) -> int:
    response = client.post(
        "/v1/auth/login",
        json={"handle": "nobody", "password": "a wrong guess"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    assert response.status_code in (401, 429), response.text
    return response.status_code


@pytest.mark.parametrize("mode", ["embedded", "production"])
def test_a_forged_forwarded_for_does_not_dodge_the_login_limit(tmp_path: Path, mode: str) -> None:
    with serving(tmp_path, mode) as api, httpx.Client(base_url=api.url, timeout=10) as client:
        statuses = [login(client, f"203.0.113.{n}") for n in range(AUTH_LIMIT_PER_MINUTE + 3)]
    assert statuses == [401] * AUTH_LIMIT_PER_MINUTE + [429] * 3, api.log_tail()


def test_a_listed_proxy_is_believed(tmp_path: Path) -> None:
    """The control: with loopback listed as a proxy, each forwarded address is a client of
    its own, and one address still runs out of its own budget."""
    with (
        serving(tmp_path, "embedded", REELFORGE_TRUSTED_PROXIES="127.0.0.1") as api,
        httpx.Client(base_url=api.url, timeout=10) as client,
    ):
        spread = [login(client, f"203.0.113.{n}") for n in range(AUTH_LIMIT_PER_MINUTE + 3)]
        one = [login(client, "198.51.100.7") for _ in range(AUTH_LIMIT_PER_MINUTE + 1)]
    assert spread == [401] * (AUTH_LIMIT_PER_MINUTE + 3)
    assert one == [401] * AUTH_LIMIT_PER_MINUTE + [429]


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("", ()),
        ("127.0.0.1", ("127.0.0.1",)),
        ("10.0.0.0/8, ::1,172.28.0.10", ("10.0.0.0/8", "::1", "172.28.0.10")),
    ],
)
def test_trusted_proxies_setting(tmp_path: Path, raw: str, parsed: tuple[str, ...]) -> None:
    env = {"REELFORGE_DATA_DIR": str(tmp_path), "REELFORGE_TRUSTED_PROXIES": raw}
    assert Settings.from_env(env).trusted_proxies == parsed


@pytest.mark.parametrize("raw", ["*", "edge", "10.0.0.0/33", "127.0.0.1:8080"])
def test_trusted_proxies_are_addresses_or_networks(tmp_path: Path, raw: str) -> None:
    env = {"REELFORGE_DATA_DIR": str(tmp_path), "REELFORGE_TRUSTED_PROXIES": raw}
    with pytest.raises(SettingsError, match="REELFORGE_TRUSTED_PROXIES"):
        Settings.from_env(env)
