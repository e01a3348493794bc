"""Server-wide settings from environment variables (set them before `eigen-explorer serve`).

EIGEN_EXPLORER_ALLOW_EXTERNAL=0  only the catalogue models; no local paths or hub ids (for shared servers).
EIGEN_EXPLORER_MAX_TEXT_CHARS    size limit on pasted text (default 20000 characters).
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


def max_text_chars() -> int:
    try:
        return max(100, int(os.environ.get("EIGEN_EXPLORER_MAX_TEXT_CHARS", "20000")))
    except ValueError:
        return 20000
