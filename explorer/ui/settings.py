"""Server-wide settings from environment variables (set them before `eigen-explorer serve`).

EIGEN_EXPLORER_ALLOW_EXTERNAL=0  only the catalogue models; no local paths or hub ids (for shared servers).
EIGEN_EXPLORER_MAX_TEXT_CHARS    size limit on pasted text (default 60000 characters).
"""

from __future__ import annotations

import os


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


def allow_external_models() -> bool:
    return _flag("EIGEN_EXPLORER_ALLOW_EXTERNAL", True)


# Enough for a whole 8,192-token context (SmolLM2's) of English prose, about 4-5 characters per token: at 20,000
# the sidebar could not hold a text long enough for the longest length it offers.
DEFAULT_MAX_TEXT_CHARS = 60_000


def max_text_chars() -> int:
    try:
        return max(100, int(os.environ.get("EIGEN_EXPLORER_MAX_TEXT_CHARS", str(DEFAULT_MAX_TEXT_CHARS))))
    except ValueError:
        return DEFAULT_MAX_TEXT_CHARS
