"""Example texts shipped in assets/texts (name -> text)."""

from __future__ import annotations

from functools import cache

from explorer.paths import ASSETS_DIR

EXAMPLE_TITLES = {
    "fox": "The quick brown fox",
    "story": "A short story",
    "repetition": "Repeated names (induction heads)",
    "linear_algebra": "A paragraph on eigenvectors",
    "code": "Python code",
}
DEFAULT_EXAMPLE = "fox"


@cache
def example_texts() -> dict[str, str]:
    """Example name -> text, in display order."""
    texts = {}
    for name in EXAMPLE_TITLES:
        path = ASSETS_DIR / "texts" / f"{name}.txt"
        if path.is_file():
            texts[name] = path.read_text(encoding="utf-8").strip()
    return texts


def example_name_for(text: str) -> str | None:
    """The example whose text this is, if any."""
    for name, example in example_texts().items():
        if example == (text or "").strip():
            return name
    return None
