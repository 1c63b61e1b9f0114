"""The Litestar application: one factory for both modes.

Embedded mode (`reelforge serve`) also runs the Dramatiq worker inside this process and, at
start, re-enqueues every unfinished video (the database is the source of truth, so a restart
loses no job). Production runs the API alone; `dramatiq worker:setup` processes do the work.
Both run the job outbox's relay (api/jobs/relay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from api import health
from api.accounts import controllers as accounts
from api.core.context import AppContext, LocalCaches
from api.core.db import async_engine, create_schema, read_engine, sync_engine
from api.core.errors import EXCEPTION_HANDLERS
from api.core.services import make_cache, make_storage
from api.core.settings import Settings
from api.feed import controllers as feed
from api.feed.personal import PersonalOrder
from api.feed.store import FeedStore
from api.feed.trending import TrendingPools
from api.jobs.feedtrain import feed_train_loop
from api.jobs.partreaper import redispatch_lapsed, redispatch_loop
from api.jobs.relay import relay_loop
from api.jobs.sweeper import sweeper_loop
from api.media import controllers as media
from api.middleware.idempotency import IdempotencyMiddleware
from api.middleware.inputs import ApiRequest, InputGuardMiddleware
from api.middleware.ratelimit import RateLimitMiddleware
from api.moderation import controllers as moderation
from api.moderation import report_controllers as reports
from api.social import controllers as social
from api.uploads import controllers as uploads
from api.videos import controllers as videos
from api.web.controllers import web_routes
from cdn.storage import StorageError

log = logging.getLogger("reelforge.api")


def create_app(settings: Settings) -> Litestar:
    import worker

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = sync_engine(settings)
        await asyncio.to_thread(create_schema, engine)
        engine.dispose()
        storage = make_storage(settings)
        try:
            await asyncio.to_thread(getattr(storage, "ensure_bucket", lambda: None))
        except StorageError as exc:
            # Start anyway: /readyz answers 503 until storage is back (an orchestrator must
            # not restart-loop the API because the object store is down).
            log.warning("object storage is not reachable at start: %s", exc)
        jobs = worker.build(settings)
        db = async_engine(settings)
        ctx = AppContext(
            settings=settings,
            db=db,
            storage=storage,
            cache=make_cache(settings),
            jobs=jobs,
            reads=read_engine(db),
            local=LocalCaches.from_settings(settings),
        )
        app.state.ctx = ctx
        feed = app.state.feed_store = FeedStore(ctx)
        feed.start()
        app.state.trending = TrendingPools()
        app.state.personal = (
            PersonalOrder(
                settings.feed_model_dir,
                settings.feed_cache_seconds,
                settings.feed_personal_candidates,
                settings.feed_personal_rebuild_seconds,
            )
            if settings.feed_model_dir
            else None
        )
        part_reaper: asyncio.Task[None] | None = None
        sweeper: asyncio.Task[None] | None = None
        if settings.storage_sweep_interval_seconds > 0:
            interval = settings.storage_sweep_interval_seconds
            sweeper = asyncio.create_task(sweeper_loop(ctx, interval))
        trainer: asyncio.Task[None] | None = None
        if settings.feed_model_dir and settings.feed_train_interval_seconds > 0:
            interval = settings.feed_train_interval_seconds
            trainer = asyncio.create_task(feed_train_loop(ctx, interval))
        if settings.embedded:
            jobs.start_embedded_worker()
            requeued = await asyncio.to_thread(jobs.requeue_unfinished)
            if requeued:
                log.info("re-enqueued %d unfinished video(s)", requeued)
            await redispatch_lapsed(ctx, at_start=True)
        # The job outbox's relay (api/jobs/relay.py), in both modes.
        relay = asyncio.create_task(relay_loop(ctx))
        if not settings.embedded and settings.part_reaper_interval_seconds > 0:
            interval = settings.part_reaper_interval_seconds
            part_reaper = asyncio.create_task(redispatch_loop(ctx, interval))
        try:
            yield
        finally:
            for task in (relay, part_reaper, sweeper, trainer):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await feed.close()
            await asyncio.to_thread(jobs.stop)
            await ctx.cache.close()
            await ctx.db.dispose()

    route_handlers: list[Any] = [
        *health.ROUTES,
        *accounts.ROUTES,
        *uploads.ROUTES,
        *videos.ROUTES,
        *social.ROUTES,
        *feed.ROUTES,
        *media.ROUTES,
        *moderation.ROUTES,
        *reports.ROUTES,
        *web_routes(settings.web_dir),
    ]
    return Litestar(
        route_handlers=route_handlers,
        lifespan=[lifespan],
        # The first is outermost: text no field takes (a NUL) is refused before anything
        # reads it, and a request is counted before its idempotency record is read.
        middleware=[InputGuardMiddleware(), RateLimitMiddleware(), IdempotencyMiddleware()],
        request_class=ApiRequest,
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="Reelforge API",
            version="1",
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
            components=Components(
                security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer")}
            ),
        ),
        request_max_body_size=1024 * 1024,
        debug=False,
    )
