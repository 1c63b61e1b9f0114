"""The For You retrieval model as a versioned artifact (issue 17, "Learning loop"): written by
a training function, loaded, asked for a viewer's candidates; versions, atomic switch,
rollback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cli
from recsys import artifact
from recsys.data import Interactions, from_columns


def tastes(n_users: int = 120, n_items: int = 80, groups: int = 4, seed: int = 0) -> Interactions:
    """Each user interacts only with items of their group (item code % groups)."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        mine = np.flatnonzero(np.arange(n_items) % groups == u % groups)
        for step, item in enumerate(rng.choice(mine, size=12, replace=False)):
            users.append(f"u{u}")
            items.append(f"v{item}")
            times.append(float(u + step))
    return from_columns(users, items, times)


def group_of(item: str, groups: int = 4) -> int:
    return int(item[1:]) % groups


def test_written_model_gives_personal_candidates(tmp_path: Path) -> None:
    name = artifact.train_artifact(tastes(), tmp_path)
    assert name == "v000001" and artifact.current_version(tmp_path) == name
    model = artifact.load(tmp_path)
    assert model.version == name and model.meta["interactions"] == 120 * 12
    for viewer in ("u0", "u1", "u2", "u3"):
        picks = model.candidates(viewer, 10)
        assert len(picks) == 10
        # Their own group's items, not the others'.
        same = sum(group_of(item) == int(viewer[1:]) % 4 for item in picks)
        assert same >= 9, (viewer, picks)
    excluded = set(model.candidates("u0", 5))
    again = model.candidates("u0", 5, exclude=excluded)
    assert not excluded & set(again) and len(again) == 5


def test_unknown_viewer_gets_popular_items(tmp_path: Path) -> None:
    artifact.train_artifact(tastes(), tmp_path)
    model = artifact.load(tmp_path)
    assert not model.knows("stranger") and model.knows("u7")
    picks = model.candidates("stranger", 8)
    assert len(picks) == 8 and picks == [str(model.items[c]) for c in model.popular[:8]]


def test_versions_switch_atomically_and_roll_back(tmp_path: Path) -> None:
    first = artifact.train_artifact(tastes(seed=1), tmp_path, keep=2)
    second = artifact.train_artifact(tastes(seed=2), tmp_path, keep=2)
    assert (first, second) == ("v000001", "v000002")
    assert artifact.load(tmp_path).version == second
    # A half-written version (a staging folder) is not a version.
    (tmp_path / ".staging-x").mkdir()
    assert artifact.versions(tmp_path) == [first, second]
    assert artifact.rollback(tmp_path) == first
    assert artifact.load(tmp_path).version == first
    with pytest.raises(artifact.ArtifactError, match="no version before"):
        artifact.rollback(tmp_path)
    # The next version comes after the newest, and only the last `keep` stay.
    third = artifact.train_artifact(tastes(seed=3), tmp_path, keep=2)
    assert third == "v000003" and artifact.versions(tmp_path) == [second, third]
    assert artifact.load(tmp_path).version == third


def test_feed_train_cli_writes_a_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tastes()
    path = tmp_path / "log.csv"
    rows = zip(log.user.tolist(), log.item.tolist(), log.time.tolist(), strict=True)
    lines = ["user,item,timestamp", *(f"{log.users[u]},{log.items[i]},{t}" for u, i, t in rows)]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "models"
    assert cli.main(["feed-train", "--interactions", str(path), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"version": "v000001", "dir": str(out), "interactions": len(log)}
    assert artifact.load(out).knows("u3")


def test_missing_or_broken_versions_raise(tmp_path: Path) -> None:
    with pytest.raises(artifact.ArtifactError, match="no current version"):
        artifact.load(tmp_path)
    (tmp_path / "CURRENT").write_text("v000009\n")
    with pytest.raises(artifact.ArtifactError, match="not a version here"):
        artifact.load(tmp_path)
    (tmp_path / "v000009").mkdir()
    (tmp_path / "v000009" / "meta.json").write_text("{}")
    (tmp_path / "v000009" / "model.npz").write_bytes(b"not a zip")
    with pytest.raises(artifact.ArtifactError, match="unreadable"):
        artifact.load(tmp_path)
