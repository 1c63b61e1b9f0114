"""Cold start by caption (issue 17, "Cold start": "a video's caption can place it before anyone
watched it (a small text model shipped inside a PyPI wheel, loaded from site-packages, never
from a hub at run time)"); `recsys.captions`, `RetrievalModel.cold_scores`.

Viewers have a hidden taste (one of `TOPICS`); the videos they watched are captioned with words
of their topic's first list, and the brand-new videos, which nobody watched, with words of its
second list only (no word in common with any caption the loop trained on): only a text model
that already knows what the words mean can tell which new videos are on a viewer's taste.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from recsys import artifact, captions, loop
from recsys.signals import EventRows, weighted_log

# topic: (words of the captions the loop trains on, words of the new videos' captions)
TOPICS = {
    "cooking": (
        "recipe pasta kitchen chef baking dinner soup bread",
        "cake oven grill salad noodles cookies breakfast sauce",
    ),
    "football": (
        "football goal striker match league stadium penalty referee",
        "soccer midfielder championship tackle goalkeeper dribbling fans kickoff",
    ),
    "music": (
        "guitar concert song drums singer piano band album",
        "violin melody rapper orchestra lyrics chorus jazz drummer",
    ),
    "pets": (
        "cat puppy dog kitten hamster parrot vet leash",
        "kitty bunny puppies goldfish pet dogs adoption rabbit",
    ),
}
FILLER = [
    *("today", "my", "new", "video", "watch", "this", "so", "good"),
    *("best", "day", "wait", "for", "it", "part", "two", "ever"),
]
KNOWN_PER_TOPIC, NEW_PER_TOPIC, VIEWERS_PER_TOPIC, WATCHED = 30, 12, 20, 16
UNTOPICAL = 0.2  # the share of known videos whose caption is filler only
NOISE = 0.1  # the chance a viewer completes an off-taste video, or skips one of theirs


def caption(words: list[str], rng: np.random.Generator) -> str:
    """One topic word and a hashtag (maybe of the same word) among four filler words."""
    topical = rng.choice(words, size=2).tolist()
    filler = rng.choice(FILLER, size=4, replace=False).tolist()
    return f"{filler[0]} {filler[1]} {topical[0]} {filler[2]} {filler[3]} #{topical[1]}"


def world(seed: int = 17) -> tuple[EventRows, dict[str, str], dict[str, int], dict[str, int]]:
    """The event rows, the known videos' captions, each viewer's and each video's topic."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    captions_of: dict[str, str] = {}
    topic_of: dict[str, int] = {}
    for t, name in enumerate(names):
        for n in range(KNOWN_PER_TOPIC):
            video = f"v{t}x{n}"
            if rng.random() < UNTOPICAL:
                captions_of[video] = " ".join(rng.choice(FILLER, size=5, replace=False))
            else:
                captions_of[video] = caption(TOPICS[name][0].split(), rng)
            topic_of[video] = t
    videos = sorted(captions_of)
    rows, taste = EventRows(), {}
    at = 1_000_000
    for v in range(VIEWERS_PER_TOPIC * len(names)):
        viewer, mine = f"u{v}", v % len(names)
        taste[viewer] = mine
        own = [x for x in videos if topic_of[x] == mine]
        seen = set(rng.choice(own, size=WATCHED // 2, replace=False).tolist())
        seen |= set(rng.choice(videos, size=WATCHED // 2, replace=False).tolist())
        for video in sorted(seen):
            at += 1_000
            rows.add(viewer, video, "play", 0, at)
            if (topic_of[video] == mine) != (rng.random() < NOISE):
                rows.add(viewer, video, "completed", 0, at)
            else:
                rows.add(viewer, video, "watch_ms", 700, at)
                rows.add(viewer, video, "skip", 0, at)
    return rows, captions_of, taste, topic_of


def new_videos(seed: int = 18) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    texts, topics = [], []
    for t, name in enumerate(TOPICS):
        for _ in range(NEW_PER_TOPIC):
            texts.append(caption(TOPICS[name][1].split(), rng))
            topics.append(t)
    return texts, topics


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(an on-taste video scores above an off-taste one), ties counting half."""
    pos, neg = scores[positive], scores[~positive]
    above = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(above + 0.5 * ties)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    rows, captions_of, taste, _ = world()
    root = tmp_path_factory.mktemp("models")
    done = loop.retrain(weighted_log(rows), root, source={"n": 1}, captions=captions_of)
    assert done.new
    return root, taste


def test_a_new_videos_caption_places_it_on_the_viewers_taste(
    trained: tuple[Path, dict[str, int]],
) -> None:
    root, taste = trained
    model = artifact.load(root)
    meta = model.meta["captions"]
    assert meta["model"] == captions.MODEL and meta["items"] == KNOWN_PER_TOPIC * len(TOPICS)
    texts, topics = new_videos()
    assert all(model.codes(texts) == -1)  # nobody watched them: item_scores has nothing
    aucs = []
    for viewer, mine in taste.items():
        scores = model.cold_scores(viewer, texts)
        assert scores is not None and scores.shape == (len(texts),)
        aucs.append(auc(scores, np.asarray(topics) == mine))
    # No word of a new caption was in a training caption: chance is 0.5.
    assert np.mean(aucs) >= 0.8, np.mean(aucs)
    assert np.mean(np.asarray(aucs) > 0.6) >= 0.9, aucs
    assert model.cold_scores("nobody", texts) is None
    # Known and new videos in one list (a snapshot): known ones by their factors, new by caption.
    _, captions_of, _, _ = world()
    known = [str(i) for i in model.items.tolist()[:10]]
    mixed = model.item_scores_with_captions(
        "u0", model.codes([*known, *texts]), [captions_of[k] for k in known] + texts
    )
    exact, cold = model.item_scores("u0", model.codes(known)), model.cold_scores("u0", texts)
    assert mixed is not None and exact is not None and cold is not None
    assert np.array_equal(mixed[:10], exact) and np.allclose(mixed[10:], cold)


def test_the_same_loop_with_a_text_model_that_knows_no_words_is_at_chance(
    trained: tuple[Path, dict[str, int]],
) -> None:
    """The margin above comes from the shipped model: hashed words (the fallback we would
    train ourselves) fitted the same way on the same factors cannot place unseen words."""
    root, taste = trained
    model = artifact.load(root)
    _, captions_of, _, _ = world()
    known = [str(i) for i in model.items.tolist()]

    def hashed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 256), np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace("#", " ").split():
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    fitted = captions.fit_map(hashed([captions_of.get(i, "") for i in known]), model.item_factors)
    assert fitted is not None
    texts, topics = new_videos()
    factors = captions.project(fitted.weights, fitted.prior, hashed(texts))
    aucs = [
        auc(factors @ model.user_factors[model.user_index[viewer]], np.asarray(topics) == mine)
        for viewer, mine in taste.items()
    ]
    assert abs(np.mean(aucs) - 0.5) < 0.12, np.mean(aucs)


def test_cold_scores_sit_on_the_item_scores_scale(trained: tuple[Path, dict[str, int]]) -> None:
    """A known video's caption predicts a score near the one its factors give (the ridge
    estimate, shrunk toward the average video's)."""
    root, taste = trained
    model = artifact.load(root)
    _, captions_of, _, topic_of = world()
    known = [str(i) for i in model.items.tolist()]
    texts = [captions_of[i] for i in known]
    on, off = [], []
    for viewer, mine in list(taste.items())[:20]:
        exact = model.item_scores(viewer, model.codes(known))
        cold = model.cold_scores(viewer, texts)
        assert exact is not None and cold is not None
        mask = np.asarray([topic_of[i] == mine for i in known])
        on.append(cold[mask].mean() / exact[mask].mean())
        off.append(abs(cold[~mask].mean()) <= abs(exact[mask].mean()))
    assert 0.3 <= np.mean(on) <= 1.2, on
    assert all(off)


def test_a_version_without_captions_has_no_cold_scores(tmp_path: Path) -> None:
    rows, _, taste, _ = world()
    loop.retrain(weighted_log(rows), tmp_path, source={"n": 1})
    model = artifact.load(tmp_path)
    assert "captions" not in model.meta
    assert model.cold_scores(next(iter(taste)), ["soccer"]) is None
    mixed = model.item_scores_with_captions("u0", np.asarray([0, -1]), ["", "soccer"])
    assert mixed is not None and np.isnan(mixed[1]) and not np.isnan(mixed[0])
    with pytest.raises(artifact.ArtifactError):
        model.caption_factors(["soccer"])


OFFLINE = """
import socket, sys, sysconfig
def refuse(*args, **kwargs):
    raise OSError("network is off in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import numpy as np
from recsys import captions
weights, tokenizer = captions.model_files()
encoder = captions.encoder()
v = encoder.encode(["funny cat video", "kitten playing", "stock market crash", ""])
print(weights, tokenizer, sep="\\n")
print(float(v[0] @ v[1]), float(v[0] @ v[2]), float(np.abs(v[3]).sum()))
print("wordllama" in sys.modules, "huggingface_hub" in sys.modules)
"""


def test_the_text_model_loads_from_site_packages_without_a_hub(tmp_path: Path) -> None:
    """A fresh process with no hub settings, an empty home (no cache) and sockets refused (and,
    where this runs as root with `unshare`, no network namespace at all)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    command = [sys.executable, "-c", OFFLINE]
    if os.geteuid() == 0 and shutil.which("unshare"):
        command = ["unshare", "-n", *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    weights, tokenizer, sims, modules = done.stdout.strip().splitlines()
    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    for path in (Path(weights), Path(tokenizer)):
        assert any(path.resolve().is_relative_to(s) for s in site), path
        assert path.stat().st_size > 1_000_000
    near, far, empty = map(float, sims.split())
    assert near > far + 0.2 and empty == 0.0, sims
    assert modules == "False False"  # neither the wheel's hub-aware loader nor a hub client
    assert not any(tmp_path.rglob("*.safetensors"))  # nothing was fetched into a cache


def test_the_encoders_memory_gives_the_same_vectors() -> None:
    encoder = captions.encoder()
    texts = ["my cat at the vet", "football #goal", "", "my cat at the vet"]
    first = encoder.encode(texts, remember=False)
    again, remembered = encoder.encode(texts), encoder.encode(texts)
    alone = np.vstack([encoder.encode([text]) for text in texts])
    assert np.array_equal(first, again) and np.array_equal(again, remembered)
    assert np.allclose(alone, first, atol=1e-6)
    assert np.allclose(np.linalg.norm(first, axis=1), [1, 1, 0, 1], atol=1e-5)
