"""tests/support/retime.py: the rewrites the player tests and bench/player_av_start.py rely on
(ISO/IEC 14496-12 §8.8.12 tfdt, §8.6.6 elst) keep a file that real readers accept."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from packager.cmaf import FragmentSink
from packager.errors import MalformedSegmentError
from packager.isobmff import find_box, iter_boxes, parse_tfdt, read_full_box
from tests.packager.encode import encode_video
from tests.support.retime import add_edit_list, shift_tfdt


@pytest.fixture(scope="module")
def track(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("retime") / "v"
    with FragmentSink(folder) as sink:
        encode_video(sink, 160, 120, 4)
    return folder


def _first_pts(init: Path, segment: Path, scratch: Path) -> int:
    joined = scratch / "joined.mp4"
    joined.write_bytes(init.read_bytes() + segment.read_bytes())
    with av.open(str(joined)) as container:
        stream = container.streams.video[0]
        return min(p.pts for p in container.demux(stream) if p.pts is not None)


def _tfdt(segment: Path) -> int:
    box = find_box(segment.read_bytes(), "moof/traf/tfdt")
    assert box is not None
    return parse_tfdt(box.payload)


def test_shift_tfdt_moves_every_fragment(track: Path, tmp_path: Path) -> None:
    segment = tmp_path / "00002.m4s"
    segment.write_bytes((track / "00002.m4s").read_bytes())
    before = _tfdt(segment)

    assert shift_tfdt(segment, 1234) == 1

    after = _tfdt(segment)
    assert after - before == 1234
    with pytest.raises(MalformedSegmentError):
        shift_tfdt(segment, -after - 1)


def test_add_edit_list_keeps_the_header_readable(track: Path, tmp_path: Path) -> None:
    init = tmp_path / "init.mp4"
    init.write_bytes((track / "init.mp4").read_bytes())
    pts_before = _first_pts(init, track / "00001.m4s", tmp_path)

    add_edit_list(init, 512)

    data = init.read_bytes()
    assert sum(box.size for box in iter_boxes(data)) == len(data)
    elst = find_box(data, "moov/trak/edts/elst")
    assert elst is not None
    version, _, reader = read_full_box(elst.payload, "elst")
    assert (version, reader.uint(4), reader.uint(4), reader.sint(4)) == (0, 1, 0, 512)
    # FFmpeg's mov demuxer applies the edit: presentation starts 512 ticks earlier.
    assert _first_pts(init, track / "00001.m4s", tmp_path) == pts_before - 512
    with pytest.raises(MalformedSegmentError, match="no edts"):
        add_edit_list(init, 512)
