"""Routing after the transcode: published, in_review or rejected (issue 5, "Keyframe
moderation", "Known-bad content", and the evidence bullet "routing tested with a stub model of
known outputs ... and with the real model").

Stub models are real ONNX graphs (tests/support/onnx_stub.py) run by onnxruntime through the
same code as the real model; the end-to-end tests go through the real app with its in-process
worker: upload, publish, the engine's single decode with the analyzers, routing, storage,
feeds and the origin.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, select

from api.core import lifecycle
from api.core.db import sync_engine
from api.core.settings import Settings
from api.core.tables import pdq_blocklist, video_safety, videos
from api.safety.blocklist import BlocklistError, add_video_to_blocklist
from api.safety.routing import (
    APPEAL,
    Finding,
    copyright_findings,
    decide,
    moderation_findings,
    pdq_findings,
    word_findings,
)
from classifiers.moderation import ModelConfig, ModerationAnalyzer, ModerationModel
from classifiers.pdq import Match
from classifiers.sampling import FrameSampler, SamplingSpec
from classifiers.words import WordListError, find_watched, fold, load_word_list, parse_entries
from tests.conftest import MEDIA
from tests.support.api import api_client, auth, register
from tests.support.clips import ffmpeg
from tests.support.frames import decoded_frames
from tests.support.onnx_stub import constant_model, expected_logistic, logistic_model

SETTINGS = Settings()
PUBLISHED, IN_REVIEW, REJECTED = lifecycle.PUBLISHED, lifecycle.IN_REVIEW, lifecycle.REJECTED


def moderation(sustained: float, peak: float | None = None, label: str = "nsfw") -> dict[str, Any]:
    peak = sustained if peak is None else peak
    stats = {"max": peak, "p90": sustained, "sustained": sustained}
    return {"error": None, "categories": {label: {**stats, "worst": [{"time": 4.0}]}}}


# ----------------------------------------------------------------- routing rules (pure)


@pytest.mark.parametrize(
    ("sustained", "peak", "outcome"),
    [
        (0.99, None, REJECTED),
        (0.951, None, REJECTED),
        (0.95, None, IN_REVIEW),  # "> 0.95 → rejected": 0.95 itself is reviewed
        (0.8, None, IN_REVIEW),
        (0.701, None, IN_REVIEW),
        (0.7, None, PUBLISHED),
        (0.2, None, PUBLISHED),
        (0.2, 0.99, IN_REVIEW),  # one unconfirmed frame over the reject threshold
        (0.2, 0.9, PUBLISHED),  # one unconfirmed frame between the thresholds
    ],
)
def test_moderation_thresholds(sustained: float, peak: float | None, outcome: str) -> None:
    routing = decide(moderation_findings(moderation(sustained, peak), SETTINGS))
    assert routing.status == outcome
    if outcome == REJECTED:
        assert "automated" in routing.reason and "nsfw" in routing.reason
        assert routing.reason.endswith(APPEAL)
    if outcome == IN_REVIEW:
        assert "review" in routing.reason and "nsfw" in routing.reason
    if outcome == PUBLISHED:
        assert routing.reason == "published"


def test_thresholds_come_from_the_settings() -> None:
    strict = Settings(moderation_review_threshold=0.3, moderation_reject_threshold=0.5)
    assert decide(moderation_findings(moderation(0.4), strict)).status == IN_REVIEW
    assert decide(moderation_findings(moderation(0.6), strict)).status == REJECTED


def test_moderation_that_could_not_run_holds_the_video() -> None:
    routing = decide(moderation_findings({"error": "RuntimeError: boom"}, SETTINGS))
    assert routing.status == IN_REVIEW
    assert "could not complete" in routing.reason


def test_the_most_severe_finding_decides_and_explains() -> None:
    findings = [
        Finding("moderation", IN_REVIEW, "Held for review: x."),
        Finding("words", REJECTED, f"Rejected: caption. {APPEAL}"),
        Finding("pdq", REJECTED, f"Rejected: known. {APPEAL}"),
    ]
    routing = decide(findings)
    assert routing.status == REJECTED
    assert routing.reason == f"Rejected: caption. Rejected: known. {APPEAL}"
    assert decide([]).status == PUBLISHED


def test_a_blocklist_match_rejects() -> None:
    match = Match(time=2.0, hash="0" * 64, entry_id=3, distance=12)
    routing = decide(pdq_findings([match]), pdq_matches=[match])
    assert routing.status == REJECTED
    assert "removed from this service before" in routing.reason
    assert routing.pdq_matches == [match]
    assert pdq_findings([]) == []


@dataclass(frozen=True)
class Outcome:
    """api/safety/copyright.py's `CopyrightOutcome` shape: an action and the claim behind it."""

    action: str
    claim: dict[str, Any] | None


CLAIM = {"name": "Dirt Road", "owner": "Label Records", "ref_id": 1, "offset_s": 3.2}


def test_copyright_block_rejects_naming_the_work() -> None:
    findings, mute = copyright_findings(Outcome("block", CLAIM))
    routing = decide(findings, mute=mute, claim=CLAIM)
    assert routing.status == REJECTED and not routing.mute
    assert '"Dirt Road" (Label Records)' in routing.reason


def test_copyright_mute_publishes_without_audio() -> None:
    findings, mute = copyright_findings(Outcome("mute", CLAIM))
    routing = decide(findings, mute=mute, claim=CLAIM)
    assert routing.status == PUBLISHED and routing.mute
    assert "without its audio" in routing.reason
    # Held for something else as well: the owner is told both.
    held = decide([*findings, *moderation_findings(moderation(0.8), SETTINGS)], mute=mute)
    assert held.status == IN_REVIEW and held.mute and "muted" in held.reason


def test_copyright_allow_publishes_and_keeps_the_claim() -> None:
    findings, mute = copyright_findings(Outcome("allow", CLAIM))
    routing = decide(findings, mute=mute, claim=CLAIM)
    assert (routing.status, routing.mute, routing.claim) == (PUBLISHED, False, CLAIM)
    assert copyright_findings(None) == ([], False)


# ----------------------------------------------------------------------- watched words


WORDS = parse_entries(["bad", "Crème brûlée:reject", "night club", "# a comment", ""])


@pytest.mark.parametrize(
    ("caption", "phrases"),
    [
        ("this is BAD!", ["bad"]),
        ("Bäd mood", ["bad"]),  # accents folded
        ("ｂａｄ", ["bad"]),  # full-width compatibility forms folded (NFKD)
        ("badge sinbad bad-", ["bad"]),  # "bad-" is the whole word bad; the others are not
        ("badge and sinbad", []),
        ("CREME BRULEE tonight", ["Crème brûlée"]),
        ("crème\u0301 brûlée", ["Crème brûlée"]),  # a stray combining accent
        ("the night  club", ["night club"]),
        ("the nightclub", []),  # one word is not the phrase
        ("a night at the club", []),
        ("", []),
    ],
)
def test_watched_words_are_whole_words_case_and_accent_insensitive(
    caption: str, phrases: list[str]
) -> None:
    assert [hit.phrase for hit in find_watched(caption, WORDS)] == phrases


def test_word_actions_route_to_review_or_reject() -> None:
    assert [(w.phrase, w.action) for w in WORDS] == [
        ("bad", "review"),
        ("Crème brûlée", "reject"),
        ("night club", "review"),
    ]
    review = decide(word_findings("so bad", WORDS))
    assert review.status == IN_REVIEW and '"bad"' in review.reason
    rejected = decide(word_findings("bad crème brûlée", WORDS))
    assert rejected.status == REJECTED and '"Crème brûlée"' in rejected.reason
    assert rejected.reason.endswith(APPEAL)
    assert decide(word_findings("good", WORDS)).status == PUBLISHED


def test_word_list_file_and_errors(tmp_path: Path) -> None:
    listing = tmp_path / "words.txt"
    listing.write_text("# watched\nscam:reject\nspoiler  # minor\n", encoding="utf-8")
    loaded = load_word_list(["extra"], listing)
    assert [(w.phrase, w.action) for w in loaded] == [
        ("extra", "review"),
        ("scam", "reject"),
        ("spoiler", "review"),
    ]
    assert fold("Straße ÉTÉ") == "strasse ete"
    with pytest.raises(WordListError, match="no letters"):
        parse_entries(["!!!:reject"])
    with pytest.raises(WordListError, match=r"missing\.txt"):
        load_word_list([], tmp_path / "missing.txt")


# ----------------------------------------------- stub models: real inference, known outputs


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stub-models")


@pytest.mark.parametrize(
    ("nsfw", "outcome"), [(0.3, PUBLISHED), (0.85, IN_REVIEW), (0.99, REJECTED)]
)
def test_a_stub_model_routes_a_real_clip(models: Path, nsfw: float, outcome: str) -> None:
    path = constant_model(models / f"constant-{nsfw}.onnx", nsfw)
    config = ModelConfig(path=str(path))
    analyzer = ModerationAnalyzer(config, FrameSampler(SamplingSpec()), inference="thread")
    for frame, t in decoded_frames(MEDIA / "cockatoo.mp4"):
        analyzer.on_video(frame, t)
    result = analyzer.result()
    assert result["frames"] == 16  # 14 at 1 fps and the keyframes at 3.8 s and 7.25 s
    assert result["categories"]["nsfw"]["max"] == pytest.approx(nsfw, abs=1e-3)
    assert decide(moderation_findings(result, SETTINGS)).status == outcome


# -------------------------------------------------- end to end through the in-process worker

# The logistic stub: nsfw = sigmoid((mean input - CENTER) / SPREAD). Flat frames' mean input
# is their BGR level minus the mean (104, 117, 123): black ≈ -115, mid-grey ≈ +13,
# white ≈ +140 → nsfw ≈ 0.07 (published), 0.80 (in review), 0.995 (rejected).
CENTER, SPREAD = -31.8, 32.5
COLOURS = {"black": "black", "grey": "0x808080", "white": "white"}
EXPECTED = {"black": PUBLISHED, "grey": IN_REVIEW, "white": REJECTED}


def test_the_logistic_stub_answers_what_it_is_built_to(models: Path) -> None:
    model = ModerationModel(
        ModelConfig(path=str(logistic_model(models / "l.onnx", CENTER, SPREAD)))
    )
    for level, mean_input in ((0, -114.667), (128, 13.333), (255, 140.333)):
        frame = np.full((1, 224, 224, 3), level, dtype=np.uint8)
        got = float(model.scores(frame)[0, 1])
        assert got == pytest.approx(expected_logistic(mean_input, CENTER, SPREAD), abs=1e-4)


def colour_clip(folder: Path, name: str) -> Path:
    path = folder / f"{name}.mp4"
    if not path.exists():
        ffmpeg(
            "-f", "lavfi", "-i", f"color=c={COLOURS[name]}:size=240x426:rate=15:duration=3",
            "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000:duration=3",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k", "-shortest", str(path),
        )  # fmt: skip
    return path


def upload(client: TestClient[Any], token: str, path: Path, caption: str) -> str:
    data = path.read_bytes()
    declared = client.post(
        "/v1/videos/upload-url",
        json={"file_size_bytes": len(data), "content_type": "video/mp4"},
        headers=auth(token),
    )
    assert declared.status_code in (200, 201), declared.text
    video_id = str(declared.json()["video_id"])
    put = client.put(f"/v1/videos/{video_id}/file", content=data, headers=auth(token))
    assert put.status_code == 200, put.text
    published = client.post(
        f"/v1/videos/{video_id}/publish", json={"caption": caption}, headers=auth(token)
    )
    assert published.status_code == 202, published.text
    return video_id


def settle(client: TestClient[Any], token: str, video_id: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/videos/{video_id}", headers=auth(token)).json()
        if body["status"] not in ("uploaded", "processing"):
            return body
        time.sleep(0.25)
    raise AssertionError(f"video {video_id} did not settle in {timeout} s")


def row(db: Engine, video_id: str) -> Any:
    with db.connect() as conn:
        return conn.execute(select(videos).where(videos.c.id == video_id)).one()


def safety_row(db: Engine, video_id: str) -> Any:
    with db.connect() as conn:
        return conn.execute(select(video_safety).where(video_safety.c.video_id == video_id)).one()


def feed_ids(client: TestClient[Any], token: str, kind: str) -> set[str]:
    response = client.get(f"/v1/feed?type={kind}&limit=50", headers=auth(token))
    assert response.status_code == 200, response.text
    return {video["id"] for video in response.json()["videos"]}


@pytest.fixture(scope="module")
def stub_app(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    model = logistic_model(models / "logistic.onnx", CENTER, SPREAD)
    data = tmp_path_factory.mktemp("stub-app")
    with api_client(
        data,
        moderation_model=str(model),
        watched_words=("forbidden phrase:reject", "spoiler"),
        feed_cache_seconds=0,
    ) as client:
        yield client


def test_uploads_are_routed_end_to_end(
    stub_app: TestClient[Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    client = stub_app
    folder = tmp_path_factory.mktemp("colour-clips")
    creator_id, creator = register(client)
    _, fan = register(client)
    assert client.post(f"/v1/users/{creator_id}/follow", headers=auth(fan)).status_code == 200
    ids = {name: upload(client, creator, colour_clip(folder, name), "a colour") for name in COLOURS}
    ids["caption"] = upload(client, creator, colour_clip(folder, "black"), "A forbídden Phrase!")
    ids["watched"] = upload(client, creator, colour_clip(folder, "black"), "no SPOILER here")
    bodies = {name: settle(client, creator, vid) for name, vid in ids.items()}
    expected = {**EXPECTED, "caption": REJECTED, "watched": IN_REVIEW}
    assert {name: body["status"] for name, body in bodies.items()} == expected

    settings = client.app.state.ctx.settings
    storage = client.app.state.ctx.storage
    db = sync_engine(settings)
    try:
        # Rejected: the owner reads why (category, automated, appealable).
        reason = bodies["white"]["status_reason"]
        assert "nsfw" in reason and "automated" in reason and "appeal" in reason, reason
        assert '"forbidden phrase"' in bodies["caption"]["status_reason"]
        assert '"spoiler"' in bodies["watched"]["status_reason"]
        # In review: stored (render id, outputs, worst frames) but served nowhere.
        held = ids["grey"]
        held_row = row(db, held)
        assert held_row.render_id and held_row.published_at is None
        assert bodies["grey"]["hls_url"] is None
        master = f"/media/{held}/{held_row.render_id}/master.m3u8"
        assert storage.stat(f"media/{held}/{held_row.render_id}/master.m3u8").size > 0
        assert client.get(master).status_code == 404
        assert client.get(f"/v1/videos/{held}", headers=auth(fan)).status_code == 404
        safety = safety_row(db, held)
        assert safety.decision == IN_REVIEW
        scores = json.loads(safety.scores)["categories"]["nsfw"]
        assert 0.7 < scores["sustained"] < 0.95
        frames = json.loads(safety.worst_frames)
        assert len(frames) == 3
        for frame in frames:
            assert frame["key"].startswith(f"safety/{held}/")
            jpeg = b"".join(storage.open_range(frame["key"]))
            assert jpeg[:3] == b"\xff\xd8\xff"
        assert json.loads(safety.pdq_hashes)
        # Feeds: only the published one.
        published = ids["black"]
        for kind in ("following", "for_you"):
            shown = feed_ids(client, fan, kind)
            assert published in shown, kind
            assert not shown & {ids[n] for n in ("grey", "white", "caption", "watched")}, kind
        published_row = row(db, published)
        assert (
            client.get(f"/media/{published}/{published_row.render_id}/master.m3u8").status_code
            == 200
        )
        # Only the published video counts on its author.
        assert client.get(f"/v1/users/{creator_id}").json()["video_count"] == 1
    finally:
        db.dispose()


# ------------------------------------------------- the blocklist, with the real model


@pytest.fixture(scope="module")
def real_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    data = tmp_path_factory.mktemp("real-app")
    with api_client(data, watched_words=("takedown:reject",), feed_cache_seconds=0) as client:
        yield client


@pytest.fixture(scope="module")
def reupload_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reupload")
    source = MEDIA / "cockatoo.mp4"
    original, evasion, other = folder / "original.mp4", folder / "evasion.mp4", folder / "o.mp4"
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    ffmpeg("-i", str(source), "-t", "6", *x264, "-crf", "20", str(original))
    ffmpeg(
        "-i", str(original), *x264,
        "-vf", "scale=iw/2:ih/2,noise=alls=13:allf=t,pad=iw:ih*2:0:(oh-ih)/2:black",
        "-b:v", "300k", str(evasion),
    )  # fmt: skip
    ffmpeg("-i", str(MEDIA / "video-h265.mp4"), "-t", "5", *x264, str(other))
    return {"original": original, "evasion": evasion, "other": other}


def test_a_blocklisted_video_is_caught_when_uploaded_again(
    real_app: TestClient[Any], reupload_clips: dict[str, Path]
) -> None:
    client = real_app
    _, creator = register(client)
    moderator_id, _ = register(client)
    settings = client.app.state.ctx.settings
    db = sync_engine(settings)
    try:
        # The real model publishes real footage; an innocent first upload is not blocked.
        first = settle(client, creator, upload(client, creator, reupload_clips["other"], "hi"))
        assert first["status"] == PUBLISHED, first["status_reason"]
        with db.begin() as conn, pytest.raises(BlocklistError, match="only rejected"):
            add_video_to_blocklist(conn, first["id"], moderator_id)
        # Taken down (here by a watched word), then blocklisted by a moderator.
        original = upload(client, creator, reupload_clips["original"], "takedown")
        assert settle(client, creator, original)["status"] == REJECTED
        with db.begin() as conn:
            added = add_video_to_blocklist(conn, original, moderator_id)
        assert added >= 4
        with db.begin() as conn:
            assert add_video_to_blocklist(conn, original, moderator_id) == 0  # idempotent
            rows = conn.execute(select(pdq_blocklist)).all()
        assert len(rows) == added
        assert {(r.source_video_id, r.added_by) for r in rows} == {(original, moderator_id)}
        # Re-uploaded half size, noisy, letterboxed, at a low bitrate, with a clean caption.
        again = settle(client, creator, upload(client, creator, reupload_clips["evasion"], "new"))
        assert again["status"] == REJECTED
        assert "removed from this service before" in again["status_reason"]
        matches = json.loads(safety_row(db, again["id"]).scores)["pdq_matches"]
        assert matches and all(m["distance"] <= settings.pdq_max_distance for m in matches)
        # Unrelated footage still goes through.
        other = settle(client, creator, upload(client, creator, reupload_clips["other"], "hi"))
        assert other["status"] == PUBLISHED
    finally:
        db.dispose()


def test_blocklisting_needs_a_rejected_video(real_app: TestClient[Any]) -> None:
    settings = real_app.app.state.ctx.settings
    db = sync_engine(settings)
    try:
        with db.begin() as conn, pytest.raises(BlocklistError, match="missing"):
            add_video_to_blocklist(conn, "v_nosuchvideo", "u_nobody")
    finally:
        db.dispose()


# ------------------------------------------------ copyright through the same job (api/copyright)

MUSIC = Path("/usr/share/games/etr/music")


def music_clip(folder: Path, track: str, start: float) -> Path:
    """Eight seconds of a black picture over a real music track (Debian's
    extremetuxracer-data, installed by scripts/bootstrap.sh), re-encoded to AAC."""
    path = folder / f"{Path(track).stem}-{start:g}.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=black:size=240x426:rate=15:duration=8",
        "-ss", f"{start}", "-t", "8", "-i", str(MUSIC / track),
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "-shortest", str(path),
    )  # fmt: skip
    return path


def test_copyright_policies_are_applied_by_the_job(
    stub_app: TestClient[Any], tmp_path: Path
) -> None:
    from api.core.tables import copyright_claims
    from classifiers.catalog import add_reference
    from classifiers.fingerprint import fingerprint, load_audio

    client = stub_app
    settings = client.app.state.ctx.settings
    storage = client.app.state.ctx.storage
    tracks = {"mute": "freezingpoint.ogg", "block": "calmrace-ks.ogg"}
    db = sync_engine(settings)
    try:
        with db.begin() as conn:
            for policy, track in tracks.items():
                audio = load_audio(MUSIC / track)
                add_reference(conn, track, f"{policy} owner", fingerprint(audio), policy)  # type: ignore[arg-type]
        _, creator = register(client)
        muted = upload(client, creator, music_clip(tmp_path, tracks["mute"], 20), "music")
        blocked = upload(client, creator, music_clip(tmp_path, tracks["block"], 10), "music")
        muted_body, blocked_body = settle(client, creator, muted), settle(client, creator, blocked)

        assert blocked_body["status"] == REJECTED
        assert '"calmrace-ks.ogg" (block owner)' in blocked_body["status_reason"]
        assert muted_body["status"] == PUBLISHED
        assert "without its audio" in muted_body["status_reason"]
        render = row(db, muted).render_id
        stored = {info.key.rsplit("/", 2)[-2] for info in storage.list(f"media/{muted}/{render}/")}
        assert "audio" not in stored and stored  # renditions only
        master = b"".join(storage.open_range(f"media/{muted}/{render}/master.m3u8")).decode()
        assert "TYPE=AUDIO" not in master and "mp4a" not in master
        assert all("mp4a" not in r["codecs"] for r in muted_body["renditions"])
        with db.connect() as conn:
            claims = {r.video_id: r for r in conn.execute(select(copyright_claims))}
        assert claims[muted].action == "mute" and claims[muted].owner == "mute owner"
        assert abs(claims[muted].offset_s - 20.0) < 0.2
        assert json.loads(safety_row(db, muted).scores)["muted"] is True
    finally:
        db.dispose()


# ------------------------------------------------------------------------------ settings


def test_safety_settings_from_the_environment(tmp_path: Path) -> None:
    from api.core.settings import SettingsError
    from api.safety.config import model_config
    from api.safety.startup import check_startup

    env = {
        "REELFORGE_DATA_DIR": str(tmp_path),
        "REELFORGE_MODERATION_MEAN": "0.485, 0.456,0.406",
        "REELFORGE_MODERATION_STD": "0.229,0.224,0.225",
        "REELFORGE_MODERATION_SCALE": "0.00392157",
        "REELFORGE_MODERATION_CHANNELS": "rgb",
        "REELFORGE_MODERATION_LAYOUT": "nchw",
        "REELFORGE_MODERATION_LABELS": "safe,porn,hentai",
        "REELFORGE_MODERATION_COUNTED": "porn,hentai",
        "REELFORGE_WATCHED_WORDS": "scam:reject,spoiler",
    }
    config = model_config(Settings.from_env(env))
    assert config.mean == (0.485, 0.456, 0.406) and config.std == (0.229, 0.224, 0.225)
    assert (config.channels, config.layout) == ("RGB", "NCHW")
    assert config.labels == ("safe", "porn", "hentai") and config.counted == ("porn", "hentai")
    with pytest.raises(SettingsError, match="REELFORGE_MODERATION_MEAN"):
        Settings.from_env({**env, "REELFORGE_MODERATION_MEAN": "1,2,x"})
    with pytest.raises(SettingsError, match="three"):
        model_config(Settings.from_env({**env, "REELFORGE_MODERATION_MEAN": "1,2"}))
    bad = Settings(data_dir=tmp_path, moderation_review_threshold=0.9).resolved()
    with pytest.raises(SettingsError, match="review ≤ reject"):
        check_startup(replace(bad, moderation_reject_threshold=0.8))
    with pytest.raises(SettingsError, match="REELFORGE_WATCHED_WORDS"):
        check_startup(replace(bad, watched_words=("???",)))
