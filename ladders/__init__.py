"""Which renditions to make for a source: pure data and pure functions."""

from ladders.choose import choose_ladder, fit_short_side
from ladders.model import AudioRung, Rung

__all__ = ["AudioRung", "Rung", "choose_ladder", "fit_short_side"]
