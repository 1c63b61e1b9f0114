"""`reelforge` command line: probe, transcode, sample, serve, catalog, moderator, edge-config.

Exit codes: 0 done; 2 the input was rejected, or `serve` was given bad settings (one line on
stderr naming why); 1 our failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_REJECTED = 0, 1, 2


class ProgressBar:
    """A one-line progress bar on a terminal; silent when stderr is not a terminal."""

    def __init__(self, label: str, stream: Any = sys.stderr) -> None:
        self.label, self.stream = label, stream
        self.enabled = stream.isatty()
        self.started = time.monotonic()

    def __call__(self, fraction: float) -> None:
        if not self.enabled:
            return
        width = 30
        filled = round(width * fraction)
        elapsed = time.monotonic() - self.started
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {fraction:4.0%} {elapsed:5.1f}s")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def cmd_probe(args: argparse.Namespace) -> int:
    from engine.jobs import probe_limited

    info = probe_limited(Path(args.input))
    data = info.to_json()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key:22} {value}")
    return EXIT_OK


def cmd_transcode(args: argparse.Namespace) -> int:
    from engine.jobs import transcode_limited
    from engine.loudness import LoudnessSpec
    from engine.pipeline import TranscodeOptions
    from engine.policy import InputPolicy

    policy = (
        InputPolicy() if args.max_duration is None else InputPolicy(max_duration=args.max_duration)
    )
    try:
        loudness = LoudnessSpec(
            enabled=not args.no_loudness,
            target_lufs=args.loudness_target,
            true_peak_dbtp=args.true_peak,
        )
    except ValueError as exc:
        print(f"reelforge: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    options = TranscodeOptions(
        segment_seconds=args.segment_seconds,
        preset=args.preset,
        encoder=args.encoder,
        policy=policy,
        thumbnails=not args.no_thumbnails,
        encoder_threads=args.encoder_threads,
        loudness=loudness,
    )
    if args.no_tone_map:
        options = dataclasses.replace(options, tone_map=None)
    bar = ProgressBar("transcode")
    try:
        report = transcode_limited(Path(args.input), Path(args.outdir), options, progress=bar)
    finally:
        bar.done()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        stages = report["stages"]
        print(
            f"wrote {args.outdir}: {len(report['ladder']['video'])} video renditions"
            f"{' + audio' if report['ladder']['audio'] else ''}, "
            f"{report['bytes_written']} bytes in {stages['total']:.2f} s"
        )
        for name, rendition in report["renditions"].items():
            print(
                f"  {name:6} {rendition['segment_count']:3} segments  "
                f"avg {rendition['average_bitrate'] / 1000:7.0f} kb/s  "
                f"peak {rendition['peak_bitrate'] / 1000:7.0f} kb/s"
            )
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    from engine.sample import make_sample

    print(make_sample(args.output, seconds=args.seconds))
    return EXIT_OK


DEMO_HANDLE = "demo"
# Where the demo video stays once its job is done (api/lifecycle.py).
SETTLED = ("published", "in_review", "rejected", "failed")


def _call(
    method: str, url: str, body: Any = None, token: str = "", **extra: Any
) -> tuple[int, Any]:
    """One JSON request with the standard library (the demo needs no HTTP client package)."""
    import urllib.error
    import urllib.request

    headers = dict(extra.pop("headers", {}))
    data = extra.pop("data", None)
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def _demo_account(base: str, data_dir: Path) -> str:
    """Log in as `demo`, registering it first when missing; the password lives in the data dir."""
    import secrets

    creds_path = data_dir / "demo-account.json"
    if creds_path.is_file():
        creds = json.loads(creds_path.read_text())
        status, body = _call("POST", f"{base}/v1/auth/login", creds)
    else:
        creds = {"handle": DEMO_HANDLE, "password": secrets.token_urlsafe(18)}
        status, body = _call("POST", f"{base}/v1/auth/register", creds)
        if status == 409:
            raise RuntimeError(
                f"account {DEMO_HANDLE!r} exists but {creds_path} (its password) is gone"
            )
        if status in (200, 201):
            creds_path.write_text(json.dumps(creds))
            creds_path.chmod(0o600)
    if status not in (200, 201):
        raise RuntimeError(f"demo account: HTTP {status}: {body}")
    return str(body["token"])


def _demo_upload(base: str, token: str, clip: Path) -> str:
    """Upload through the signed upload URL (as a phone would), then publish; returns the id."""
    from urllib.parse import urljoin

    size = clip.stat().st_size
    request = {"file_size_bytes": size, "content_type": "video/mp4"}
    status, ticket = _call("POST", f"{base}/v1/videos/upload-url", request, token)
    if status not in (200, 201):
        raise RuntimeError(f"upload-url: HTTP {status}: {ticket}")
    headers = {**ticket.get("headers", {}), "Content-Length": str(size)}
    with clip.open("rb") as fh:
        status, body = _call(
            ticket.get("method", "PUT"),
            urljoin(base + "/", ticket["upload_url"]),
            headers=headers,
            data=fh,
        )
    if status >= 300:
        raise RuntimeError(f"upload: HTTP {status}: {body}")
    video_id = str(ticket["video_id"])
    publish = {"caption": "Reelforge demo clip", "privacy": "public"}
    status, body = _call("POST", f"{base}/v1/videos/{video_id}/publish", publish, token)
    if status != 202:
        raise RuntimeError(f"publish: HTTP {status}: {body}")
    return video_id


def run_demo(settings: Any, server: Any, seconds: float, deadline_s: float = 900) -> None:
    """`serve --demo`: once the server is ready, publish the sample clip through its own API."""
    from engine.sample import make_sample

    base = settings.public_url
    try:
        deadline = time.monotonic() + deadline_s
        while not server.started or _call("GET", f"{base}/readyz")[0] != 200:
            if server.should_exit or time.monotonic() > deadline:
                return
            time.sleep(0.2)
        clip = settings.data_dir / "demo" / f"sample-{seconds:g}s.mp4"
        if not clip.is_file():
            make_sample(clip, seconds=seconds)
        token = _demo_account(base, settings.data_dir)
        video_id = _demo_upload(base, token, clip)
        print(f"demo: account {DEMO_HANDLE!r}, token {token}", flush=True)
        print(f"demo: video {video_id} is processing ({base}/v1/videos/{video_id})", flush=True)
        while time.monotonic() < deadline and not server.should_exit:
            status, video = _call("GET", f"{base}/v1/videos/{video_id}", token=token)
            # in_review: held by the safety checks, it waits for a moderator, not for the job.
            if status == 200 and video["status"] in SETTLED:
                reason = video["status_reason"]
                detail = f" ({reason})" if reason and reason != video["status"] else ""
                print(f"demo: video {video_id} {video['status']}{detail}", flush=True)
                if video["hls_url"]:
                    print(f"demo: play {video['hls_url']} or {video['dash_url']}", flush=True)
                return
            time.sleep(0.5)
    except Exception as exc:  # the demo is a guest: it reports and leaves the server running
        print(f"demo: failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def serve_settings(args: argparse.Namespace) -> Any:
    """`REELFORGE_*` settings with the command-line flags laid over them, resolved once.

    The flags go in as the variables they override, so derived values (the public URL from
    host and port, the database under the data dir) follow them and no default data
    directory is ever created for a value the flags replace.
    """
    from api.core.settings import Settings

    environ = dict(os.environ)
    for flag, name in (("host", "HOST"), ("port", "PORT"), ("data_dir", "DATA_DIR")):
        value = getattr(args, flag)
        if value is not None:
            environ[f"REELFORGE_{name}"] = str(value)
    return Settings.from_env(environ)


def settle_gc() -> None:
    """Keep the garbage collector's pauses off the server's latency: what exists once the app
    has started (modules, the framework, engines: about everything) is frozen out of every
    collection, and the young generation is collected less often. A full collection of that
    heap took ~100 ms per pass, several times a minute under load."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the API (and, embedded, the in-process worker) under uvicorn until SIGTERM/SIGINT.

    Uvicorn drains requests and runs the app's shutdown on the first signal; it then re-raises
    the signal, which the handlers installed here absorb so a requested stop exits 0.
    """
    import logging
    import signal

    import uvicorn

    from api.core.settings import SettingsError
    from api.safety.routing import check_catalog, check_startup

    try:
        settings = serve_settings(args)
        check_startup(settings)  # e.g. a missing moderation model: one line naming its path
        if settings.embedded:  # it runs the jobs too
            check_catalog(settings)
    except SettingsError as exc:
        print(f"reelforge: bad settings: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    if args.demo and not settings.embedded:
        print("reelforge: bad settings: --demo needs embedded mode", file=sys.stderr)
        return EXIT_REJECTED
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from api.app import create_app

    log = logging.getLogger("reelforge.serve")
    role = "API and in-process worker" if settings.embedded else "API only"
    log.info(
        "serving %s (%s mode: %s, data dir %s)",
        settings.public_url,
        settings.mode,
        role,
        settings.data_dir,
    )
    app = create_app(settings)
    app.on_startup.append(settle_gc)  # after the app's own start-up (Litestar runs it last)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    stop_requested: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: stop_requested.append(number))
    if args.demo:
        threading.Thread(
            target=run_demo, args=(settings, server, args.demo_seconds), name="demo", daemon=True
        ).start()
    server.run()
    if not server.started:
        return EXIT_FAILURE
    log.info("stopped%s", " on signal" if stop_requested else "")
    return EXIT_OK


def cmd_moderator(args: argparse.Namespace) -> int:
    """`reelforge moderator grant|revoke HANDLE`: set `users.role` on the configured database
    (`REELFORGE_*`, or `--data-dir` for the embedded one); the only way to make a moderator."""
    from api.core.db import create_schema, sync_engine
    from api.core.identity import MODERATOR, USER
    from api.core.settings import Settings, SettingsError
    from api.moderation.service import set_role

    environ = dict(os.environ)
    if args.data_dir is not None:
        environ["REELFORGE_DATA_DIR"] = str(args.data_dir)
    try:
        settings = Settings.from_env(environ)
    except SettingsError as exc:
        print(f"reelforge: bad settings: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    role = MODERATOR if args.action == "grant" else USER
    engine = sync_engine(settings)
    try:
        create_schema(engine)
        with engine.begin() as conn:
            found = set_role(conn, args.handle, role)
    finally:
        engine.dispose()
    if not found:
        print(f"reelforge: no such user: {args.handle}", file=sys.stderr)
        return EXIT_REJECTED
    print(f"{args.handle} is now a {role}")
    return EXIT_OK


def cmd_edge_config(args: argparse.Namespace) -> int:
    """`reelforge edge-config`: the nginx edge configuration (cdn/edge.py) for an origin."""
    from cdn.edge import EdgeConfig, EdgeConfigError, render

    config = EdgeConfig(
        origin=args.origin,
        listen=args.listen,
        cache_dir=args.cache_dir,
        media_path=args.media_path,
        max_size=args.max_size,
    )
    try:
        text = render(config)
    except EdgeConfigError as exc:
        print(f"reelforge: bad edge configuration: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _catalog_engine() -> tuple[Any, Any]:
    """(engine, settings): the configured database (`REELFORGE_*`: the embedded one under
    REELFORGE_DATA_DIR), with its schema; raises `SettingsError` on bad settings."""
    from api.core.db import create_schema, sync_engine
    from api.core.settings import Settings

    settings = Settings.from_env()
    engine = sync_engine(settings)
    create_schema(engine)
    return engine, settings


def _fingerprint_file(path: str, query: bool = False) -> Any:
    """The landmark fingerprint of any audio/video file's first audio stream (PyAV), as a
    reference or (denser) as a query."""
    import av

    from classifiers.fingerprint import DEFAULT_PARAMS, QUERY_PARAMS, fingerprint, load_audio

    if not Path(path).is_file():
        raise CatalogInputError(f"{path}: no such file")
    try:
        samples = load_audio(path)
    except (ValueError, av.FFmpegError, OSError) as exc:
        raise CatalogInputError(f"{path}: not a media file with audio ({exc})") from None
    return fingerprint(samples, QUERY_PARAMS if query else DEFAULT_PARAMS)


class CatalogInputError(ValueError):
    """A file given to `reelforge catalog` cannot be read as audio (exit 2, one line)."""


def cmd_catalog_add(args: argparse.Namespace) -> int:
    """`reelforge catalog add FILE... --owner NAME [--policy block|mute|allow]`: fingerprint
    every file (all are read before anything is written), then store them as references."""
    from api.core.settings import SettingsError
    from classifiers import catalog

    try:
        prints = [(Path(path).name, _fingerprint_file(path)) for path in args.files]
        for (_, print_), path in zip(prints, args.files, strict=True):
            if len(print_) == 0:
                raise CatalogInputError(f"{path}: no landmarks (silent or too short)")
        engine, _ = _catalog_engine()
    except (CatalogInputError, SettingsError) as exc:
        print(f"reelforge: input rejected: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    try:
        with engine.begin() as conn:
            for name, print_ in prints:
                ref_id = catalog.add_reference(conn, name, args.owner, print_, args.policy)
                print(
                    f"added {name} (ref {ref_id}, {print_.duration_s:.1f} s, "
                    f"{len(print_)} hashes) for {args.owner}, policy {args.policy}"
                )
    finally:
        engine.dispose()
    return EXIT_OK


def cmd_catalog_remove(args: argparse.Namespace) -> int:
    """`reelforge catalog remove NAME...`: drop references (all names must exist)."""
    from api.core.settings import SettingsError
    from classifiers import catalog

    try:
        engine, _ = _catalog_engine()
    except SettingsError as exc:
        print(f"reelforge: input rejected: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    try:
        with engine.begin() as conn:
            missing = catalog.remove_by_name(conn, args.names)
    finally:
        engine.dispose()
    if missing:
        print(
            f"reelforge: input rejected: not in the catalog: {', '.join(missing)} "
            "(nothing removed)",
            file=sys.stderr,
        )
        return EXIT_REJECTED
    for name in dict.fromkeys(args.names):
        print(f"removed {name}")
    return EXIT_OK


def cmd_catalog_match(args: argparse.Namespace) -> int:
    """`reelforge catalog match FILE [--json]`: the best reference, or null / "no match"."""
    from api.core.settings import SettingsError
    from classifiers import catalog

    try:
        print_ = _fingerprint_file(args.file, query=True)
        engine, settings = _catalog_engine()
    except (CatalogInputError, SettingsError) as exc:
        print(f"reelforge: input rejected: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    try:
        with engine.connect() as conn:
            found = catalog.match(conn, print_, min_score=settings.fingerprint_min_score)
            stale = catalog.stale_references(conn)
    finally:
        engine.dispose()
    if stale:
        print(
            f"reelforge: warning: {len(stale)} reference(s) were fingerprinted by an older "
            "version and cannot match; add their files again or remove them",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(found.to_json() if found else None))
    elif found is None:
        print(f"{args.file}: no match")
    else:
        print(
            f"{args.file}: {found.name} ({found.owner}) from {found.offset_s:.2f} s, "
            f"score {found.score}, policy {found.policy}"
        )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reelforge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    probe = sub.add_parser("probe", help="what the source is")
    probe.add_argument("input")
    probe.add_argument("--json", action="store_true", help="print JSON")
    probe.set_defaults(run=cmd_probe)
    transcode = sub.add_parser("transcode", help="ladder + HLS/DASH + thumbnails + report")
    transcode.add_argument("input")
    transcode.add_argument("outdir")
    transcode.add_argument("--json", action="store_true", help="print the report as JSON")
    transcode.add_argument("--segment-seconds", type=float, default=2.0)
    transcode.add_argument("--preset", default="veryfast")
    transcode.add_argument("--encoder", default="auto", help="auto, libx264 or h264_nvenc")
    transcode.add_argument(
        "--no-thumbnails", action="store_true", help="the ladder alone: no poster or storyboard"
    )
    transcode.add_argument(
        "--no-tone-map",
        action="store_true",
        help="HDR (PQ, HLG) sources are not tone-mapped to SDR (the old path; for measuring)",
    )
    transcode.add_argument(
        "--encoder-threads",
        type=int,
        default=None,
        help="x264 frame threads per rung (default: the CPUs shared out by pixels; 0: x264 auto)",
    )
    transcode.add_argument(
        "--max-duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="refuse sources longer than this, audio included (default 600)",
    )
    transcode.add_argument(
        "--loudness-target",
        type=float,
        default=-14.0,
        metavar="LUFS",
        help="integrated loudness of the audio (BS.1770-4 / EBU R128; -40..-5, default -14)",
    )
    transcode.add_argument(
        "--true-peak",
        type=float,
        default=-1.0,
        metavar="DBTP",
        help="true-peak ceiling of the encoded audio (-9..0, default -1)",
    )
    transcode.add_argument(
        "--no-loudness", action="store_true", help="keep the source's level (no gain, no limiter)"
    )
    transcode.set_defaults(run=cmd_transcode)
    sample = sub.add_parser("sample", help="write a sample 1080x1920 clip made by the project")
    sample.add_argument("output")
    sample.add_argument("--seconds", type=float, default=10.0)
    sample.set_defaults(run=cmd_sample)
    serve = sub.add_parser(
        "serve", help="the API (embedded: with its worker, SQLite and a local origin)"
    )
    serve.add_argument("--host", default=None, help="overrides REELFORGE_HOST")
    serve.add_argument("--port", type=int, default=None, help="overrides REELFORGE_PORT")
    serve.add_argument("--data-dir", default=None, help="overrides REELFORGE_DATA_DIR")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="once ready, upload and publish a sample clip as the `demo` account",
    )
    serve.add_argument("--demo-seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    serve.set_defaults(run=cmd_serve)
    edge = sub.add_parser("edge-config", help="the nginx CDN edge configuration for an origin")
    edge.add_argument("--origin", required=True, help="the origin, http(s)://host[:port]")
    edge.add_argument("--listen", required=True, help="HOST:PORT the edge listens on")
    edge.add_argument("--cache-dir", required=True, help="the edge's cache directory")
    edge.add_argument("--media-path", default="/media", help="the origin's media route")
    edge.add_argument("--max-size", default="10g", help="cache size limit (nginx units)")
    edge.add_argument("--out", default=None, help="write here instead of stdout")
    edge.set_defaults(run=cmd_edge_config)
    moderator = sub.add_parser("moderator", help="grant or revoke the moderator role")
    moderator.add_argument("action", choices=("grant", "revoke"))
    moderator.add_argument("handle")
    moderator.add_argument("--data-dir", default=None, help="overrides REELFORGE_DATA_DIR")
    moderator.set_defaults(run=cmd_moderator)
    catalog = sub.add_parser("catalog", help="the copyright reference catalog (audio fingerprints)")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    catalog_add = catalog_sub.add_parser("add", help="fingerprint files into the catalog")
    catalog_add.add_argument("files", nargs="+", metavar="FILE")
    catalog_add.add_argument("--owner", required=True, help="the rights holder")
    catalog_add.add_argument(
        "--policy",
        choices=("block", "mute", "allow"),
        default="block",
        help="what happens to uploads that use it (default block)",
    )
    catalog_add.set_defaults(run=cmd_catalog_add)
    catalog_remove = catalog_sub.add_parser("remove", help="remove references by name")
    catalog_remove.add_argument("names", nargs="+", metavar="NAME", help="as `add` printed it")
    catalog_remove.set_defaults(run=cmd_catalog_remove)
    catalog_match = catalog_sub.add_parser("match", help="the catalog's best match for a file")
    catalog_match.add_argument("file", metavar="FILE")
    catalog_match.add_argument("--json", action="store_true", help="print JSON (null: none)")
    catalog_match.set_defaults(run=cmd_catalog_match)
    return parser


def single_threaded_libraries() -> None:
    """Keep numpy's BLAS from starting a thread pool: the CLI needs none, and a process with
    no native threads can fork its job child instead of spawning it (no re-import)."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def main(argv: list[str] | None = None) -> int:
    single_threaded_libraries()
    from engine.errors import InputRejected

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except InputRejected as exc:
        print(f"reelforge: input rejected: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except FileNotFoundError as exc:
        print(f"reelforge: input rejected: no such file: {exc.filename}", file=sys.stderr)
        return EXIT_REJECTED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"reelforge: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
