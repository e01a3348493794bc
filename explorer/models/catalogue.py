"""The model catalogue: embedded models (from PyPI wheels), tiny random models, local paths, hub ids."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelSpec:
    """A catalogue entry. ``source`` is one of "embedded", "tiny"."""

    id: str
    label: str
    source: str
    description: str


DEFAULT_MODEL_ID = "smollm2-135m"

CATALOGUE: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in [
        ModelSpec(
            "smollm2-135m",
            "SmolLM2-135M (causal LM)",
            "embedded",
            "Llama-style decoder, 30 layers, 9 query heads sharing 3 key/value heads (GQA), d_model 576. "
            "Shipped as a 4-bit GGUF: weights are de-quantized from 4-bit, so they differ slightly from "
            "the original fp32 checkpoint.",
        ),
        ModelSpec(
            "minilm-l6",
            "MiniLM-L6 (encoder)",
            "embedded",
            "BERT sentence-embedding encoder, 6 layers, 12 heads, d_model 384. Bidirectional attention, "
            "no language-model head.",
        ),
        ModelSpec(
            "tiny-gpt2", "Tiny random GPT-2 (tests)", "tiny", "2 layers, 4 heads, d_model 64, random weights."
        ),
        ModelSpec(
            "tiny-bert", "Tiny random BERT (tests)", "tiny", "2 layers, 4 heads, d_model 64, random weights."
        ),
        ModelSpec(
            "tiny-llama",
            "Tiny random Llama (tests)",
            "tiny",
            "2 layers, 4 query heads sharing 2 key/value heads, d_model 64, random weights.",
        ),
    ]
}

# Models offered in the app's picker (the tiny ones are for tests but load instantly, so keep them last).
PICKER_IDS = ["smollm2-135m", "minilm-l6", "tiny-gpt2", "tiny-bert", "tiny-llama"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def classify(model_id: str) -> str:
    """ "embedded", "tiny", "local" (an existing directory) or "hub"; ValueError if none fits."""
    model_id = (model_id or "").strip()
    if not model_id:
        raise ValueError("No model given: pick one from the list or type a local directory.")
    if model_id in CATALOGUE:
        return CATALOGUE[model_id].source
    path = Path(model_id).expanduser()
    if path.is_dir():
        return "local"
    looks_like_path = model_id.startswith(("/", ".", "~")) or "\\" in model_id or model_id.count("/") > 1
    if looks_like_path or path.exists():
        raise ValueError(
            f"'{model_id}' is not a directory. Give the folder that holds config.json and the weights, "
            f"or one of the catalogue ids: {', '.join(PICKER_IDS)}."
        )
    if _HUB_ID.match(model_id) and "/" in model_id:
        return "hub"
    raise ValueError(
        f"Unknown model '{model_id}'. Use a catalogue id ({', '.join(PICKER_IDS)}), a local directory, "
        "or a Hugging Face hub id such as 'org/name' (needs internet)."
    )
