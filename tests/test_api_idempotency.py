"""Idempotency-Key on POST (draft-ietf-httpapi-idempotency-key-header) through the real app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine

from api.core.db import create_schema, now_ms, sync_engine
from api.core.settings import Settings
from api.core.tables import comments, follows, idempotency_keys, likes, users, videos
from api.middleware.idempotency import IN_FLIGHT_LEASE_MS, KEY_TTL_MS, PENDING, fingerprint
from tests.support.api import api_client, auth, make_settings, register, seed_video


@contextmanager
def app(tmp_path: Path, **overrides: Any) -> Iterator[tuple[Any, Settings, Engine]]:
    settings = make_settings(tmp_path, **overrides)
    with api_client(tmp_path, **overrides) as client:
        engine = sync_engine(settings)
        try:
            yield client, settings, engine
        finally:
            engine.dispose()


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def keyed(token: str, key: str) -> dict[str, str]:
    return {**auth(token), "Idempotency-Key": key}


def _error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_comment_retry_with_the_same_key_counts_once(tmp_path: Path) -> None:
    with app(tmp_path) as (client, settings, engine):
        owner, token = register(client)
        video = seed_video(settings, owner)
        path = f"/v1/videos/{video}/comments"
        first = client.post(path, json={"body": "first!"}, headers=keyed(token, "retry-1"))
        second = client.post(path, json={"body": "first!"}, headers=keyed(token, "retry-1"))
        assert first.status_code == second.status_code == 201
        assert "idempotent-replayed" not in first.headers
        assert second.headers["idempotent-replayed"] == "true"
        assert second.content == first.content
        assert second.headers["content-type"] == first.headers["content-type"]
        assert count(engine, comments, comments.c.video_id == video) == 1
        with engine.connect() as conn:
            counter = conn.execute(select(videos.c.comment_count).where(videos.c.id == video))
            assert counter.scalar() == 1
        # A new key is a new comment.
        third = client.post(path, json={"body": "first!"}, headers=keyed(token, "retry-2"))
        assert third.status_code == 201 and third.json()["id"] != first.json()["id"]
        assert count(engine, comments, comments.c.video_id == video) == 2


def test_like_and_follow_retries_replay(tmp_path: Path) -> None:
    with app(tmp_path) as (client, settings, engine):
        owner, _ = register(client)
        fan, token = register(client)
        video = seed_video(settings, owner)
        for path in (f"/v1/videos/{video}/like", f"/v1/users/{owner}/follow"):
            responses = [client.post(path, headers=keyed(token, "k-" + path)) for _ in range(3)]
            assert [r.status_code for r in responses] == [200, 200, 200]
            assert [r.headers.get("idempotent-replayed") for r in responses] == [
                None,
                "true",
                "true",
            ]
            assert len({r.content for r in responses}) == 1
        assert count(engine, likes, likes.c.video_id == video) == 1
        assert count(engine, follows, follows.c.followee_id == owner) == 1
        with engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == fan)).one()
            assert row.following_count == 1


def test_same_key_with_other_parameters_is_422(tmp_path: Path) -> None:
    with app(tmp_path) as (client, settings, engine):
        owner, token = register(client)
        video = seed_video(settings, owner)
        other = seed_video(settings, owner)
        path = f"/v1/videos/{video}/comments"
        ok = client.post(path, json={"body": "one"}, headers=keyed(token, "reuse"))
        assert ok.status_code == 201
        other_body = client.post(path, json={"body": "two"}, headers=keyed(token, "reuse"))
        _error(other_body, 422, "idempotency_key_reused")
        other_path = client.post(
            f"/v1/videos/{other}/comments", json={"body": "one"}, headers=keyed(token, "reuse")
        )
        _error(other_path, 422, "idempotency_key_reused")
        other_query = client.post(
            path + "?x=1", json={"body": "one"}, headers=keyed(token, "reuse")
        )
        _error(other_query, 422, "idempotency_key_reused")
        assert count(engine, comments) == 1
        # The original request still replays after the refused reuses.
        again = client.post(path, json={"body": "one"}, headers=keyed(token, "reuse"))
        assert again.headers["idempotent-replayed"] == "true" and again.content == ok.content


def test_keys_are_scoped_per_user(tmp_path: Path) -> None:
    with app(tmp_path) as (client, settings, engine):
        owner, token_a = register(client)
        _, token_b = register(client)
        video = seed_video(settings, owner)
        path = f"/v1/videos/{video}/comments"
        a = client.post(path, json={"body": "same"}, headers=keyed(token_a, "shared-key"))
        b = client.post(path, json={"body": "same"}, headers=keyed(token_b, "shared-key"))
        assert a.status_code == b.status_code == 201
        assert "idempotent-replayed" not in b.headers
        assert a.json()["author"]["id"] != b.json()["author"]["id"]
        assert count(engine, comments) == 2


def test_error_responses_below_500_are_replayed_too(tmp_path: Path) -> None:
    with app(tmp_path) as (client, settings, engine):
        owner, token = register(client)
        video = seed_video(settings, owner)
        path = f"/v1/videos/{video}/comments"
        first = client.post(path, json={"body": "   "}, headers=keyed(token, "bad-1"))
        _error(first, 422, "validation_failed")
        second = client.post(path, json={"body": "   "}, headers=keyed(token, "bad-1"))
        _error(second, 422, "validation_failed")
        assert second.headers["idempotent-replayed"] == "true"
        with engine.connect() as conn:
            stored = conn.execute(select(idempotency_keys.c.status_code)).scalars().all()
        assert stored == [422]


def test_a_request_still_running_is_409(tmp_path: Path) -> None:
    with app(tmp_path) as (client, settings, engine):
        owner, token = register(client)
        video = seed_video(settings, owner)
        path = f"/v1/videos/{video}/comments"
        body = json.dumps({"body": "slow"}).encode()
        scope: Any = {"method": "POST", "path": path, "query_string": b""}
        with engine.begin() as conn:
            conn.execute(
                insert(idempotency_keys).values(
                    user_id=owner,
                    key="running",
                    fingerprint=fingerprint(scope, body),
                    status_code=PENDING,
                    body=b"",
                    created_at=now_ms(),
                )
            )
        headers = {**keyed(token, "running"), "content-type": "application/json"}
        busy = client.post(path, content=body, headers=headers)
        _error(busy, 409, "idempotency_key_in_use")
        assert busy.headers["retry-after"] == "1"
        assert count(engine, comments) == 0
        # A first attempt that died long ago (no response ever stored) frees its key.
        with engine.begin() as conn:
            conn.execute(
                update(idempotency_keys).values(created_at=now_ms() - IN_FLIGHT_LEASE_MS - 1000)
            )
        taken = client.post(path, content=body, headers=headers)
        assert taken.status_code == 201 and "idempotent-replayed" not in taken.headers
        replay = client.post(path, content=body, headers=headers)
        assert replay.headers["idempotent-replayed"] == "true" and replay.content == taken.content
        assert count(engine, comments) == 1


def test_keys_expire_after_24_hours(tmp_path: Path) -> None:
    with app(tmp_path) as (client, settings, engine):
        owner, token = register(client)
        video = seed_video(settings, owner)
        path = f"/v1/videos/{video}/comments"
        client.post(path, json={"body": "old"}, headers=keyed(token, "daily"))
        with engine.begin() as conn:
            conn.execute(update(idempotency_keys).values(created_at=now_ms() - KEY_TTL_MS - 1))
        # Another body with the expired key is a new request, not a reuse.
        fresh = client.post(path, json={"body": "new"}, headers=keyed(token, "daily"))
        assert fresh.status_code == 201 and "idempotent-replayed" not in fresh.headers
        assert count(engine, comments) == 2
        replay = client.post(path, json={"body": "new"}, headers=keyed(token, "daily"))
        assert replay.headers["idempotent-replayed"] == "true"
        assert count(engine, idempotency_keys) == 1


def test_a_5xx_is_not_stored_and_the_retry_runs_again(tmp_path: Path) -> None:
    with app(tmp_path) as (client, settings, engine):
        owner, token = register(client)
        video = seed_video(settings, owner)
        path = f"/v1/videos/{video}/comments"
        # A real fault: the comments table is gone while the request runs.
        comments.drop(engine)
        broken = client.post(path, json={"body": "x"}, headers=keyed(token, "flaky"))
        _error(broken, 500, "internal")
        assert count(engine, idempotency_keys) == 0
        create_schema(engine)
        with engine.begin() as conn:
            conn.execute(update(videos).values(comment_count=0))
        retry = client.post(path, json={"body": "x"}, headers=keyed(token, "flaky"))
        assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
        assert count(engine, comments) == 1


def test_anonymous_requests_and_other_methods_are_not_recorded(tmp_path: Path) -> None:
    with app(tmp_path) as (client, settings, engine):
        owner, token = register(client)
        video = seed_video(settings, owner)
        anon = client.post(f"/v1/videos/{video}/like", headers={"Idempotency-Key": "anon"})
        _error(anon, 401, "unauthorized")
        liked = client.post(f"/v1/videos/{video}/like", headers=auth(token))
        assert liked.status_code == 200
        gone = client.delete(f"/v1/videos/{video}/like", headers=keyed(token, "del"))
        again = client.delete(f"/v1/videos/{video}/like", headers=keyed(token, "del"))
        assert gone.status_code == again.status_code == 200
        assert "idempotent-replayed" not in again.headers
        got = client.get(f"/v1/users/{owner}", headers=keyed(token, "get"))
        assert got.status_code == 200 and "idempotent-replayed" not in got.headers
        assert count(engine, idempotency_keys) == 0


def test_bodies_over_1_mib_pass_through(tmp_path: Path) -> None:
    with app(tmp_path) as (client, settings, engine):
        owner, token = register(client)
        video = seed_video(settings, owner)
        big = json.dumps({"body": "x" * (1024 * 1024 + 10)}).encode()
        headers = {**keyed(token, "big"), "content-type": "application/json"}
        responses = [
            client.post(f"/v1/videos/{video}/comments", content=big, headers=headers)
            for _ in range(2)
        ]
        for response in responses:
            _error(response, 413, "payload_too_large")
            assert "idempotent-replayed" not in response.headers
        assert count(engine, idempotency_keys) == 0


def test_quoted_and_bare_keys_are_the_same_key(tmp_path: Path) -> None:
    """The header is a Structured Field String (RFC 8941 §3.3.3); bare values are tolerated."""
    with app(tmp_path) as (client, settings, engine):
        owner, token = register(client)
        video = seed_video(settings, owner)
        path = f"/v1/videos/{video}/comments"
        quoted = client.post(path, json={"body": "q"}, headers=keyed(token, '"8e03978e-40d5"'))
        bare = client.post(path, json={"body": "q"}, headers=keyed(token, "8e03978e-40d5"))
        assert quoted.status_code == 201 and bare.headers["idempotent-replayed"] == "true"
        assert count(engine, comments) == 1


@pytest.mark.parametrize("key", ["", "k" * 129, '""'])
def test_malformed_keys_are_400(tmp_path: Path, key: str) -> None:
    with app(tmp_path) as (client, settings, engine):
        owner, token = register(client)
        video = seed_video(settings, owner)
        response = client.post(f"/v1/videos/{video}/like", headers=keyed(token, key))
        _error(response, 400, "bad_request")
        assert count(engine, likes) == 0


def test_events_batch_retry_with_key_replays_the_first_answer(tmp_path: Path) -> None:
    with app(tmp_path) as (client, settings, engine):
        owner, token = register(client)
        video = seed_video(settings, owner)
        batch = {"events": [{"event_id": "p1", "video_id": video, "type": "play"}]}
        first = client.post("/v1/events", json=batch, headers=keyed(token, "batch-1"))
        second = client.post("/v1/events", json=batch, headers=keyed(token, "batch-1"))
        # Without the key the retry would say duplicates=1; with it, the first answer comes back.
        assert first.json() == second.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
        assert second.headers["idempotent-replayed"] == "true"
        with engine.begin() as conn:
            conn.execute(delete(idempotency_keys))
            views = conn.execute(select(videos.c.view_count).where(videos.c.id == video))
            assert views.scalar() == 1
