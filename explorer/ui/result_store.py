"""Measured results kept on disk as JSON (no pickle), so a restarted server shows them at once.

A result is a list of frozen dataclasses made of numbers, strings, booleans, None and nested dataclasses (the
compression page's budget sweep points and fewer-bits points). A file lives under
``$XDG_CACHE_HOME/eigen-explorer/results/``, named by what it holds and a hash of everything it depends on (the
weights' fingerprint, the texts, the settings, the device and dtype, FORMAT_VERSION): a changed weight, text or
setting is another file. Writes are atomic (a reader sees a whole file or none); an unreadable file, or one of
another layout, reads as missing and is measured again. Only finished work is stored: a cancelled or failed
job leaves nothing. ``make clean-cache`` removes the folder with the rest of the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import typing
from pathlib import Path

from explorer.paths import cache_dir

FORMAT_VERSION = 1


def result_path(what: str, identity: dict) -> Path:
    """``results/<what>-v<FORMAT_VERSION>-<hash of identity>.json``; ``identity`` holds plain JSON values."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir("results") / f"{what}-v{FORMAT_VERSION}-{digest}.json"


def save(path: Path, items: list) -> None:
    """Write ``items`` (dataclass instances) to ``path`` atomically."""
    payload = json.dumps([dataclasses.asdict(item) for item in items])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(payload, encoding="utf-8")
    os.replace(tmp, path)


def load(path: Path, cls: type) -> list | None:
    """The list of ``cls`` stored at ``path``, or None (missing, unreadable, another layout)."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
        return [_build(cls, record) for record in records]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _build(cls: type, record: dict):
    """``cls(**record)`` with nested dataclass fields built from their dicts; unknown keys are a layout error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if not set(record) <= names:
        raise KeyError(f"{cls.__name__} has no field(s) {sorted(set(record) - names)}")
    values = {}
    for name, value in record.items():
        kind = hints[name]
        values[name] = _build(kind, value) if dataclasses.is_dataclass(kind) else value
    return cls(**values)
