"""Rate limits on the real app: per user, per IP for anonymous calls, stricter for auth routes,
in process memory (embedded) and in a real Redis (the production cache)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from api.middleware.ratelimit import AUTH_LIMIT_PER_MINUTE, WINDOW_SECONDS
from tests.support.api import api_client, auth, make_settings, register, seed_video
from tests.support.services import redis_database


def assert_limited(response: Any) -> int:
    assert response.status_code == 429, response.text
    assert response.json() == {
        "error": {"code": "rate_limited", "message": response.json()["error"]["message"]}
    }
    assert response.json()["error"]["message"]
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= WINDOW_SECONDS
    assert response.headers["ratelimit-remaining"] == "0"
    return int(retry_after)


def test_user_is_limited_after_the_configured_count(tmp_path: Path) -> None:
    with api_client(tmp_path, rate_limit_per_minute=5) as client:
        owner, token = register(client)
        video = seed_video(make_settings(tmp_path), owner)
        allowed = [client.post(f"/v1/videos/{video}/like", headers=auth(token)) for _ in range(5)]
        assert [r.status_code for r in allowed] == [200] * 5
        assert [r.headers["ratelimit-remaining"] for r in allowed] == ["4", "3", "2", "1", "0"]
        assert all(r.headers["ratelimit-limit"] == "5" for r in allowed)
        assert_limited(client.delete(f"/v1/videos/{video}/like", headers=auth(token)))
        assert_limited(client.post(f"/v1/videos/{video}/like", headers=auth(token)))
        # The refused unlike did not run: the like is still there.
        assert client.get(f"/v1/users/{owner}").status_code == 200
        _, other = register(client)
        fresh = client.post(f"/v1/videos/{video}/like", headers=auth(other))
        assert fresh.status_code == 200 and fresh.json() == {"liked": True, "like_count": 2}


def test_gets_are_never_limited(tmp_path: Path) -> None:
    with api_client(tmp_path, rate_limit_per_minute=2) as client:
        owner, token = register(client)
        for _ in range(3):
            client.post(f"/v1/users/{owner}/follow", headers=auth(token))
        for path in ("/healthz", f"/v1/users/{owner}", f"/v1/users/{owner}/videos", "/readyz"):
            for _ in range(10):
                response = client.get(path, headers=auth(token))
                assert response.status_code == 200, (path, response.text)
                assert "ratelimit-limit" not in response.headers


def test_anonymous_mutations_count_per_ip(tmp_path: Path) -> None:
    with api_client(tmp_path, rate_limit_per_minute=3) as client:
        owner, token = register(client)
        video = seed_video(make_settings(tmp_path), owner)
        statuses = [client.post(f"/v1/videos/{video}/like").status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        assert_limited(client.post(f"/v1/videos/{video}/like"))
        # An invalid token is anonymous too: it spends the same IP budget.
        assert_limited(client.post(f"/v1/videos/{video}/like", headers=auth("forged")))
        # A signed-in user from the same address has a budget of their own.
        assert client.post(f"/v1/videos/{video}/like", headers=auth(token)).status_code == 200


def test_login_and_register_have_a_stricter_per_ip_limit(tmp_path: Path) -> None:
    with api_client(tmp_path, rate_limit_per_minute=1000) as client:
        register(client, "victim", password="the real one")
        spent = 1
        while spent < AUTH_LIMIT_PER_MINUTE:
            guess = client.post("/v1/auth/login", json={"handle": "victim", "password": "guess!!!"})
            assert guess.status_code == 401
            spent += 1
        assert_limited(
            client.post("/v1/auth/login", json={"handle": "victim", "password": "the real one"})
        )
        assert_limited(
            client.post("/v1/auth/register", json={"handle": "newbie", "password": "12345678"})
        )


def test_the_auth_limit_is_a_setting(tmp_path: Path) -> None:
    """`REELFORGE_AUTH_RATE_LIMIT_PER_MINUTE` (issue 16, item 6: the contract test raises it)."""
    with api_client(tmp_path, auth_rate_limit_per_minute=3) as client:
        register(client, "victim", password="the real one")
        guesses = [
            client.post("/v1/auth/login", json={"handle": "victim", "password": "guess!!!"})
            for _ in range(2)
        ]
        assert [g.status_code for g in guesses] == [401, 401]
        assert_limited(
            client.post("/v1/auth/login", json={"handle": "victim", "password": "the real one"})
        )


def test_retry_after_counts_down_with_the_window(tmp_path: Path) -> None:
    with api_client(tmp_path, rate_limit_per_minute=1) as client:
        owner, token = register(client)
        path = f"/v1/users/{owner}/follow"
        assert client.delete(path, headers=auth(token)).status_code == 422
        first = assert_limited(client.delete(path, headers=auth(token)))
        time.sleep(2.1)
        later = assert_limited(client.delete(path, headers=auth(token)))
        assert later <= first - 1


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A leased database of the test Redis (tests/support/servers.py; fails when it does not
    answer)."""
    with redis_database() as url:
        yield url


def test_limits_are_shared_through_redis(tmp_path: Path, redis_url: str) -> None:
    """Two API apps (two processes in production) share one window per user."""
    handle = "rl" + secrets.token_hex(6)
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    common = {"rate_limit_per_minute": 4, "redis_url": redis_url, "database_url": database_url}
    with api_client(first_dir, **common) as one, api_client(second_dir, **common) as two:
        owner, token = register(one, handle)
        video = seed_video(make_settings(first_dir, **common), owner)
        path = f"/v1/videos/{video}/like"
        statuses = [c.post(path, headers=auth(token)).status_code for c in (one, two, one, two)]
        assert statuses == [200] * 4
        assert_limited(one.post(path, headers=auth(token)))
        assert_limited(two.post(path, headers=auth(token)))
    keys = redis.Redis.from_url(redis_url).keys(f"reelforge:rl:user:{owner}")
    assert len(keys) == 1
