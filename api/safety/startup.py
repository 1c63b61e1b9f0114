"""Start-up checks of the safety configuration (issue 5): a process that would route uploads
with checks that cannot work refuses to start, with one line naming what is wrong.

`reelforge serve` (cli/serve.py) and every worker process (worker.py `build`) run them.
"""

from __future__ import annotations

from api.core.settings import Settings, SettingsError
from api.safety.config import (
    COPYRIGHT_MODULE,
    FINGERPRINT_MODULE,
    FINGERPRINT_SETTING,
    model_config,
    optional_module,
    watched_words,
)
from classifiers.moderation import ModelError, check_model
from classifiers.sampling import SamplingSpec


def check_startup(settings: Settings) -> None:
    """Fail start-up (`reelforge serve`, worker processes) on a safety configuration that
    cannot work: a missing or malformed moderation model (the message names its path), bad
    thresholds, an unreadable watched-word list, fingerprinting on without its module."""
    low, high = settings.moderation_review_threshold, settings.moderation_reject_threshold
    if not 0.0 <= low <= high <= 1.0:
        raise SettingsError(
            "REELFORGE_MODERATION_REVIEW_THRESHOLD / _REJECT_THRESHOLD must satisfy "
            f"0 ≤ review ≤ reject ≤ 1 (got {low} and {high})"
        )
    if settings.moderation_inference not in ("thread", "end"):
        raise SettingsError("REELFORGE_MODERATION_INFERENCE must be thread or end")
    if not 0 <= settings.pdq_max_distance <= 256:
        raise SettingsError("REELFORGE_PDQ_MAX_DISTANCE must be between 0 and 256")
    try:
        SamplingSpec(settings.sample_fps, settings.max_sampled_frames, settings.scene_threshold)
    except ValueError as exc:
        raise SettingsError(f"REELFORGE_SAMPLE_FPS / _MAX_SAMPLED_FRAMES: {exc}") from None
    watched_words(settings)
    if settings.moderation_enabled:
        try:
            check_model(model_config(settings))
        except ModelError as exc:
            raise SettingsError(f"REELFORGE_MODERATION_MODEL: {exc}") from None
    if settings.fingerprint_enabled:
        optional_module(FINGERPRINT_MODULE, FINGERPRINT_SETTING)
        optional_module(COPYRIGHT_MODULE, FINGERPRINT_SETTING)


def check_catalog(settings: Settings) -> None:
    """Fail start-up of a process that runs jobs (a worker, embedded `serve`) while the
    copyright catalog holds references fingerprinted by an older version: uploads would never
    match them, so their owners' policies would silently stop applying. `settings` are
    resolved (`Settings.from_env`): their database is the one the jobs use."""
    if not settings.fingerprint_enabled:
        return
    from api.core.db import create_schema, sync_engine
    from classifiers import catalog

    engine = sync_engine(settings)
    try:
        create_schema(engine)
        with engine.connect() as conn:
            stale = catalog.stale_references(conn)
    finally:
        engine.dispose()
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise SettingsError(
            f"the copyright catalog has {len(stale)} reference(s) fingerprinted by an older "
            f"version, which no upload can match: {shown}. Add their files again "
            "(`reelforge catalog add FILE... --owner NAME`) or remove them "
            "(`reelforge catalog remove NAME...`)"
        )
