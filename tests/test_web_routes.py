"""The web app's static routes (issue 18): `/`, `/app/`, `/vendor/` are served by the API
itself, and nothing else changes: the API routes, their errors, the media origin and the
OpenAPI document answer as before."""

from __future__ import annotations

from pathlib import Path

from api.web.controllers import VENDOR_DIRS
from tests.support.api import api_client, auth, register
from tests.support.services import fresh_postgres_database, redis_database

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
STATIC_PREFIXES = ("/app", "/vendor")


def test_the_page_its_modules_and_its_npm_dependencies_are_served(tmp_path: Path) -> None:
    # An error, not a skip, when the bootstrap has not installed the dependencies.
    for folder in VENDOR_DIRS.values():
        assert (WEB / "node_modules" / folder).is_dir(), "run `npm ci --prefix web`"
    with api_client(tmp_path / "data") as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.text == (WEB / "index.html").read_text()
        module = client.get("/app/main.js")
        assert module.status_code == 200
        assert "javascript" in module.headers["content-type"]
        assert module.text == (WEB / "src" / "main.js").read_text()
        assert client.get("/app/style.css").headers["content-type"].startswith("text/css")
        hls = client.get("/vendor/hls.js/hls.min.mjs")
        assert hls.status_code == 200 and "javascript" in hls.headers["content-type"]
        tus = client.get("/vendor/tus-js-client/tus.min.js")
        assert tus.status_code == 200 and len(tus.content) > 10_000
        # Revalidated on each load, so a new version of the app is picked up at once.
        assert page.headers["cache-control"] == "no-cache"
        assert module.headers["cache-control"] == "no-cache"
        assert client.get("/app/missing.js").status_code == 404


def test_nothing_outside_the_app_folders_is_served(tmp_path: Path) -> None:
    with api_client(tmp_path / "data") as client:
        # The page's own folder holds package.json and node_modules: not under /app/.
        assert client.get("/app/../package.json").status_code == 404
        assert client.get("/app/%2e%2e/package.json").status_code == 404
        assert client.get("/app/node_modules/hls.js/package.json").status_code == 404
        assert client.get("/vendor/hls.js/../package.json").status_code == 404
        assert client.get("/vendor/hls.js/%2e%2e/%2e%2e/%2e%2e/pyproject.toml").status_code == 404
        assert client.get("/index.html").status_code == 404
        # Writes to the static paths are not routes.
        assert client.post("/app/main.js").status_code == 405


def test_api_routes_errors_and_the_media_origin_are_unaffected(tmp_path: Path) -> None:
    with api_client(tmp_path / "data") as client:
        feed = client.get("/v1/feed")
        assert feed.status_code == 200 and feed.json()["videos"] == []
        # Unknown API paths are the API's JSON 404, whatever the method.
        for method in ("GET", "POST", "DELETE"):
            missing = client.request(method, "/v1/no-such-route")
            assert missing.status_code == 404, method
            assert missing.headers["content-type"].startswith("application/json")
        user_id, token = register(client, "webroutes")
        me = client.get(f"/v1/users/{user_id}", headers=auth(token))
        assert me.status_code == 200 and me.json()["handle"] == "webroutes"
        # The origin still answers its one 404, with the CORS headers players read.
        media = client.get("/media/v_missing/r_missing/master.m3u8")
        assert media.status_code == 404
        assert media.headers["access-control-allow-origin"] == "*"
        assert client.options("/media/v_missing/r_missing/master.m3u8").status_code == 204
        assert client.get("/healthz").status_code == 200
        # The contract is the API's: the static routes stay out of the OpenAPI document.
        paths = client.get("/schema/openapi.json").json()["paths"]
        assert "/" not in paths
        assert not [p for p in paths if p.startswith(STATIC_PREFIXES)]
        assert "/v1/feed" in paths and "/media/{video_id}/{render_id}/{path}" in paths


def test_a_missing_web_folder_is_a_clear_404_and_the_api_still_runs(tmp_path: Path) -> None:
    with api_client(tmp_path / "data", web_dir=tmp_path / "no-web") as client:
        page = client.get("/")
        assert page.status_code == 404
        assert "no-web" in page.text
        assert client.get("/v1/feed").status_code == 200


def test_production_mode_serves_the_same_app(tmp_path: Path) -> None:
    """The routes come from the app factory, whatever the mode: PostgreSQL and Redis here."""
    with (
        fresh_postgres_database() as database_url,
        redis_database() as redis_url,
        api_client(
            tmp_path / "data",
            mode="production",
            database_url=database_url,
            redis_url=redis_url,
            secret_key="web-routes-test-secret",
        ) as client,
    ):
        page = client.get("/")
        assert page.status_code == 200 and page.text == (WEB / "index.html").read_text()
        assert client.get("/vendor/hls.js/hls.min.mjs").status_code == 200
        assert client.get("/v1/feed").status_code == 200
