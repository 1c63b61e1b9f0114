"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get
from sqlalchemy import text

from api.core.context import AppContext


@get("/healthz", sync_to_thread=False, include_in_schema=False)
def healthz() -> dict[str, str]:
    """The process is up (no dependency is checked)."""
    return {"status": "ok"}


async def _check(name: str, fn: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(fn(), timeout=3)
    except Exception as exc:
        return name, f"error: {type(exc).__name__}: {exc}"[:300]
    return name, "ok"


@get("/readyz", include_in_schema=False)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Ready when the database, the broker and storage all answer (503 otherwise)."""
    ctx: AppContext = request.app.state.ctx

    async def db() -> None:
        async with ctx.db.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def broker() -> None:
        await asyncio.to_thread(ctx.jobs.check)

    async def storage() -> None:
        await asyncio.to_thread(ctx.storage.check)

    results = dict(
        await asyncio.gather(
            _check("database", db),
            _check("broker", broker),
            _check("storage", storage),
            _check("cache", ctx.cache.ping),
        )
    )
    ready = all(v == "ok" for v in results.values())
    return Response({"ready": ready, "checks": results}, status_code=200 if ready else 503)


ROUTES: list[Any] = [healthz, readyz]
