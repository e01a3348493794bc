"""Texts too long for a link, kept on this server under their digest so that a link can name them.

The sidebar writes ``text=@<digest>`` (16 hex digits of SHA-256 over the text, ``choice.text_digest``) into the
link when the text is over its link limit, and keeps the text here: in memory (this process) and on disk as an
entry of the one store (``explorer.store``, kind ``text``: written atomically, no pickle, under the one cache cap,
least recently used first), so the link reopens it on this server after a restart too. Another server, or this
one after ``make clean-cache`` or once the cap has evicted it, does not know the digest: the sidebar then says so
and shows the default text.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict

from explorer import store as disk
from explorer.models.choice import text_digest

FORMAT = 2  # 1: JSON files of their own under texts/
PREFIX = "@"  # a link's text that names a stored text: "@" and the digest
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


def entry(digest: str) -> disk.Entry:
    """Where the text of ``digest`` is kept in the disk store."""
    return disk.Entry("text", FORMAT, digest)


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
        path = entry(digest).path
        if not path.is_file():
            disk.save(entry(digest), text)
        else:
            try:
                os.utime(path)  # in use again: the cap evicts least recently used first
            except OSError:
                pass
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
    text = disk.load(entry(digest), str)
    if not isinstance(text, str) or text_digest(text) != digest:
        return None
    _remember(digest, text)
    return text
