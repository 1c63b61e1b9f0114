"""The processing job (being written)."""

from __future__ import annotations

from api.settings import Settings


class InputRejectedError(Exception):
    pass


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def process(self, video_id: str) -> None:
        raise NotImplementedError

    def cleanup(self, video_id: str) -> None:
        raise NotImplementedError

    def unfinished(self) -> list[tuple[str, str]]:
        return []

    def close(self) -> None:
        pass
