"""What every content analyzer implements: a tap on the engine's single decode.

Analyzers run inside the transcode's sandboxed child, fed by the same decode as the ladder
(engine/pipeline.py `FrameConsumer`): `on_video` sees every upright frame of the largest rung
(8-bit 4:2:0, BT.709), `on_audio` every audio frame as the AAC encoder does (48 kHz stereo
float planar, aligned with the video). `result()` is called once at the end; its value must be
JSON-serializable and lands in the job report under `report["analysis"][name]`, from where the
worker routes the video (api/safety/routing.py) and stores what moderators and claims need.

Analyzers must be cheap per frame (sample; don't convert every frame) and must never raise out
of `on_video`/`on_audio` for content reasons: record the problem in `result()` instead.
"""

from __future__ import annotations

from typing import Any, Protocol


class Analyzer(Protocol):
    name: str

    def on_video(self, frame: Any, time: float) -> None: ...

    def on_audio(self, frame: Any, time: float) -> None: ...

    def result(self) -> dict[str, Any]: ...
