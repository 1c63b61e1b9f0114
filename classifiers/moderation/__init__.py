"""Keyframe moderation: sampled frames scored by an ONNX image classifier or detector (issue 5,
"Keyframe moderation").

- `config`: the model as configuration (`ModelConfig`, `ModelError`, the default model).
- `model`: the ONNX Runtime session and its pre-/post-processing (`ModerationModel`),
  the start-up check (`check_model`).
- `frames`: decoded frames made into model input (`prepare`) and thumbnails.
- `scores`: per-frame scores aggregated over time (`sustained_scores`).
- `analyzer`: the frame tap that scores a video while it decodes (`ModerationAnalyzer`).
"""

from classifiers.moderation.analyzer import Inference, ModerationAnalyzer
from classifiers.moderation.config import (
    DEFAULT_MODEL_FILE,
    DEFAULT_MODEL_PACKAGE,
    Fit,
    Kind,
    ModelConfig,
    ModelError,
    default_model_path,
)
from classifiers.moderation.frames import jpeg_roundtrip, padded, prepare, thumbnail
from classifiers.moderation.model import BOX_VALUES, ModerationModel, check_model
from classifiers.moderation.scores import sustained_scores

__all__ = [
    "BOX_VALUES",
    "DEFAULT_MODEL_FILE",
    "DEFAULT_MODEL_PACKAGE",
    "Fit",
    "Inference",
    "Kind",
    "ModelConfig",
    "ModelError",
    "ModerationAnalyzer",
    "ModerationModel",
    "check_model",
    "default_model_path",
    "jpeg_roundtrip",
    "padded",
    "prepare",
    "sustained_scores",
    "thumbnail",
]
