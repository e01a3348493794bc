"""Texts too long for a link, kept on this server under their digest so that a link can name them.

The sidebar writes ``text=@<digest>`` (16 hex digits of SHA-256 over the text, ``choice.text_digest``) into the
link when the text is over its link limit, and keeps the text here: in memory (this process) and on disk under
``$XDG_CACHE_HOME/eigen-explorer/texts/<digest>.json`` (UTF-8 JSON ``{"format": 1, "text": ...}``, written
atomically, no pickle), so the link reopens it on this server after a restart too. Another server, or this one
after ``make clean-cache``, does not know the digest: the sidebar then says so and shows the default text.

The folder keeps at most ``MAX_FILES`` texts (each at most the sidebar's size limit, 20,000 characters by
default, so about 60 kB at worst); past that the least recently used go first.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

from explorer.models.choice import text_digest
from explorer.paths import cache_dir

FORMAT = 1
PREFIX = "@"  # a link's text that names a stored text: "@" and the digest
MAX_FILES = 2000
MAX_IN_MEMORY = 64
_DIGEST = re.compile(r"[0-9a-f]{16}")
_memory: OrderedDict[str, str] = OrderedDict()
_lock = threading.Lock()  # guards _memory only (sessions run in threads of one process)


def link_name(text: str) -> str:
    """The link's text that names ``text`` (``@`` and its digest)."""
    return PREFIX + text_digest(text)


def digest_of(link_text: str) -> str | None:
    """The digest a link's text names (``@0123456789abcdef``), or None when it is a plain text."""
    if link_text.startswith(PREFIX) and _DIGEST.fullmatch(link_text[len(PREFIX) :]):
        return link_text[len(PREFIX) :]
    return None


def _path(digest: str) -> Path:
    return cache_dir("texts") / f"{digest}.json"


def _remember(digest: str, text: str) -> None:
    with _lock:
        _memory[digest] = text
        _memory.move_to_end(digest)
        while len(_memory) > MAX_IN_MEMORY:
            _memory.popitem(last=False)


def store(text: str) -> str:
    """Keep ``text`` (memory and disk) and return its link name; cheap when it is kept already."""
    digest = text_digest(text)
    with _lock:
        known = _memory.get(digest) == text
    if not known:
        path = _path(digest)
        if not path.is_file():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps({"format": FORMAT, "text": text}, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
            _prune(path.parent)
        _remember(digest, text)
    return PREFIX + digest


def load(digest: str) -> str | None:
    """The text stored under ``digest`` (16 hex digits), or None: unknown here, unreadable, or not the text
    that digest names (a damaged file)."""
    if not _DIGEST.fullmatch(digest):
        return None
    with _lock:
        text = _memory.get(digest)
    if text is not None:
        return text
    path = _path(digest)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        text = record["text"] if record.get("format") == FORMAT else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(text, str) or text_digest(text) != digest:
        return None
    try:
        os.utime(path)  # recently used: kept longest
    except OSError:
        pass
    _remember(digest, text)
    return text


def _prune(folder: Path) -> None:
    """Remove the least recently used texts beyond MAX_FILES."""
    files = list(folder.glob("*.json"))
    if len(files) <= MAX_FILES:
        return

    def used(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    for path in sorted(files, key=used)[: len(files) - MAX_FILES]:
        try:
            path.unlink()
        except OSError:
            pass
