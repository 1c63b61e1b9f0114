"""The OpenAPI document is the contract (issue 16, item 6): Schemathesis fuzzes every operation
of `/schema/openapi.json` against a real `reelforge serve` (embedded mode) and checks each
answer against the document: no 5xx, a documented status, the documented media type, a body
that matches the documented schema.

Bounded: a fixed seed, a fixed number of examples per operation and a time budget. Logout is
left out (it would revoke the token the run uses); rate limits are raised through settings so
that a 429 does not hide what the routes answer.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.api import api_client, auth, make_settings, register, seed_video
from tests.support.moderation import make_moderator, seed_review_video
from tests.support.s3 import free_port
from tests.support.services import ROOT, VENV_BIN, ApiProcess, embedded_env

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
BUDGET_S = 60


def _seed_world(url: str, tmp_path: Path) -> Path:
    """A moderator (the caller), another creator with a published video and a video in
    review, so that the fuzzed requests reach real things, not only 404s; the
    Schemathesis configuration that names them."""
    tokens: dict[str, str] = {}
    ids: dict[str, str] = {}
    for handle in ("contract", "creator"):
        answer = httpx.post(
            f"{url}/v1/auth/register", json={"handle": handle, "password": "correct horse 9"}
        )
        assert answer.status_code == 201, answer.text
        tokens[handle], ids[handle] = answer.json()["token"], answer.json()["user"]["id"]
    settings = make_settings(tmp_path / "data")
    make_moderator(settings, "contract")
    published = seed_video(settings, ids["creator"], caption="seeded")
    in_review = seed_review_video(settings, ids["creator"])
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f"""
headers = {{ Authorization = "Bearer {tokens["contract"]}" }}

[parameters]
"path.video_id" = "{published}"
"path.user_id" = "{ids["creator"]}"
"path.render_id" = "r_seed"

[[operations]]
include-path-regex = "^/v1/moderation/"
parameters = {{ "path.video_id" = "{in_review}" }}
"""
    )
    return config


def test_schemathesis_finds_no_contract_failure(tmp_path: Path) -> None:
    env = embedded_env(
        tmp_path / "data",
        REELFORGE_RATE_LIMIT_PER_MINUTE="1000000",
        REELFORGE_AUTH_RATE_LIMIT_PER_MINUTE="1000000",
    )
    with ApiProcess(env, free_port(), tmp_path / "api.log") as api:
        api.start()
        config = _seed_world(api.url, tmp_path)
        argv = [
            str(VENV_BIN / "schemathesis"),
            "--config-file",
            str(config),
            "run",
            f"{api.url}/schema/openapi.json",
            "--checks",
            ",".join(CHECKS),
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--seed",
            "16",
            "--max-time",
            str(BUDGET_S - 15),
            "--request-timeout",
            "10",
            "--exclude-path-regex",
            "/logout$",
            "--continue-on-failure",
            "--workers",
            "1",
        ]
        started = time.monotonic()
        # In tmp_path: Schemathesis keeps a cache (.schemathesis/) in its working directory.
        hooks = {"SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
        run = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=BUDGET_S + 30,
            cwd=tmp_path,
            env={**os.environ, **hooks},
        )
        took = time.monotonic() - started
    report = run.stdout[-12000:] + run.stderr[-3000:]
    print(run.stdout[-1200:])  # the summary, shown with `pytest -s`
    assert run.returncode == 0, report
    # Every operation but logout was tested, with many cases each.
    selected = re.search(r"Selected: (\d+)/(\d+)", run.stdout)
    tested = re.search(r"Tested: (\d+)", run.stdout)
    cases = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert selected and tested and cases, report
    assert int(selected[1]) == int(selected[2]) - 1 == int(tested[1]) >= 30, report
    assert int(cases[1]) == int(cases[2]) >= 500, report
    assert took <= BUDGET_S + 15, f"{took:.0f} s"


def test_every_error_answer_is_documented_with_the_error_body(tmp_path: Path) -> None:
    """Issue 16, item 6: no route documents Litestar's `{status_code, detail}`; each documents
    our `ErrorOut` for 400 and 422 at least, authenticated routes 401, and 204s have no body."""
    with api_client(tmp_path) as client:
        doc = client.get("/schema/openapi.json").json()
    error = doc["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["error"]
    ref = {"$ref": "#/components/schemas/ErrorOut"}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            answers = op["responses"]
            for status in ("400", "422"):
                assert answers[status]["content"]["application/json"]["schema"] == ref, (
                    method,
                    path,
                    status,
                )
            if op.get("security"):
                assert "401" in answers, (method, path)
            if "204" in answers:
                assert "content" not in answers["204"], (method, path)
    delete = doc["paths"]["/v1/videos/{video_id}"]["delete"]["responses"]
    assert {"204", "401", "404", "409", "429"} <= set(delete)
    follow = doc["paths"]["/v1/users/{user_id}/follow"]["post"]["responses"]
    assert "422" in follow  # following oneself


def test_request_bodies_carry_the_limits_the_api_enforces(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        schemas = client.get("/schema/openapi.json").json()["components"]["schemas"]
    password = schemas["RegisterIn"]["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (8, 1024)
    assert schemas["CommentIn"]["properties"]["body"]["minLength"] == 1
    assert schemas["AppealIn"]["properties"]["reason"]["minLength"] == 1
    assert schemas["UploadUrlIn"]["properties"]["file_size_bytes"]["minimum"] == 1
    handle = schemas["RegisterIn"]["properties"]["handle"]["pattern"]
    assert re.search(handle, " Alice_1 ") and not re.search(handle, "a b")


def test_tus_asks_for_a_token_before_the_protocol_version(tmp_path: Path) -> None:
    """Issue 16, item 6: without a valid token the answer is 401, whatever Tus-Resumable says
    (it was 412, which told an anonymous caller about the route before asking who it is)."""
    with api_client(tmp_path) as client:
        for method, path in (("POST", "/v1/uploads/tus"), ("HEAD", "/v1/uploads/tus/v_x")):
            for headers in ({}, {"Tus-Resumable": "0.2.2"}, {"Authorization": "Bearer nope"}):
                answer = client.request(method, path, headers=headers)
                assert answer.status_code == 401, (method, path, headers)
        _user, token = register(client)
        stale = client.post("/v1/uploads/tus", headers={**auth(token), "Tus-Resumable": "0.2.2"})
        assert stale.status_code == 412


def test_tus_routes_document_the_headers_they_read_and_answer(tmp_path: Path) -> None:
    """Issue 16: the tus routes read and answer headers only; the document lists them
    (tus 1.0.0 core and creation) so a client generated from it can speak the protocol."""
    with api_client(tmp_path) as client:
        paths = client.get("/schema/openapi.json").json()["paths"]

    def headers_of(op: dict[str, Any]) -> dict[str, bool]:
        return {p["name"]: p["required"] for p in op.get("parameters", []) if p["in"] == "header"}

    create = paths["/v1/uploads/tus"]["post"]
    assert headers_of(create) == {
        "Tus-Resumable": True,
        "Upload-Length": True,
        "Upload-Metadata": False,
    }
    assert {"Location", "Tus-Resumable"} <= set(create["responses"]["201"]["headers"])
    one = paths["/v1/uploads/tus/{video_id}"]
    assert headers_of(one["patch"]) == {"Tus-Resumable": True, "Upload-Offset": True}
    assert list(one["patch"]["requestBody"]["content"]) == ["application/offset+octet-stream"]
    assert "Upload-Offset" in one["patch"]["responses"]["204"]["headers"]
    assert {"Upload-Offset", "Upload-Length"} <= set(one["head"]["responses"]["200"]["headers"])
    assert headers_of(one["delete"]) == {"Tus-Resumable": True}
    version = next(p for p in one["head"]["parameters"] if p["name"] == "Tus-Resumable")
    assert version["schema"]["enum"] == ["1.0.0"]
