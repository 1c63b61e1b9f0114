"""bench/api_bench.py counts the feed answers by `source` and refuses a run whose for-you
answers were not all ranked (issue 16: trending fallbacks counted as ranked answers).

The real wrk runs the bench's own script against a small real HTTP server that answers
feed-shaped JSON with a known mix of sources and statuses; what the script counts is compared
with what the server sent.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bench.api_bench import FOLLOWING, FOR_YOU, LUA, run_wrk, source_problems

# The server's answers in turn: two ranked pages, a personal ranked one (issue 17), a trending
# one, a 503.
CYCLE = ("ranked", "ranked", "ranked+personal", "trending", 503)


class FeedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FeedHandler)
        self.lock = threading.Lock()
        self.sent: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()


class FeedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    server: FeedServer

    def do_GET(self) -> None:
        with self.server.lock:
            answer = CYCLE[sum(self.server.sent.values()) % len(CYCLE)]
            key = answer if isinstance(answer, str) else f"status_{answer}"
            self.server.sent[key] += 1
            self.server.tokens[self.headers.get("Authorization", "")] += 1
        if isinstance(answer, int):
            body = json.dumps({"error": {"code": "unavailable", "message": "x"}}).encode()
            status = answer
        else:
            # A caption that quotes a source is not the page's source (the key is the last).
            video = {"id": "v_1", "caption": '"source": "trending"'}
            source, _, personal = answer.partition("+")
            page: dict[str, Any] = {"videos": [video], "next_cursor": None, "source": source}
            if source == "ranked":  # as FeedOut: `personal` after `source`
                page["personal"] = bool(personal)
            body, status = json.dumps(page).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FeedServer]:
    feed = FeedServer()
    thread = threading.Thread(target=feed.serve_forever, daemon=True)
    thread.start()
    try:
        yield feed
    finally:
        feed.shutdown()
        feed.server_close()


def test_the_wrk_script_counts_answers_by_source(server: FeedServer) -> None:
    assert shutil.which("wrk"), "apt-get install -y wrk"
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/feed?type=for_you&limit=10"
    env = {"BENCH_TOKENS": "t1,t2,t3"}
    figures, counts = run_wrk(url, LUA / "auth_get.lua", env, seconds=1, connections=2)
    assert set(counts) == {"ranked", "ranked+personal", "trending", "status_503"}, counts
    # wrk counts the answers it completed; the server may have sent a few more at the end.
    assert sum(counts.values()) == figures["requests"] > 20, (counts, figures)
    for source, count in counts.items():
        assert 0 <= server.sent[source] - count <= 2, (source, count, server.sent)
    assert figures["errors"] == counts["status_503"]
    assert set(server.tokens) == {"Bearer t1", "Bearer t2", "Bearer t3"}
    problems = source_problems({FOR_YOU: [counts], FOLLOWING: [{"following": 5}]})
    assert problems == [
        f"{FOR_YOU}: {counts['ranked+personal']} ranked+personal, {counts['status_503']} "
        f"status_503, {counts['trending']} trending of {sum(counts.values())} answers were not "
        "'ranked'"
    ]


def test_a_run_is_valid_only_when_each_feed_answered_from_its_own_source() -> None:
    valid = {FOR_YOU: [{"ranked": 900}, {"ranked": 870}], FOLLOWING: [{"following": 1000}]}
    assert source_problems(valid) == []
    one_fallback = {**valid, FOR_YOU: [{"ranked": 900}, {"ranked": 869, "trending": 1}]}
    assert source_problems(one_fallback) == [
        f"{FOR_YOU}: 1 trending of 1770 answers were not 'ranked'"
    ]
    crossed = {**valid, FOLLOWING: [{"ranked": 3}]}
    assert source_problems(crossed) == [f"{FOLLOWING}: 3 ranked of 3 answers were not 'following'"]
    uncounted = {**valid, FOR_YOU: [{"ranked": 900}, {}]}
    assert source_problems(uncounted) == [f"{FOR_YOU}: no answers were counted by source"]
    assert source_problems({FOLLOWING: valid[FOLLOWING]}) == [
        f"{FOR_YOU}: no answers were counted by source"
    ]
    # With a model (issue 17), a for-you answer that was not the viewer's own list is refused.
    personal = {FOR_YOU: "ranked+personal", FOLLOWING: "following"}
    assert source_problems(valid, personal) == [
        f"{FOR_YOU}: 1770 ranked of 1770 answers were not 'ranked+personal'"
    ]
    mixed = {**valid, FOR_YOU: [{"ranked+personal": 900}, {"ranked+personal": 869, "ranked": 1}]}
    assert source_problems(mixed, personal) == [
        f"{FOR_YOU}: 1 ranked of 1770 answers were not 'ranked+personal'"
    ]
