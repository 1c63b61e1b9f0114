"""HDR → SDR tone mapping: the transfer functions and curve (tables), the colour facts read
from a source, and whole jobs on HLG / PQ / PQ+HDR10 versions of real and generated SDR clips,
which must come back close to the original SDR clip."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.colorinfo import (
    ColorInfo,
    ContentLightLevel,
    MasteringDisplay,
    parse_content_light_level,
    parse_mastering_display,
)
from engine.hdr import ToneMapSettings, plan_tone_map
from engine.tonemap import (
    BT709_LUMA,
    BT2020_TO_BT709,
    ToneMapParams,
    bt2390_eetf,
    build_lut,
    cube_text,
    desaturate_into_gamut,
    hlg_inverse_oetf,
    pq_eotf,
    pq_inverse_eotf,
    tone_map,
)
from tests.conftest import JobResult
from tests.support.ffprobe import joined_rendition, run_ffprobe
from tests.support.hdr import (
    looks,
    make_hable_reference,
    make_hdr_version,
    make_sdr_reference,
    run9,
    ssim,
)

# --- transfer functions and curve: known values (SMPTE ST 2084, ITU-R BT.2100, BT.2408) ---


@pytest.mark.parametrize(
    ("signal", "nits"),
    [(0.0, 0.0), (1.0, 10000.0), (0.5080784, 100.0), (0.5806888, 203.0), (0.7518271, 1000.0)],
)
def test_pq_eotf_known_values(signal: float, nits: float) -> None:
    assert float(pq_eotf(np.array(signal))) == pytest.approx(nits, rel=1e-4, abs=1e-6)
    assert float(pq_inverse_eotf(np.array(nits))) == pytest.approx(signal, abs=1e-6)


@pytest.mark.parametrize(
    ("signal", "scene"),
    [(0.0, 0.0), (0.5, 1 / 12), (1.0, 1.0), (0.75, 0.2649)],
)
def test_hlg_inverse_oetf_known_values(signal: float, scene: float) -> None:
    assert float(hlg_inverse_oetf(np.array(signal))) == pytest.approx(scene, abs=1e-4)


@pytest.mark.parametrize("source_peak", [400.0, 1000.0, 4000.0])
def test_bt2390_eetf_is_monotone_identity_below_knee_and_ends_at_target(
    source_peak: float,
) -> None:
    nits = np.linspace(0.0, source_peak, 4001)
    out = bt2390_eetf(nits, source_peak, 203.0)
    assert np.all(np.diff(out) >= -1e-9)
    assert float(out[-1]) == pytest.approx(203.0, rel=1e-3)
    source_pq = float(pq_inverse_eotf(np.array(source_peak)))
    knee = 1.5 * float(pq_inverse_eotf(np.array(203.0))) - 0.5 * source_pq  # BT.2390 KS
    dark = nits < float(pq_eotf(np.array(knee)))
    assert dark.sum() > 20
    assert np.allclose(out[dark], nits[dark], rtol=1e-6, atol=1e-9)
    assert float(out.max()) <= 203.0 + 1e-6


def test_bt2390_eetf_passes_a_source_no_brighter_than_the_target() -> None:
    nits = np.array([0.0, 50.0, 150.0, 203.0])
    assert np.allclose(bt2390_eetf(nits, 203.0, 203.0), nits)


def test_bt2020_to_bt709_keeps_white_and_matches_bt2087() -> None:
    assert np.allclose(BT2020_TO_BT709.sum(axis=1), 1.0, atol=1e-9)
    assert BT2020_TO_BT709[0] == pytest.approx([1.6605, -0.5876, -0.0728], abs=1e-4)


def test_desaturate_into_gamut_keeps_luminance_and_removes_negatives() -> None:
    rgb = np.array([[1.2, -0.1, 0.05], [0.3, 0.3, 0.3], [0.0, 0.5, -0.2]])
    fixed = desaturate_into_gamut(rgb, BT709_LUMA)
    assert fixed.min() >= 0.0
    assert np.allclose(fixed @ BT709_LUMA, rgb @ BT709_LUMA)
    assert np.allclose(fixed[1], rgb[1])  # in gamut: unchanged


@pytest.mark.parametrize("transfer", ["pq", "hlg"])
def test_reference_white_and_black_land_where_sdr_puts_them(transfer: str) -> None:
    black = tone_map(np.zeros((1, 3)), ToneMapParams(transfer))
    assert np.allclose(black, 0.0)
    # HDR reference white (203 nits; HLG 75 %, ITU-R BT.2408 §2.2) stays near SDR white.
    white_signal = 0.75 if transfer == "hlg" else float(pq_inverse_eotf(np.array(203.0)))
    white = tone_map(np.full((1, 3), white_signal), ToneMapParams(transfer))
    assert np.ptp(white) < 1e-9
    assert 0.88 <= float(white[0, 0]) <= 1.0
    # Mid grey (SDR 50 %, 203 · 0.5^2.4 nits) is under the knee: unchanged.
    grey = float(pq_inverse_eotf(np.array(203.0 * 0.5**2.4)))
    assert tone_map(np.full((1, 3), grey), ToneMapParams("pq"))[0, 0] == pytest.approx(0.5)


def test_metadata_peak_moves_the_curve() -> None:
    white = np.full((1, 3), float(pq_inverse_eotf(np.array(203.0))))
    at = {p: float(tone_map(white, ToneMapParams("pq", source_peak=p))[0, 0]) for p in (203, 1000)}
    assert at[203] == pytest.approx(1.0)
    assert at[1000] < at[203] - 0.05


def test_cube_text_orders_red_fastest() -> None:
    lut = build_lut(ToneMapParams("pq"), size=3)
    lines = cube_text(lut).splitlines()
    assert "LUT_3D_SIZE 3" in lines
    rows = [list(map(float, line.split())) for line in lines[4:]]
    assert len(rows) == 27
    assert rows[0] == [0.0, 0.0, 0.0]
    assert rows[-1] == pytest.approx([1.0, 1.0, 1.0])
    red_only, blue_only = rows[2], rows[18]  # r=2 (index 2), b=2 (index 18)
    assert red_only[0] == 1.0 and red_only[1] == 0.0
    assert blue_only[2] == 1.0 and blue_only[0] == 0.0


# --- colour facts from side data ---


def test_parse_mastering_display_and_light_level() -> None:
    values = [34000, 50000, 16000, 50000, 13250, 50000, 34500, 50000, 7500, 50000, 3000, 50000,
              15635, 50000, 16450, 50000, 50, 10000, 10000000, 10000, 1, 1]  # fmt: skip
    md = parse_mastering_display(struct.pack("=22i", *values))
    assert md.red == (0.68, 0.32) and md.white_point == (0.3127, 0.329)
    assert md.max_luminance == 1000.0 and md.min_luminance == 0.005
    assert parse_content_light_level(struct.pack("=2I", 400, 100)) == ContentLightLevel(400, 100)


@pytest.mark.parametrize(
    ("color", "peak", "peak_from"),
    [
        (ColorInfo(transfer="smpte2084"), 1000.0, "default"),
        (ColorInfo(transfer="smpte2084", content_light_level=ContentLightLevel(400, 100)),
         400.0, "max_cll"),
        (ColorInfo(transfer="smpte2084", content_light_level=ContentLightLevel(0, 0),
                   mastering_display=MasteringDisplay(None, None, None, None, 0.005, 4000.0)),
         4000.0, "mastering_display"),
    ],
)  # fmt: skip
def test_plan_takes_the_peak_from_metadata(color: ColorInfo, peak: float, peak_from: str) -> None:
    plan = plan_tone_map(color, ToneMapSettings())
    assert plan is not None
    assert (plan.params.source_peak, plan.peak_from) == (peak, peak_from)


def test_no_plan_for_sdr_or_when_turned_off() -> None:
    assert plan_tone_map(ColorInfo(transfer="bt709"), ToneMapSettings()) is None
    assert plan_tone_map(ColorInfo(transfer="smpte2084"), None) is None


# --- whole jobs: HDR versions of real and generated SDR clips ---

SIZE = (640, 360)
# SSIM against the original. testsrc2 is bars of 100 % saturated colour at SDR white level,
# all of which the BT.2390 knee (PQ without metadata: a 1000-nit peak assumed) rolls off:
# it scores 0.93-0.94 (ffmpeg 9's zscale + tonemap=hable: 0.90), so it must beat hable there.
MIN_SSIM = {"cockatoo": 0.96, "generated": 0.92}
VARIANTS = {"hlg": ("hlg", False), "pq": ("pq", False), "pq_hdr10": ("pq", True)}


@pytest.fixture(scope="session")
def sdr_references(media: Path, clip_dir: Path) -> dict[str, Path]:
    generated = clip_dir / "hdr-generated-src.mp4"
    if not generated.exists():
        run9("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=3",
             "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", str(generated))  # fmt: skip
    return {
        "cockatoo": make_sdr_reference(
            media / "cockatoo.mp4", clip_dir / "hdr-cockatoo-sdr.mp4", 3, *SIZE, start=2
        ),
        "generated": make_sdr_reference(generated, clip_dir / "hdr-generated-sdr.mp4", 3, *SIZE),
    }


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("clip", ["cockatoo", "generated"])
def test_hdr_version_comes_back_close_to_the_sdr_original(
    clip: str,
    variant: str,
    sdr_references: dict[str, Path],
    clip_dir: Path,
    transcoded: Callable[[Path], JobResult],
) -> None:
    sdr = sdr_references[clip]
    transfer, metadata = VARIANTS[variant]
    hdr = make_hdr_version(sdr, clip_dir / f"hdr-{clip}-{variant}.mov", transfer, metadata)
    job = transcoded(hdr)
    assert job.returncode == 0, job.stderr
    report = job.report
    color = report["source"]["color"]
    assert color["primaries"] == "bt2020" and color["matrix"] == "bt2020nc"
    assert color["hdr"] == transfer
    assert report["tone_mapping"]["applied"] is True
    if metadata:
        assert color["mastering_display"]["max_luminance"] == 1000.0
        assert color["content_light_level"] == {"max_cll": 400, "max_fall": 100}
        assert report["tone_mapping"]["source_peak_from"] == "max_cll"
    top = job.outdir / report["ladder"]["video"][0]["name"]
    with joined_rendition(top) as joined:
        stream = run_ffprobe(joined, "-show_streams")["streams"][0]
        assert (stream["color_primaries"], stream["color_transfer"]) == ("bt709", "bt709")
        ours, original = looks(joined, *SIZE), looks(sdr, *SIZE)
        score = ssim(joined, sdr, *SIZE)
    assert ours.luma == pytest.approx(original.luma, rel=0.10)
    assert ours.saturation == pytest.approx(original.saturation, rel=0.15)
    assert score >= MIN_SSIM[clip]
    if clip == "generated":
        hable = make_hable_reference(hdr, clip_dir / f"hdr-{clip}-{variant}-hable.mp4")
        assert score > ssim(hable, sdr, *SIZE) + 0.01


def test_sdr_source_is_not_tone_mapped(
    sdr_references: dict[str, Path], transcoded: Callable[[Path], JobResult]
) -> None:
    job = transcoded(sdr_references["cockatoo"])
    assert job.returncode == 0, job.stderr
    color = job.report["source"]["color"]
    assert color["hdr"] is None and color["transfer"] not in ("smpte2084", "arib-std-b67")
    assert job.report["tone_mapping"] == {"applied": False, "source_transfer": color["transfer"]}
