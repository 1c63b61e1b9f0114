"""Probes and the OpenAPI document."""

from __future__ import annotations

import logging
from pathlib import Path

from tests.support.api import api_client
from tests.support.s3 import free_port


def test_openapi_document_lists_every_v1_route(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        response = client.get("/schema/openapi.json")
        assert response.status_code == 200
        doc = response.json()
        app_paths = {route.path for route in client.app.routes if route.path.startswith("/v1/")}
    documented = set(doc["paths"])
    assert doc["info"]["title"] == "Reelforge API"
    assert doc["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    for path in app_paths:
        # Litestar documents `{id:str}` parameters as `{id}`.
        assert path.replace(":str", "").replace(":path", "") in documented, path
    assert "/v1/feed" in documented and "/v1/videos/upload-url" in documented
    video = doc["components"]["schemas"]["VideoOut"]
    for url in ("hls_url", "dash_url", "poster_url", "mp4_url"):
        assert url in video["properties"] and url in video["required"], url


def test_readyz_checks_database_broker_and_storage(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        healthy = client.get("/readyz")
        assert client.get("/healthz").json() == {"status": "ok"}
    assert healthy.status_code == 200
    assert healthy.json()["ready"] is True
    assert set(healthy.json()["checks"]) == {"database", "broker", "storage", "cache"}


class Records(logging.Handler):
    """The records one logger emits (Litestar's logging config keeps them from `caplog`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_readyz_is_503_when_storage_does_not_answer(tmp_path: Path) -> None:
    """An S3 endpoint on a port nobody listens on: start-up logs the `StorageError` and goes
    on (api/app.py: an orchestrator must not restart-loop the API while the object store is
    down), and /readyz answers 503 naming storage, and only storage, as the failed check."""
    dead = f"127.0.0.1:{free_port()}"
    settings = {
        "storage": "s3",
        "s3_endpoint": dead,
        "s3_access_key": "k",
        "s3_secret_key": "s",
    }
    logger, handler = logging.getLogger("reelforge.api"), Records()
    logger.addHandler(handler)
    try:
        with api_client(tmp_path, **settings) as client:
            response = client.get("/readyz")
    finally:
        logger.removeHandler(handler)
    unavailable = f"StorageError: S3 {dead} unavailable: "
    started = handler.records
    assert [r.getMessage().split(": ", 1)[0] for r in started] == [
        "object storage is not reachable at start"
    ], [r.getMessage() for r in started]
    assert (
        started[0]
        .getMessage()
        .startswith(f"object storage is not reachable at start: S3 {dead} unavailable: ")
    )
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["storage"].startswith(f"error: {unavailable}"), body
    assert {k: v for k, v in body["checks"].items() if k != "storage"} == {
        "database": "ok",
        "broker": "ok",
        "cache": "ok",
    }


def test_openapi_component_names_are_the_struct_names(tmp_path: Path) -> None:
    """A schema's component name is its class name, never a module-path prefix (Litestar adds
    one when two structs share a name), so moving a module cannot rename a client's types."""
    with api_client(tmp_path) as client:
        doc = client.get("/schema/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert "QueueAppealOut" in schemas and "AppealOut" in schemas
    assert {name: s.get("title") for name, s in schemas.items() if s.get("title") != name} == {}
