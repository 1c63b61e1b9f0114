"""write_manifests against manifests written by hand from the specifications (issue 16: the
golden files under tests/resources/manifests/ were produced by the code they check).

tests/resources/manifests_by_hand/ holds an HLS master and media playlist (RFC 8216) and an
MPD (ISO/IEC 23009-1) for the small track `tests.packager.tracks.BY_HAND`, each line justified
by a comment citing its section and, for the bit rates and durations, the arithmetic. They
are never regenerated: a change that breaks them is either a bug or a change of policy that a
person re-derives by hand.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

from packager.manifests import write_manifests
from tests.packager.tracks import BY_HAND

BY_HAND_DIR = Path(__file__).parents[1] / "resources" / "manifests_by_hand"
# MPD attributes of type xs:duration (ISO/IEC 23009-1 §5.3.1.2, §5.3.2): compared by value.
DURATIONS = {"mediaPresentationDuration", "minBufferTime", "start"}
_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def playlist_lines(text: str) -> list[str]:
    """The playlist without its comments (RFC 8216 §4.1: "#" lines not starting "#EXT")."""
    return [
        line for line in text.splitlines() if not line.startswith("#") or line.startswith("#EXT")
    ]


def seconds(duration: str) -> Fraction:
    """An xs:duration of hours, minutes and seconds (XML Schema Part 2 §3.2.6) in seconds."""
    match = _DURATION.match(duration)
    assert match and duration != "PT", duration
    hours, minutes, secs = (Fraction(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


def element(node: ET.Element) -> tuple[str, dict[str, object], list[object]]:
    """An MPD element as comparable data: tag, attribute values, children (no text)."""
    attributes: dict[str, object] = {
        name: seconds(value) if name in DURATIONS else value for name, value in node.attrib.items()
    }
    assert not (node.text or "").strip(), (node.tag, node.text)
    return node.tag, attributes, [element(child) for child in node]


def test_hls_playlists_match_the_ones_written_from_rfc_8216(tmp_path: Path) -> None:
    write_manifests(tmp_path, BY_HAND, None)
    for name in ("master.m3u8", "v360/index.m3u8"):
        expected = playlist_lines((BY_HAND_DIR / name).read_text(encoding="utf-8"))
        written = (tmp_path / name).read_text(encoding="utf-8")
        assert written.splitlines() == expected, name
        assert written.endswith("\n") and written.startswith("#EXTM3U\n"), name


def test_mpd_matches_the_one_written_from_iso_23009_1(tmp_path: Path) -> None:
    write_manifests(tmp_path, BY_HAND, None)
    expected = ET.parse(BY_HAND_DIR / "manifest.mpd").getroot()
    written = ET.parse(tmp_path / "manifest.mpd").getroot()
    assert element(written) == element(expected)


def test_the_hand_written_files_are_what_the_test_reads() -> None:
    """Every comparison above covers a whole file: the playlists keep their tags after the
    comments are dropped, and the MPD's attributes that denote durations parse."""
    master = playlist_lines((BY_HAND_DIR / "master.m3u8").read_text(encoding="utf-8"))
    media = playlist_lines((BY_HAND_DIR / "v360" / "index.m3u8").read_text(encoding="utf-8"))
    assert master[0] == media[0] == "#EXTM3U" and media[-1] == "#EXT-X-ENDLIST"
    assert sum(line.startswith("#EXTINF:") for line in media) == len(BY_HAND[0].segments)
    mpd = element(ET.parse(BY_HAND_DIR / "manifest.mpd").getroot())
    assert mpd[1]["mediaPresentationDuration"] == Fraction(76, 10)
    assert mpd[1]["minBufferTime"] == 2
    assert sorted(p.relative_to(BY_HAND_DIR).as_posix() for p in BY_HAND_DIR.rglob("*.*")) == [
        "manifest.mpd",
        "master.m3u8",
        "v360/index.m3u8",
    ]
