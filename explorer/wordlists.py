"""Word lists shipped in assets/wordlists: presets of word pairs and target words, the control vocabulary, and the
text formats people type them in (one pair a line) and links carry them in (``he/she,man/woman``)."""

from __future__ import annotations

import re
from functools import cache

from explorer.paths import ASSETS_DIR

WORDLIST_DIR = ASSETS_DIR / "wordlists"
PRESETS = {
    "gender": "Gender (he/she, man/woman, ...)",
    "number": "Number (cats/cat, dogs/dog, ...)",
    "sentiment": "Sentiment (good/bad, happy/sad, ...)",
}
DEFAULT_PRESET = "gender"
MAX_WORDS = 200
MAX_PAIRS = 60


@cache
def load_wordlist(name: str) -> tuple[str, ...]:
    """Lines of ``assets/wordlists/<name>.txt`` (blank lines and ``#`` comments skipped)."""
    path = WORDLIST_DIR / f"{name}.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def preset_pairs_text(preset: str) -> str:
    return "\n".join(load_wordlist(f"pairs_{preset}"))


def preset_targets_text(preset: str) -> str:
    return "\n".join(load_wordlist(f"targets_{preset}"))


def control_vocabulary() -> tuple[str, ...]:
    """The shipped vocabulary that random control pairs are drawn from (unique, in file order)."""
    return tuple(dict.fromkeys(load_wordlist("control_vocabulary")))


def parse_pairs(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Pairs from text, one a line: ``he she``, ``he, she``, ``he/she`` or ``he - she``.

    Returns (pairs without duplicates, the lines that are not a pair). Multi-word items need a comma or slash.
    """
    pairs: list[tuple[str, str]] = []
    bad: list[str] = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in re.split(r"\s*[,/;\t]\s*|\s+-\s+", line) if p.strip()]
        if len(parts) == 1:
            parts = line.split()
        if len(parts) != 2 or parts[0] == parts[1]:
            bad.append(line)
            continue
        pair = (parts[0], parts[1])
        if pair not in pairs:
            pairs.append(pair)
    return pairs, bad


def parse_words(text: str) -> list[str]:
    """Words from text separated by newlines or commas, without duplicates, in order."""
    items = [w.strip() for w in re.split(r"[\n,;]", text or "")]
    return list(dict.fromkeys(w for w in items if w and not w.startswith("#")))


def pairs_to_param(pairs: list[tuple[str, str]]) -> str:
    """``he/she,man/woman`` for a query param."""
    return ",".join(f"{a}/{b}" for a, b in pairs)


def pairs_from_param(value: str | None) -> str | None:
    """Inverse of pairs_to_param, as text for the pairs box (one pair a line); None when empty."""
    if not value:
        return None
    lines = [item.replace("/", " / ", 1) for item in str(value).split(",") if item.count("/") == 1]
    return "\n".join(lines) or None


def words_from_param(value: str | None) -> str | None:
    """``nurse,engineer`` from a query param as text for a words box (one a line); None when empty."""
    words = parse_words(str(value)) if value else []
    return "\n".join(words) or None
