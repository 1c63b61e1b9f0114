"""The safety checks as the settings describe them (issue 5): the moderation model, what every
transcode analyzes, the watched words, and the optional modules fingerprinting needs.

Settings are translated here and nowhere else; start-up (api/safety/startup.py), the routing
(api/safety/routing.py) and the records (api/safety/record.py) read them through these.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from api.core.settings import Settings, SettingsError
from classifiers.moderation import ModelConfig
from classifiers.pdq import PdqSpec
from classifiers.sampling import SamplingSpec
from classifiers.words import WatchedWord, WordListError, load_word_list
from engine.analysis import AnalysisSpec

# Imported by name, only when fingerprinting is on: their dependencies are optional, and
# start-up (api/safety/startup.py) imports both to fail early when they are missing.
COPYRIGHT_MODULE = "api.safety.copyright"
FINGERPRINT_MODULE = "classifiers.fingerprint"
FINGERPRINT_SETTING = "REELFORGE_FINGERPRINT_ENABLED"


def model_config(settings: Settings) -> ModelConfig:
    """The moderation model as the settings describe it."""
    return ModelConfig(
        path=settings.moderation_model,
        kind=settings.moderation_kind.lower(),  # type: ignore[arg-type]
        fit=settings.moderation_fit.lower(),  # type: ignore[arg-type]
        input_size=settings.moderation_input_size,
        resize=settings.moderation_resize,
        mean=_three(settings.moderation_mean, "REELFORGE_MODERATION_MEAN"),
        std=_three(settings.moderation_std, "REELFORGE_MODERATION_STD"),
        scale=settings.moderation_scale,
        channels=settings.moderation_channels.upper(),  # type: ignore[arg-type]
        layout=settings.moderation_layout.upper(),  # type: ignore[arg-type]
        labels=tuple(settings.moderation_labels),
        counted=tuple(settings.moderation_counted),
        activation=settings.moderation_activation.lower(),  # type: ignore[arg-type]
        batch_size=settings.moderation_batch,
        threads=settings.moderation_threads,
        jpeg_quality=settings.moderation_jpeg_quality,
    )


def _three(values: Sequence[float], name: str) -> tuple[float, float, float]:
    if len(values) != 3:
        raise SettingsError(f"{name} needs three comma-separated numbers, not {list(values)}")
    return (float(values[0]), float(values[1]), float(values[2]))


def analysis_spec(settings: Settings, artifacts_dir: Path | None = None) -> AnalysisSpec:
    """What every transcode analyzes, from the settings (picklable, for the engine's child)."""
    fingerprint = None
    if settings.fingerprint_enabled:
        fingerprint = optional_module(FINGERPRINT_MODULE, FINGERPRINT_SETTING).FingerprintSpec()
    return AnalysisSpec(
        sampling=SamplingSpec(
            fps=settings.sample_fps,
            max_frames=settings.max_sampled_frames,
            scene_threshold=settings.scene_threshold,
        ),
        moderation=model_config(settings) if settings.moderation_enabled else None,
        inference="end" if settings.moderation_inference == "end" else "thread",
        confirm_window=settings.moderation_confirm_seconds,
        pdq=PdqSpec(min_quality=settings.pdq_min_quality) if settings.pdq_enabled else None,
        fingerprint=fingerprint,
        artifacts_dir=str(artifacts_dir) if artifacts_dir is not None else None,
    )


def optional_module(module: str, setting: str) -> ModuleType:
    """Import a module a setting turned on; a `SettingsError` naming both when it can't be."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SettingsError(f"{setting} is on but {module} cannot be imported: {exc}") from None


def copyright_module() -> ModuleType:
    """api/safety/copyright.py, which fingerprinting needs (see `COPYRIGHT_MODULE`)."""
    return optional_module(COPYRIGHT_MODULE, FINGERPRINT_SETTING)


@functools.lru_cache(maxsize=8)
def _word_list(entries: tuple[str, ...], path: str, stamp: float) -> tuple[WatchedWord, ...]:
    return tuple(load_word_list(entries, path or None))


def watched_words(settings: Settings) -> tuple[WatchedWord, ...]:
    """The configured watched words (the file is re-read when it changes)."""
    path = settings.watched_words_file
    stamp = Path(path).stat().st_mtime if path and Path(path).exists() else 0.0
    try:
        return _word_list(tuple(settings.watched_words), path, stamp)
    except WordListError as exc:
        raise SettingsError(f"REELFORGE_WATCHED_WORDS: {exc}") from None
