"""Routes: the web app's static files (issue 18, "The web app").

- `GET /`: the app's page (`web/index.html`); the app routes inside the page (`/#/...`), so
  no other path needs to answer with it;
- `GET /app/{path}`: the app's own modules and styles (`web/`, never `web/node_modules`);
- `GET /vendor/{package}/{path}`: the JavaScript dependencies the bootstrap installed from the
  npm registry (`npm ci --prefix web`), so the page needs no CDN and works with no internet.

None of these is part of the API's contract: they stay out of the OpenAPI document. The
directory is `settings.web_dir` (`REELFORGE_WEB_DIR`), the repository's `web/` by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.response import File
from litestar.static_files import create_static_files_router

from api.core.errors import NotFound

# The dependencies' browser builds: URL folder under /vendor/ → folder under web/node_modules.
VENDOR_DIRS = {"hls.js": "hls.js/dist", "tus-js-client": "tus-js-client/dist"}
# Revalidated on every load (ETag / Last-Modified): an upgrade is seen at once.
REVALIDATE = CacheControlHeader(no_cache=True)


def web_routes(web_dir: Path) -> list[Any]:
    """The page at `/`, the app's files at `/app/`, its npm dependencies at `/vendor/`."""
    index = web_dir / "index.html"

    @get("/", include_in_schema=False, cache_control=REVALIDATE, sync_to_thread=False)
    def web_index() -> Response[Any]:
        """The app's page, or a 404 that says how to get it when the files are missing."""
        if not index.is_file():
            raise NotFound(f"the web app is not installed here ({index} is missing)")
        return File(index, content_disposition_type="inline", media_type="text/html")

    vendor = [
        create_static_files_router(
            path=f"/vendor/{name}",
            directories=[web_dir / "node_modules" / folder],
            include_in_schema=False,
            cache_control=REVALIDATE,
            name=f"web-vendor-{name}",
        )
        for name, folder in VENDOR_DIRS.items()
    ]
    app_files = create_static_files_router(
        path="/app",
        directories=[web_dir / "src"],
        include_in_schema=False,
        cache_control=REVALIDATE,
        name="web-app",
    )
    return [web_index, app_files, *vendor]
