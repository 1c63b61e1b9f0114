"""Content analysis on the single decode (issue 5): what to run, as picklable data, and the
analyzers built from it inside the transcode's child.

Only `AnalysisSpec` crosses the process boundary (engine/sandbox.py pickles the job's
arguments); `build_analyzers` makes the live objects (an ONNX Runtime session, a thread)
in the child, where `engine.pipeline.transcode` feeds them as taps and puts each one's
`result()` under `report["analysis"][name]`.

- moderation (classifiers/moderation/) and PDQ (classifiers/pdq.py) share one
  `FrameSampler` (classifiers/sampling.py), so they look at the same frames;
- fingerprint: `classifiers.fingerprint.FingerprintAnalyzer(spec.fingerprint)` on the audio
  taps (the copyright matcher's; imported only when enabled, so a server without it runs the
  rest, and one that asks for it without having it fails loudly).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from classifiers.base import Analyzer
from classifiers.moderation import Inference, ModelConfig, ModerationAnalyzer
from classifiers.pdq import PdqAnalyzer, PdqSpec
from classifiers.sampling import FrameSampler, SamplingSpec
from engine.errors import EngineError

FINGERPRINT_MODULE = "classifiers.fingerprint"


@dataclass(frozen=True, slots=True)
class AnalysisSpec:
    """Which analyzers a transcode runs, and their settings (all picklable)."""

    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    moderation: ModelConfig | None = None
    inference: Inference = "thread"
    worst_frames: int = 3
    # Seconds around a sample whose scores confirm it (classifiers.moderation.sustained_scores).
    confirm_window: float = 1.0
    pdq: PdqSpec | None = None
    # A `classifiers.fingerprint.FingerprintSpec`; None: no fingerprint.
    fingerprint: Any = None
    # Where the analyzers may write files (worst-frame JPEGs); None: nowhere.
    artifacts_dir: str | None = None

    @property
    def enabled(self) -> bool:
        return any(x is not None for x in (self.moderation, self.pdq, self.fingerprint))


def build_analyzers(
    spec: AnalysisSpec, duration: float | None = None, sampler: Any = None
) -> list[Analyzer]:
    """The analyzers `spec` asks for; `duration` (the probed source's) spreads the samples.
    `sampler`: what decides which frames they look at (default: a `FrameSampler`; a chunk's
    is engine/rangetaps.py `RangeSampler`)."""
    analyzers: list[Analyzer] = []
    sampler = sampler or FrameSampler(spec.sampling, duration=duration)
    if spec.moderation is not None:
        analyzers.append(
            ModerationAnalyzer(
                spec.moderation,
                sampler,
                inference=spec.inference,
                worst=spec.worst_frames,
                confirm_window=spec.confirm_window,
                artifacts_dir=spec.artifacts_dir,
            )
        )
    if spec.pdq is not None:
        analyzers.append(PdqAnalyzer(spec.pdq, sampler))
    if spec.fingerprint is not None:
        analyzers.append(build_fingerprint(spec.fingerprint))
    return analyzers


def build_fingerprint(part: Any) -> Analyzer:
    try:
        module = importlib.import_module(FINGERPRINT_MODULE)
    except ImportError as exc:
        raise EngineError(
            f"audio fingerprinting is enabled but {FINGERPRINT_MODULE} cannot be imported: {exc}"
        ) from exc
    analyzer: Analyzer = module.FingerprintAnalyzer(part)
    return analyzer


def collect_results(analyzers: list[Analyzer]) -> dict[str, Any]:
    """Every analyzer's `result()`, by name. One that raises gets `{"error": ...}` instead:
    the upload is not at fault, and routing holds a video whose checks did not complete for
    a moderator rather than publishing it unchecked."""
    results: dict[str, Any] = {}
    for analyzer in analyzers:
        try:
            results[analyzer.name] = analyzer.result()
        except Exception as exc:
            results[analyzer.name] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def close_analyzers(analyzers: list[Analyzer]) -> None:
    """Stop what the analyzers run in the background (the job failed: no results)."""
    for analyzer in analyzers:
        close = getattr(analyzer, "close", None)
        if callable(close):
            close()
