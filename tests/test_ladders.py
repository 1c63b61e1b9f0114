"""choose_ladder: table tests on pure data."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ladders import choose_ladder, fit_short_side
from ladders.choose import cap_bitrate
from ladders.defaults import DEFAULT_RUNGS


@dataclass(frozen=True)
class Shape:
    display_width: int
    display_height: int
    bit_rate: int | None = 8_000_000


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1080, 1920, [(1080, 1920), (720, 1280), (540, 960), (360, 640)]),
        (1920, 1080, [(1920, 1080), (1280, 720), (960, 540), (640, 360)]),
        (720, 720, [(720, 720), (540, 540), (360, 360)]),
        (1081, 1919, [(1080, 1918), (720, 1278), (540, 958), (360, 640)]),
        (3026, 1386, [(2358, 1080), (1572, 720), (1178, 540), (786, 360)]),
        (1280, 360, [(1280, 360)]),
        (640, 480, [(480, 360)]),
        (200, 300, [(200, 300)]),
        (201, 355, [(200, 354)]),
    ],
)
def test_rung_sizes(width: int, height: int, expected: list[tuple[int, int]]) -> None:
    rungs = choose_ladder(Shape(width, height))
    assert [(r.width, r.height) for r in rungs] == expected
    for rung in rungs:
        assert rung.width % 2 == 0 and rung.height % 2 == 0
        assert rung.width <= max(width, 2) and rung.height <= max(height, 2)
        # display aspect kept within one pixel of the ideal for the rung's short side
        if width <= height:
            assert abs(rung.height - height * rung.width / width) <= 1.01
        else:
            assert abs(rung.width - width * rung.height / height) <= 1.01


def test_never_upscales_and_names_follow_short_side() -> None:
    rungs = choose_ladder(Shape(540, 960))
    assert [r.name for r in rungs] == ["v540", "v360"]


@pytest.mark.parametrize(
    ("source_rate", "expected_1080"),
    [
        (None, 5_000_000),  # unknown: the table's value
        (20_000_000, 5_000_000),  # high bitrate: the table caps
        (2_000_000, 2_600_000),  # source x 1.3
        (100_000, 1_500_000),  # never below the floor
    ],
)
def test_bitrate_cap(source_rate: int | None, expected_1080: int) -> None:
    assert cap_bitrate(DEFAULT_RUNGS[0], source_rate) == expected_1080
    rung = choose_ladder(Shape(1080, 1920, source_rate))[0]
    assert rung.maxrate == expected_1080
    assert rung.bufsize == expected_1080


def test_fit_short_side_is_even_and_keeps_aspect() -> None:
    assert fit_short_side(853, 480, 360) == (640, 360)
    assert fit_short_side(480, 853, 360) == (360, 640)
