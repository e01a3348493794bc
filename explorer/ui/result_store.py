"""Small finished measurements (lists of dataclasses) kept on disk, so a restarted server shows them at once: the
compression page's budget sweep and fewer-bits points, the original model's held-out quality.

A thin naming layer over the one disk store (``explorer.store``: one safetensors file per result, the values as
JSON, no pickle, atomic writes, under the one cache cap): a result lives at
``store/<what>/<what>-s<layout>-v<FORMAT_VERSION>-<hash of identity>.safetensors``, where the identity holds
everything it depends on (the weights' fingerprint, the texts, the settings, the device and dtype). A changed
weight, text or setting is another file; a file of another layout reads as missing and is measured again. Only
finished work is stored: a cancelled or failed job leaves nothing.
"""

from __future__ import annotations

from pathlib import Path

from explorer import store

FORMAT_VERSION = 2  # 1: JSON files under results/, before the one store


def result_path(what: str, identity: dict) -> Path:
    """Where the result ``what`` for ``identity`` (plain JSON values) lives."""
    return store.Entry(what, FORMAT_VERSION, identity).path


def save(path: Path, items: list) -> None:
    """Write ``items`` (dataclass instances) to ``path`` atomically (nothing when the store is off)."""
    store.write(path, list(items), kind=path.parent.name)


def load(path: Path, cls: type) -> list | None:
    """The list of ``cls`` stored at ``path``, or None (missing, unreadable, another layout)."""
    return store.read(path, list[cls])
