"""BANDWIDTH (RFC 8216 §4.3.4.2) and DASH @bandwidth (ISO/IEC 23009-1 §5.3.5.2), worked by
hand from the definitions."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest

from packager.errors import PackagerError
from packager.model import Segment, Track, delivery_bandwidth, peak_segment_bit_rate

TIMESCALE = 10  # ticks of 0.1 s keep the hand arithmetic readable


def segments(*spec: tuple[float, int]) -> tuple[Segment, ...]:
    """(seconds, bytes) pairs -> consecutive segments."""
    out, start = [], 0
    for number, (seconds, size) in enumerate(spec, start=1):
        ticks = round(seconds * TIMESCALE)
        out.append(Segment(number, start, ticks, size))
        start += ticks
    return tuple(out)


def test_a_short_last_segment_no_longer_sets_the_peak() -> None:
    # Target duration 2 s: sets must last 1..3 s. Singles of 2 s: 8000 bit / 2 s = 4000 bit/s.
    # The 0.5 s tail alone (2000 B = 32000 bit/s) is too short to be a set; the 3rd segment
    # with the tail lasts 2.5 s: (1000 + 2000) * 8 / 2.5 = 9600 bit/s. 2 s + 2 s = 4 s > 3 s.
    segs = segments((2, 1000), (2, 1000), (2, 1000), (0.5, 2000))
    assert peak_segment_bit_rate(segs, TIMESCALE, 2) == 9600


def test_peak_takes_the_densest_run_of_qualifying_length() -> None:
    # Target 4 s: sets of 2..6 s. [1 s 3000 B] alone is too short; with the next 1 s (1000 B)
    # it is a 2 s set at 16000 bit/s; adding the 3 s segment (1500 B) dilutes it.
    segs = segments((3, 1500), (1, 3000), (1, 1000), (3, 1500))
    assert peak_segment_bit_rate(segs, TIMESCALE, 4) == 16000


def test_a_track_shorter_than_half_its_target_is_its_own_average() -> None:
    segs = segments((0.4, 500))
    assert peak_segment_bit_rate(segs, TIMESCALE, 1) == 10000


def test_peak_matches_a_brute_force_reading_of_the_rfc() -> None:
    sizes = [1200, 900, 4000, 300, 2500, 800, 50]
    durations = [2, 2, 2, 2, 2, 2, 0.3]
    segs = segments(*zip(durations, sizes, strict=True))
    target = 2
    rates = []
    for i, j in itertools.combinations(range(len(segs) + 1), 2):
        run = segs[i:j]
        seconds = Fraction(sum(s.duration for s in run), TIMESCALE)
        if Fraction(target, 2) <= seconds <= Fraction(3 * target, 2):
            rates.append(Fraction(sum(s.size for s in run) * 8) / seconds)
    assert peak_segment_bit_rate(segs, TIMESCALE, target) == round(max(rates))


def test_track_bandwidth_uses_its_own_target_duration() -> None:
    track = Track("v", "video", "avc1.64001f", TIMESCALE, segments((2, 1000), (2.6, 1000)), 100)
    assert track.target_duration == 3  # 2.6 rounds to 3
    # sets of 1.5..4.5 s: 2 s (4000), 2.6 s (3077), 4.6 s is too long
    assert track.peak_bandwidth == 4000


def test_delivery_model_bandwidth() -> None:
    # minBufferTime 2 s, segments of 2 s with 8000, 24000, 8000 bits. Starting at the second
    # segment, its 24000 bits must arrive within the 2 s buffer: 12000 bit/s. Every other
    # start and end asks less: from the first, 32000 bits in 2 + 2 s = 8000 bit/s, etc.
    segs = segments((2, 1000), (2, 3000), (2, 1000))
    assert delivery_bandwidth(segs, TIMESCALE, Fraction(2)) == 12000
    # a longer buffer spreads the big segment: (3000 B * 8) / 4 s = 6000; 1st+2nd: 32000 / 6
    assert delivery_bandwidth(segs, TIMESCALE, Fraction(4)) == 6000


def test_delivery_model_is_not_inflated_by_a_short_tail() -> None:
    # The old per-segment peak made this 32000 bit/s. Starting at the tail, its 16000 bits
    # have the whole 2 s buffer: 8000 bit/s; from the 3rd segment, 24000 bits by 4 s: 6000.
    segs = segments((2, 1000), (2, 1000), (2, 1000), (0.5, 2000))
    assert delivery_bandwidth(segs, TIMESCALE, Fraction(2)) == 8000


def test_delivery_bandwidth_is_enough_and_barely_so() -> None:
    """Simulate the §5.3.5.2 channel at the computed rate and 1 % below it."""
    segs = segments((2, 5000), (2, 9000), (1.5, 700), (2, 12000), (2, 3000), (0.4, 900))
    buffer = Fraction(2)
    rate = delivery_bandwidth(segs, TIMESCALE, buffer)

    def starves(bits_per_second: float) -> bool:
        for first in range(len(segs)):
            received, elapsed = 0, Fraction(0)
            for segment in segs[first:]:
                received += segment.size * 8
                if Fraction(received) / Fraction(bits_per_second) > buffer + elapsed:
                    return True
                elapsed += Fraction(segment.duration, TIMESCALE)
        return False

    assert not starves(rate)
    assert starves(rate * 0.99)


def test_delivery_model_needs_a_buffer() -> None:
    with pytest.raises(PackagerError, match="minBufferTime"):
        delivery_bandwidth(segments((2, 1000)), TIMESCALE, Fraction(0))
