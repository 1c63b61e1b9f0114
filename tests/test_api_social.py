"""Social API on the real app: likes, follows, comments and watch events.

Likes, follows and events run twice: on the embedded SQLite database and on a fresh database in
the real local PostgreSQL server (tests/support/pg.py), through the same routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from api.core.db import now_ms, sync_engine
from api.core.settings import Settings
from api.core.tables import comments, follows, likes, seen, users, videos, watch_events
from tests.support.api import api_client, auth, make_settings, register, seed_video
from tests.support.pg import fresh_database

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Settings overrides for one database backend."""
    if request.param == "postgresql":
        return {"database_url": request.getfixturevalue("pg_url")}
    return {}


@contextmanager
def social_app(tmp_path: Path, **overrides: Any) -> Iterator[tuple[Any, Settings]]:
    with api_client(tmp_path, **overrides) as client:
        yield client, make_settings(tmp_path, **overrides)


def scalar(settings: Settings, query: Any) -> Any:
    engine = sync_engine(settings)
    try:
        with engine.connect() as conn:
            return conn.execute(query).scalar()
    finally:
        engine.dispose()


def video_counter(settings: Settings, video_id: str, column: str) -> int:
    return int(scalar(settings, select(videos.c[column]).where(videos.c.id == video_id)))


def user_counter(settings: Settings, user_id: str, column: str) -> int:
    return int(scalar(settings, select(users.c[column]).where(users.c.id == user_id)))


def _error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


# --- likes ---------------------------------------------------------------------------------


def test_like_and_unlike_are_idempotent(tmp_path: Path, backend: dict[str, Any]) -> None:
    with social_app(tmp_path, **backend) as (client, settings):
        owner, _ = register(client)
        _, token = register(client)
        _, token2 = register(client)
        video = seed_video(settings, owner)
        path = f"/v1/videos/{video}/like"
        first = client.post(path, headers=auth(token))
        assert first.status_code == 200 and first.json() == {"liked": True, "like_count": 1}
        again = client.post(path, headers=auth(token))
        assert again.json() == {"liked": True, "like_count": 1}
        other = client.post(path, headers=auth(token2))
        assert other.json() == {"liked": True, "like_count": 2}
        rows = scalar(
            settings, select(func.count()).select_from(likes).where(likes.c.video_id == video)
        )
        assert rows == 2 and video_counter(settings, video, "like_count") == 2
        gone = client.delete(path, headers=auth(token))
        assert gone.status_code == 200 and gone.json() == {"liked": False, "like_count": 1}
        gone_again = client.delete(path, headers=auth(token))
        assert gone_again.json() == {"liked": False, "like_count": 1}
        assert video_counter(settings, video, "like_count") == 1


def test_concurrent_likes_count_each_user_once(tmp_path: Path, backend: dict[str, Any]) -> None:
    with social_app(tmp_path, **backend) as (client, settings):
        owner, _ = register(client)
        tokens = [register(client)[1] for _ in range(6)]
        video = seed_video(settings, owner)
        path = f"/v1/videos/{video}/like"
        # Every user likes three times at once: 18 requests racing on one row and one counter.
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda t: client.post(path, headers=auth(t)), tokens * 3))
        assert all(r.status_code == 200 for r in results), [r.text for r in results]
        assert video_counter(settings, video, "like_count") == len(tokens)
        rows = select(func.count()).select_from(likes).where(likes.c.video_id == video)
        assert scalar(settings, rows) == len(tokens)


@pytest.mark.parametrize(
    ("status", "privacy", "visible_to_others"),
    [
        ("published", "public", True),
        ("published", "unlisted", True),
        ("published", "private", False),
        ("processing", "public", False),
        ("awaiting_upload", "public", False),
        ("rejected", "public", False),
        ("deleted", "public", False),
    ],
)
def test_like_only_what_the_caller_may_see(
    tmp_path: Path, backend: dict[str, Any], status: str, privacy: str, visible_to_others: bool
) -> None:
    with social_app(tmp_path, **backend) as (client, settings):
        owner, owner_token = register(client)
        _, token = register(client)
        video = seed_video(settings, owner, status=status, privacy=privacy)
        response = client.post(f"/v1/videos/{video}/like", headers=auth(token))
        if visible_to_others:
            assert response.json() == {"liked": True, "like_count": 1}
        else:
            _error(response, 404, "not_found")
            _error(client.delete(f"/v1/videos/{video}/like", headers=auth(token)), 404, "not_found")
            assert video_counter(settings, video, "like_count") == 0
        own = client.post(f"/v1/videos/{video}/like", headers=auth(owner_token))
        if status == "deleted":
            _error(own, 404, "not_found")
        else:
            assert own.status_code == 200 and own.json()["liked"] is True


def test_like_needs_a_token_and_a_real_video(tmp_path: Path, backend: dict[str, Any]) -> None:
    with social_app(tmp_path, **backend) as (client, settings):
        owner, token = register(client)
        video = seed_video(settings, owner)
        _error(client.post(f"/v1/videos/{video}/like"), 401, "unauthorized")
        _error(client.delete(f"/v1/videos/{video}/like"), 401, "unauthorized")
        bad = {"Authorization": "Bearer not-a-token"}
        _error(client.post(f"/v1/videos/{video}/like", headers=bad), 401, "unauthorized")
        _error(
            client.post("/v1/videos/v_nosuchvideo0000/like", headers=auth(token)), 404, "not_found"
        )
        assert video_counter(settings, video, "like_count") == 0


# --- follows -------------------------------------------------------------------------------


def test_follow_and_unfollow_are_idempotent(tmp_path: Path, backend: dict[str, Any]) -> None:
    with social_app(tmp_path, **backend) as (client, settings):
        creator, _ = register(client)
        fan, fan_token = register(client)
        _, other_token = register(client)
        path = f"/v1/users/{creator}/follow"
        assert client.post(path, headers=auth(fan_token)).json() == {
            "following": True,
            "follower_count": 1,
        }
        assert client.post(path, headers=auth(fan_token)).json() == {
            "following": True,
            "follower_count": 1,
        }
        assert client.post(path, headers=auth(other_token)).json()["follower_count"] == 2
        assert user_counter(settings, creator, "follower_count") == 2
        assert user_counter(settings, fan, "following_count") == 1
        profile = client.get(f"/v1/users/{creator}").json()
        assert profile["follower_count"] == 2
        assert client.delete(path, headers=auth(fan_token)).json() == {
            "following": False,
            "follower_count": 1,
        }
        assert client.delete(path, headers=auth(fan_token)).json() == {
            "following": False,
            "follower_count": 1,
        }
        assert user_counter(settings, fan, "following_count") == 0
        rows = select(func.count()).select_from(follows).where(follows.c.followee_id == creator)
        assert scalar(settings, rows) == 1


def test_mutual_follows_at_once_keep_counters_right(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    with social_app(tmp_path, **backend) as (client, settings):
        people = [register(client) for _ in range(4)]
        pairs = [(a, b) for a in people for b in people if a[0] != b[0]]
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(
                pool.map(
                    lambda p: client.post(f"/v1/users/{p[1][0]}/follow", headers=auth(p[0][1])),
                    pairs,
                )
            )
        assert all(r.status_code == 200 for r in results), [r.text for r in results]
        for user_id, _ in people:
            assert user_counter(settings, user_id, "follower_count") == 3
            assert user_counter(settings, user_id, "following_count") == 3


def test_follow_yourself_or_nobody(tmp_path: Path, backend: dict[str, Any]) -> None:
    with social_app(tmp_path, **backend) as (client, settings):
        me, token = register(client)
        _error(client.post(f"/v1/users/{me}/follow", headers=auth(token)), 422, "validation_failed")
        _error(
            client.delete(f"/v1/users/{me}/follow", headers=auth(token)), 422, "validation_failed"
        )
        _error(
            client.post("/v1/users/u_nosuchuser00000/follow", headers=auth(token)), 404, "not_found"
        )
        _error(client.post(f"/v1/users/{me}/follow"), 401, "unauthorized")
        assert user_counter(settings, me, "following_count") == 0
        assert user_counter(settings, me, "follower_count") == 0


# --- comments ------------------------------------------------------------------------------


def test_comment_shape_and_counter(tmp_path: Path) -> None:
    with social_app(tmp_path) as (client, settings):
        owner, _ = register(client)
        author, token = register(client, "commenter")
        video = seed_video(settings, owner)
        before = now_ms()
        response = client.post(
            f"/v1/videos/{video}/comments",
            json={"body": "  nice\tclip\n\u0007 "},
            headers=auth(token),
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {"id", "video_id", "author", "body", "created_at"}
        assert body["id"].startswith("c_") and body["video_id"] == video
        assert body["author"] == {"id": author, "handle": "commenter", "display_name": "commenter"}
        assert body["body"] == "nice\tclip"
        assert before <= body["created_at"] <= now_ms()
        assert video_counter(settings, video, "comment_count") == 1
        listed = client.get(f"/v1/videos/{video}/comments").json()
        assert listed == {"comments": [body], "next_cursor": None}


@pytest.mark.parametrize(
    ("text", "ok"),
    [("", False), ("   \n ", False), ("x" * 2001, False), ("x" * 2000, True), (" y ", True)],
)
def test_comment_length_rules(tmp_path: Path, text: str, ok: bool) -> None:
    with social_app(tmp_path) as (client, settings):
        owner, token = register(client)
        video = seed_video(settings, owner)
        response = client.post(
            f"/v1/videos/{video}/comments", json={"body": text}, headers=auth(token)
        )
        if ok:
            assert response.status_code == 201 and response.json()["body"] == text.strip()
        else:
            _error(response, 422, "validation_failed")
        assert video_counter(settings, video, "comment_count") == (1 if ok else 0)


def test_comments_page_newest_first(tmp_path: Path) -> None:
    with social_app(tmp_path) as (client, settings):
        owner, _ = register(client)
        _, token = register(client)
        video = seed_video(settings, owner)
        made = [
            client.post(
                f"/v1/videos/{video}/comments",
                json={"body": f"comment {i}"},
                headers=auth(token),
            ).json()
            for i in range(23)
        ]
        expected = [
            c["id"] for c in sorted(made, key=lambda c: (c["created_at"], c["id"]), reverse=True)
        ]
        seen_ids: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 5}
            if cursor:
                params["cursor"] = cursor
            page = client.get(f"/v1/videos/{video}/comments", params=params).json()
            seen_ids += [c["id"] for c in page["comments"]]
            cursor = page["next_cursor"]
            pages += 1
            if cursor is None:
                break
        assert seen_ids == expected and pages == 5
        assert video_counter(settings, video, "comment_count") == 23
        assert len(client.get(f"/v1/videos/{video}/comments").json()["comments"]) == 20
        _error(client.get(f"/v1/videos/{video}/comments?limit=51"), 422, "validation_failed")
        _error(client.get(f"/v1/videos/{video}/comments?cursor=%%%"), 400, "bad_request")


def test_comments_on_hidden_videos_are_404(tmp_path: Path) -> None:
    with social_app(tmp_path) as (client, settings):
        owner, owner_token = register(client)
        _, token = register(client)
        private = seed_video(settings, owner, privacy="private")
        path = f"/v1/videos/{private}/comments"
        _error(client.post(path, json={"body": "hi"}, headers=auth(token)), 404, "not_found")
        _error(client.get(path), 404, "not_found")
        _error(client.get(path, headers=auth(token)), 404, "not_found")
        assert (
            client.post(path, json={"body": "note to self"}, headers=auth(owner_token)).status_code
            == 201
        )
        assert len(client.get(path, headers=auth(owner_token)).json()["comments"]) == 1
        _error(client.post(path, json={"body": "hi"}), 401, "unauthorized")


# --- watch events --------------------------------------------------------------------------


def _event(event_id: str, video_id: str, kind: str, value: int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": event_id, "video_id": video_id, "type": kind}
    if value is not None:
        event["value"] = value
    return event


COUNTED = {
    "impression": "impression_count",
    "play": "view_count",
    "completed": "completion_count",
    "skip": "skip_count",
    "share": "share_count",
    "not_interested": "not_interested_count",
}


def test_events_bump_counters_once(tmp_path: Path, backend: dict[str, Any]) -> None:
    with social_app(tmp_path, **backend) as (client, settings):
        owner, _ = register(client)
        viewer, token = register(client)
        video = seed_video(settings, owner)
        batch = [_event(f"e-{kind}", video, kind) for kind in COUNTED]
        batch += [_event("e-watch", video, "watch_ms", 4321), _event("e-loop", video, "loop")]
        first = client.post("/v1/events", json={"events": batch}, headers=auth(token))
        assert first.status_code == 200, first.text
        assert first.json() == {"accepted": len(batch), "duplicates": 0, "rejected": []}
        for column in COUNTED.values():
            assert video_counter(settings, video, column) == 1, column
        assert video_counter(settings, video, "watch_ms") == 4321
        # The same batch retried (a flaky network) counts nothing twice.
        retry = client.post("/v1/events", json={"events": batch}, headers=auth(token))
        assert retry.json() == {"accepted": 0, "duplicates": len(batch), "rejected": []}
        for column in COUNTED.values():
            assert video_counter(settings, video, column) == 1, column
        assert video_counter(settings, video, "watch_ms") == 4321
        stored = scalar(
            settings,
            select(func.count()).select_from(watch_events).where(watch_events.c.user_id == viewer),
        )
        assert stored == len(batch)


def test_event_ids_are_per_user(tmp_path: Path, backend: dict[str, Any]) -> None:
    with social_app(tmp_path, **backend) as (client, settings):
        owner, _ = register(client)
        video = seed_video(settings, owner)
        for _ in range(2):
            _, token = register(client)
            response = client.post(
                "/v1/events", json={"events": [_event("same", video, "play")]}, headers=auth(token)
            )
            assert response.json()["accepted"] == 1
        assert video_counter(settings, video, "view_count") == 2


def test_mixed_batch_reports_unknown_videos_and_keeps_the_rest(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    with social_app(tmp_path, **backend) as (client, settings):
        owner, _ = register(client)
        _, token = register(client)
        video = seed_video(settings, owner)
        private = seed_video(settings, owner, privacy="private")
        batch = [
            _event("a", video, "play"),
            _event("b", "v_nosuchvideo0000", "play"),
            _event("c", private, "play"),
            _event("a", video, "play"),  # repeated inside the batch
            _event("d", video, "watch_ms"),  # watch_ms without a value
            _event("e", video, "watch_ms", -5),
            _event("f", video, "watch_ms", 1500),
        ]
        response = client.post("/v1/events", json={"events": batch}, headers=auth(token))
        assert response.status_code == 200
        assert response.json() == {
            "accepted": 2,
            "duplicates": 1,
            "rejected": [
                {"event_id": "b", "reason": "unknown_video"},
                {"event_id": "c", "reason": "unknown_video"},
                {"event_id": "d", "reason": "missing_value"},
                {"event_id": "e", "reason": "invalid_value"},
            ],
        }
        assert video_counter(settings, video, "view_count") == 1
        assert video_counter(settings, video, "watch_ms") == 1500
        assert video_counter(settings, private, "view_count") == 0


def test_events_mark_seen_and_not_interested_sticks(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    with social_app(tmp_path, **backend) as (client, settings):
        owner, _ = register(client)
        viewer, token = register(client)
        played, shown, disliked = (seed_video(settings, owner) for _ in range(3))
        batch = [
            _event("1", played, "play"),
            _event("2", shown, "impression"),
            _event("3", shown, "share"),
            _event("4", disliked, "play"),
            _event("5", disliked, "not_interested"),
        ]
        assert (
            client.post("/v1/events", json={"events": batch}, headers=auth(token)).json()[
                "accepted"
            ]
            == 5
        )
        later = [_event("6", disliked, "completed"), _event("7", played, "skip")]
        assert (
            client.post("/v1/events", json={"events": later}, headers=auth(token)).json()[
                "accepted"
            ]
            == 2
        )
        engine = sync_engine(settings)
        with engine.connect() as conn:
            rows = {
                r.video_id: bool(r.not_interested)
                for r in conn.execute(select(seen).where(seen.c.user_id == viewer))
            }
        engine.dispose()
        assert rows == {played: False, disliked: True}


@pytest.mark.parametrize(
    "events",
    [
        [{"event_id": "x", "video_id": "v_1", "type": "teleport"}],
        [{"event_id": "", "video_id": "v_1", "type": "play"}],
        [{"event_id": "x" * 65, "video_id": "v_1", "type": "play"}],
        [{"video_id": "v_1", "type": "play"}],
        [{"event_id": str(i), "video_id": "v_1", "type": "play"} for i in range(101)],
        "not a list",
    ],
)
def test_malformed_batches_are_422(tmp_path: Path, events: Any) -> None:
    with social_app(tmp_path) as (client, settings):
        _, token = register(client)
        response = client.post("/v1/events", json={"events": events}, headers=auth(token))
        _error(response, 422, "validation_failed")
        assert scalar(settings, select(func.count()).select_from(watch_events)) == 0


def test_a_full_batch_of_100_is_accepted(tmp_path: Path) -> None:
    with social_app(tmp_path) as (client, settings):
        owner, token = register(client)
        video = seed_video(settings, owner)
        batch = [_event(f"imp-{i}", video, "impression") for i in range(100)]
        response = client.post("/v1/events", json={"events": batch}, headers=auth(token))
        assert response.json() == {"accepted": 100, "duplicates": 0, "rejected": []}
        assert video_counter(settings, video, "impression_count") == 100
        _error(client.post("/v1/events", json={"events": batch}), 401, "unauthorized")


def test_comments_table_has_rows_for_each_comment(tmp_path: Path) -> None:
    """The counter and the rows agree after a mix of comments on two videos."""
    with social_app(tmp_path) as (client, settings):
        owner, token = register(client)
        a, b = seed_video(settings, owner), seed_video(settings, owner)
        for video, n in ((a, 3), (b, 2)):
            for i in range(n):
                client.post(
                    f"/v1/videos/{video}/comments", json={"body": str(i)}, headers=auth(token)
                )
        for video, n in ((a, 3), (b, 2)):
            rows = scalar(
                settings,
                select(func.count()).select_from(comments).where(comments.c.video_id == video),
            )
            assert rows == n == video_counter(settings, video, "comment_count")
