"""The logit lens of A against a variant B (explorer.analysis.lens_compare): exact zeros for B = A, the KL and
top-1 agreement against scipy's log-softmax of the same lens logits, and the last layer equal to the weights
page's output comparison."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.special import log_softmax

from explorer.analysis import variants as V
from explorer.analysis.lens_compare import compare_lens
from explorer.analysis.logit_lens import lens_logits, residual_stream
from explorer.models.capture import tokenize
from tests.conftest import SAMPLE_TEXT, get_model
from tests.tolerances import sum_rtol

MODEL = "tiny-llama"


def _ids(loaded):
    return np.asarray(tokenize(loaded, SAMPLE_TEXT)[0], dtype=np.int64)


def _kl_tolerance(log_a: np.ndarray, log_b: np.ndarray) -> np.ndarray:
    """Per row: each log-softmax of V float64 terms is off by at most sum_rtol(V) times its largest |log p|
    (the log-sum-exp), so KL = sum p_A (log p_A - log p_B) by sum_rtol(V) (2 max|log p| + sum p_A |log p_A -
    log p_B|)."""
    V_ = log_a.shape[-1]
    size = np.maximum(np.abs(log_a).max(-1), np.abs(log_b).max(-1))
    return sum_rtol(V_) * (2 * size + (np.exp(log_a) * np.abs(log_a - log_b)).sum(-1))


def test_b_equal_to_a_gives_exact_zeros():
    loaded = get_model(MODEL)
    same = dataclasses.replace(loaded, model=V.with_weights_replaced(loaded, {}))
    comparison = compare_lens(loaded, same, _ids(loaded))
    assert comparison.unchanged
    assert np.all(comparison.kl == 0.0) and np.all(comparison.top1_agreement == 1.0)


@pytest.mark.parametrize("key", ["int8", "int4-g32"])
def test_kl_and_agreement_against_scipy(key):
    loaded = get_model(MODEL)
    b_loaded = V.build_variant(loaded, key).loaded(loaded)
    ids = _ids(loaded)
    comparison = compare_lens(loaded, b_loaded, ids)
    res_a, res_b = residual_stream(loaded, ids)[0], residual_stream(b_loaded, ids)[0]
    for layer in range(res_a.shape[0]):
        a = lens_logits(loaded, res_a[layer]).double().numpy()
        b = lens_logits(b_loaded, res_b[layer]).double().numpy()
        log_a, log_b = log_softmax(a, axis=-1), log_softmax(b, axis=-1)
        kl = (np.exp(log_a) * (log_a - log_b)).sum(-1)
        assert np.all(np.abs(comparison.kl[layer] - np.maximum(kl, 0)) <= _kl_tolerance(log_a, log_b))
        assert np.array_equal(comparison.agree[layer], a.argmax(-1) == b.argmax(-1))
    assert np.all(comparison.kl >= 0) and not comparison.unchanged
    assert np.all((comparison.top1_agreement >= 0) & (comparison.top1_agreement <= 1))


def test_last_layer_is_the_output_comparison():
    """The last layer's lens is the model's output: over every position but the last, its mean KL and top-1
    agreement are the weights page's (variants.compare_outputs_of)."""
    loaded = get_model(MODEL)
    variant = V.build_variant(loaded, "int8")
    ids = _ids(loaded)
    comparison = compare_lens(loaded, variant.loaded(loaded), ids)
    out = V.compare_outputs_of(loaded, variant, SAMPLE_TEXT, None).tokens
    last = comparison.kl[-1, :-1]
    # Both are float64 KLs of the same float32 logits: the per-position bound, summed over the mean.
    a = lens_logits(loaded, residual_stream(loaded, ids)[0][-1]).double().numpy()[:-1]
    b_loaded = variant.loaded(loaded)
    b = lens_logits(b_loaded, residual_stream(b_loaded, ids)[0][-1]).double().numpy()[:-1]
    tol = (
        _kl_tolerance(log_softmax(a, axis=-1), log_softmax(b, axis=-1)).mean() + sum_rtol(last.size) * out.kl
    )
    assert abs(last.mean() - out.kl) <= tol
    assert comparison.agree[-1, :-1].mean() == out.top1_agreement
