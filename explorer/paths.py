"""Where things live: the user cache dir (XDG_CACHE_HOME respected) and the repo's assets."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"


def cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/eigen-explorer/<parts>`` (default ``~/.cache``), created on demand."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "eigen-explorer" / Path(*parts) if parts else Path(base) / "eigen-explorer"
    path.mkdir(parents=True, exist_ok=True)
    return path
