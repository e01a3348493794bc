"""Exported decisions on the embedded models: the export loads back into the model the page measured (same
perplexity and KL on SmolLM2, same embeddings on MiniLM), and holds the bytes the page counts."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from explorer.analysis import compression as comp
from explorer.analysis import export as ex
from explorer.analysis import quantize as qz
from explorer.analysis.lowrank import factorize
from explorer.analysis.matrices import weights_checksum
from explorer.spectra.quantization import QuantScheme
from tests.conftest import EMBEDDED_IDS
from tests.tolerances import SAFETY, eps

KINDS = ("mlp_up",)
TOKENS = 64


def _setup(load, model_id):
    loaded = load(model_id)
    evalset = comp.make_eval_set(loaded, comp.heldout_text(), TOKENS)
    return loaded, evalset, comp.reference(loaded, evalset)


def _numbers(q: comp.Quality) -> tuple:
    return (q.perplexity, q.kl) if q.causal else (q.embedding_cosine, q.similarity_spearman)


def _outputs(loaded, model, evalset) -> torch.Tensor:
    with torch.no_grad():
        out = model(input_ids=torch.tensor([evalset.ids], device=loaded.device))
    return (out.logits if loaded.causal else out.last_hidden_state).double().cpu()


@pytest.mark.parametrize("model_id", EMBEDDED_IDS)
def test_lowrank_export_is_the_measured_model(load, model_id, tmp_path):
    loaded, evalset, ref = _setup(load, model_id)
    before = weights_checksum(loaded.model)
    fact = factorize(loaded.model, "svd", KINDS, None)
    ranks = comp.choose_ranks(fact, comp.RankSetting(mode="share", share=0.5))
    outcome = comp.evaluate_ranks(loaded, fact, ranks, evalset, ref)  # the page's measurement
    quality = ex.quality_record(ref.quality, outcome.after, evalset, comp.heldout_text(), "held-out passage")
    path = tmp_path / "decision.zip"
    path.write_bytes(ex.export_zip(ex.lowrank(loaded, fact, ranks), base=loaded, setting={}, quality=quality))
    back = ex.read_export(path)

    by_name = {f.name: f for f in fact.matrices}
    for name, entry in back.compression.entries.items():
        A, B = by_name[name].factors(ranks[name])
        assert torch.equal(entry.A, A) and torch.equal(entry.B, B)
    # Rebuilt in the page's form: the same numbers, bit for bit.
    rebuilt = comp.evaluate(loaded, ex.factored_copy(loaded, back.compression), evalset, ref)
    assert _numbers(rebuilt) == _numbers(outcome.after)
    headline = "perplexity" if loaded.causal else "embedding_cosine"
    assert back.manifest["quality"]["metrics"][headline]["compressed"] == outcome.after.headline

    # Bytes: float32 factors, 4 k(m + n) bytes; the page counts them at fp16 inside its whole-model total.
    entries = sum(r.rank * (r.shape[0] + r.shape[1]) for r in outcome.rows)
    storage = back.manifest["storage"]
    assert storage["tensor_bytes"] == 4 * entries
    untouched = outcome.params_model_before - sum(r.shape[0] * r.shape[1] for r in outcome.rows)
    assert storage["page_bytes"] == comp.model_bytes(outcome.params_model_after) - 2 * untouched
    assert (
        0 < path.stat().st_size - storage["tensor_bytes"] < 64 * 1024
    )  # zip + safetensors headers + manifest

    # The app's dense form (A B as weights) is the same function up to float32 rounding: measured against the
    # float64 evaluation of the compressed model, it is at most SAFETY times further off than the page's form.
    dense = ex.load_compressed(path, base=loaded)
    twin = dataclasses.replace(loaded, model=copy.deepcopy(loaded.model).double(), dtype="float64")
    truth = _outputs(twin, ex.factored_copy(twin, back.compression), evalset)
    del twin
    measured_err = float(
        (_outputs(loaded, ex.factored_copy(loaded, back.compression), evalset) - truth).abs().max()
    )
    dense_err = float((_outputs(dense, dense.model, evalset) - truth).abs().max())
    assert dense_err <= SAFETY * max(measured_err, eps(np.float32) * float(truth.abs().max()))
    assert weights_checksum(loaded.model) == before


@pytest.mark.parametrize("model_id", EMBEDDED_IDS)
def test_quantized_export_loads_back_through_the_loader(load, model_id, tmp_path):
    loaded, evalset, ref = _setup(load, model_id)
    scheme = QuantScheme(4, 32, symmetric=False)
    outcome = qz.quantize_weights(loaded, KINDS, scheme, evalset, ref)
    folder = ex.export_folder(tmp_path / "decision", ex.quantized(loaded, KINDS, scheme), base=loaded,
                              setting={"note": "fewer bits"}, quality={})  # fmt: skip
    manifest = json.loads((folder / ex.MANIFEST).read_text())
    assert manifest["storage"]["tensor_bytes"] == outcome.bytes_chosen  # codes + fp16 scales and offsets
    assert manifest["setting"]["bits"] == 4 and manifest["setting"]["group_size"] == 32
    assert manifest["setting"]["offset"] is True and manifest["setting"]["groups"] == list(KINDS)
    # Loaded as the app loads it: the base from the catalogue, checked by fingerprint, then the dense copy.
    # nn.Linear computes F.linear(x, W, b) as the page's DenseLinear does, with the very same W: equal numbers.
    opened = ex.load_compressed(folder, device="cpu")
    assert _numbers(comp.evaluate(opened, opened.model, evalset, ref)) == _numbers(outcome.after)
