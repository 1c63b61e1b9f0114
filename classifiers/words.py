"""Watched words in captions (issue 5, "Keyframe moderation": "Captions are checked against a
configurable watched-word list (whole words, case and accent insensitive) with the same three
outcomes").

Text is folded before matching: Unicode NFKD (compatibility decomposition, so "ｆｕｌｌ-width"
and ligatures such as "ﬁ" become plain letters and "é" becomes "e" + a combining accent), the
combining marks dropped, then `casefold` ("Straße" → "strasse"). Words are runs of letters and
digits (`\\w`); an entry of several words matches those words in sequence, so "bad" matches
"Bad!" and "BÁD" but not "badge" or "sinbad".

An entry is `PHRASE` or `PHRASE:ACTION` with ACTION `review` (the default: hold the video for
a moderator) or `reject`; a file holds one entry a line, `#` starting a comment.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Action = Literal["review", "reject"]
ACTIONS: tuple[Action, ...] = ("review", "reject")
WORD = re.compile(r"\w+")


class WordListError(ValueError):
    """A watched-word entry is malformed; the message names it."""


def fold(text: str) -> str:
    """Case- and accent-insensitive form of `text` (NFKD, marks dropped, casefolded)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", stripped.casefold())


def words(text: str) -> list[str]:
    return WORD.findall(fold(text))


@dataclass(frozen=True, slots=True)
class WatchedWord:
    phrase: str
    words: tuple[str, ...]
    action: Action = "review"


def parse_entry(entry: str) -> WatchedWord | None:
    """`PHRASE[:ACTION]` → a watched word; None for a blank or comment line."""
    text = entry.split("#", 1)[0].strip()
    if not text:
        return None
    phrase, action = text, "review"
    head, sep, tail = text.rpartition(":")
    if sep and tail.strip().lower() in ACTIONS:
        phrase, action = head.strip(), tail.strip().lower()
    tokens = tuple(words(phrase))
    if not tokens:
        raise WordListError(f"watched word {entry!r} has no letters or digits")
    return WatchedWord(phrase, tokens, action)  # type: ignore[arg-type]


def parse_entries(entries: Iterable[str]) -> list[WatchedWord]:
    parsed = (parse_entry(entry) for entry in entries)
    return [word for word in parsed if word is not None]


def load_word_list(
    entries: Sequence[str] = (), path: str | Path | None = None
) -> list[WatchedWord]:
    """The configured entries plus those of the file at `path` (if any)."""
    lines = list(entries)
    if path:
        try:
            lines += Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise WordListError(f"watched-word file {path}: {exc.strerror or exc}") from None
    return parse_entries(lines)


@dataclass(frozen=True, slots=True)
class WordHit:
    phrase: str
    action: Action
    position: int  # index of the first matching word in the caption


def find_watched(caption: str, watched: Sequence[WatchedWord]) -> list[WordHit]:
    """Every watched entry the caption contains as whole words (first occurrence each)."""
    tokens = words(caption)
    hits = []
    for entry in watched:
        n = len(entry.words)
        for i in range(len(tokens) - n + 1):
            if tuple(tokens[i : i + n]) == entry.words:
                hits.append(WordHit(entry.phrase, entry.action, i))
                break
    return hits
