"""What the caches are keyed by: the model choice and the text choice, built in one place (the sidebar's Selection).

Both are frozen dataclasses of plain values, so Streamlit's caches hash them field by field, the bench and the
tests build the same keys without Streamlit, and a disk cache can name a text by its digest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields

from explorer.models.loading import LoadedModel, load_model


def text_digest(text: str) -> str:
    """16 hex digits of SHA-256 over the text's UTF-8 bytes: the text's name where it is too long for a link
    (``text=@<digest>``, explorer/ui/text_store.py)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ModelChoice:
    """Which model, and how it is loaded: the arguments of ``load_model``.

    ``device`` is "auto", "cpu", "cuda" or "mps"; ``dtype`` "float32", "float16" or "bfloat16".
    """

    model_id: str
    device: str = "auto"
    dtype: str = "float32"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    allow_external: bool = True

    def load(self) -> LoadedModel:
        # The fields are load_model's arguments, by name.
        return load_model(**{f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True)
class TextChoice:
    """The text every page analyses and the most tokens of it that are used (the rest is cut)."""

    text: str
    max_tokens: int

    @property
    def digest(self) -> str:
        """16 hex digits of SHA-256 over the text and the token limit: a name for disk caches."""
        return hashlib.sha256(f"{self.max_tokens}\n{self.text}".encode()).hexdigest()[:16]
