"""Quantization on the embedded models' real weights: SmolLM2 is de-quantized from GGUF Q4_1 (4-bit codes in
blocks of 32 input columns, an fp16 scale and an fp16 minimum per block), so 4-bit asymmetric groups of 32 find
its own grid again and cost nothing; any other grid does cost. MiniLM's weights are fp32."""

import numpy as np
import pytest
import torch

from explorer.analysis.matrices import weight_matrices
from explorer.spectra.quantization import INT8, QuantScheme, quantize

EPS32 = np.finfo(np.float32).eps


def _some_matrices(loaded, kinds=("attn_q", "mlp_down", "mlp_up")):
    chosen = {}
    for mat in weight_matrices(loaded.model):
        if mat.kind in kinds and mat.layer in (0, 7) and (mat.kind, mat.layer) not in chosen:
            chosen[mat.kind, mat.layer] = mat.weight.detach()
    assert chosen
    return list(chosen.values())


def test_smollm2_q4_1_grid_comes_back_exactly(smollm2):
    assert smollm2.anatomy.quantization is not None and smollm2.anatomy.quantization.scheme == "Q4_1"
    for w in _some_matrices(smollm2):
        own = quantize(w, QuantScheme(4, 32, symmetric=False))
        error = (own.dequantize(torch.float64) - w.double()).abs()
        # The GGUF reader computed code * d + m in float32, one rounding: within eps32 |w| of the float64 grid.
        assert float((error - EPS32 * w.double().abs()).max()) <= 0, float(error.max())
        # Another grid (groups of 64) costs a real error: at least a hundred times more, on average.
        other = quantize(w, QuantScheme(4, 64, symmetric=False))
        other_error = (other.dequantize(torch.float64) - w.double()).abs()
        assert float(other_error.mean()) > 100 * float(error.mean()) + 1e-12


@pytest.mark.parametrize("scheme", [INT8, QuantScheme(4, 32), QuantScheme(4, 128, symmetric=False)], ids=str)
def test_minilm_error_within_half_a_step(minilm, scheme):
    for w in _some_matrices(minilm):
        q = quantize(w, scheme)
        error = (q.dequantize(torch.float64) - w.double()).abs().numpy()
        half = q.scale.expand_as(q.codes.double()).reshape(w.shape[0], -1)[:, : w.shape[1]].numpy() / 2
        # |error| <= scale / 2 (round to nearest, nothing clamped); float64 grid arithmetic adds a few eps64 |w|.
        assert np.all(error <= half + 8 * np.finfo(np.float64).eps * float(w.abs().max()))


def test_healing_smollm2_lowers_the_calibration_loss(smollm2):
    """A few Adam steps on plain-SVD factors of two MLP matrices at a quarter of their rank."""
    from explorer.analysis import compression as comp
    from explorer.analysis import healing
    from explorer.analysis.lowrank import factorize
    from explorer.analysis.matrices import weights_checksum

    fact = factorize(smollm2.model, "svd", ("mlp_down",), layers=[3, 10])
    ranks = {f.name: f.max_rank // 4 for f in fact.matrices}
    evalset = comp.make_eval_set(smollm2, comp.heldout_text(), 64)
    ref = comp.reference(smollm2, evalset)
    before = weights_checksum(smollm2.model)
    run, _ = healing.heal(
        smollm2, fact, ranks, comp.shipped_calibration_text(), evalset, ref, steps=6, lr=1e-4
    )
    assert run.calibration_after < run.calibration_before
    assert weights_checksum(smollm2.model) == before


def test_own_grid_is_recognised_only_where_it_is(smollm2, minilm):
    from explorer.analysis.quantize import is_own_grid, series_name

    q4_1 = QuantScheme(4, 32, symmetric=False)
    assert is_own_grid(smollm2, q4_1)
    assert not any(is_own_grid(smollm2, s) for s in (QuantScheme(4, 32), QuantScheme(4, 64, False), INT8))
    assert not is_own_grid(minilm, q4_1)  # fp32 weights: no grid of their own
    assert series_name(q4_1) == "4-bit + offset, groups of 32" and series_name(INT8) == "int8"
