"""Curvature on the embedded models (float32, CPU): a finite loss, one layer's MLP lambda_max by Lanczos
against plain power iteration, and no mutation of the shared model. Short inputs keep this under a minute
per model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis import curvature as C
from explorer.analysis.matrices import MLP_KINDS, weight_matrices, weights_checksum
from explorer.spectra.curvature import power_iteration, rademacher, seeded_generator
from tests.conftest import SAMPLE_TEXT
from tests.tolerances import probabilistic_sum_rtol

pytestmark = pytest.mark.slow


def test_curvature_on_embedded_model(embedded_model):
    loaded = embedded_model
    before = weights_checksum(loaded.model)
    # Encoders: 16 tokens per sentence of the 32 shipped sentences; causal: the 15-token sample text.
    spec = C.make_loss(loaded, SAMPLE_TEXT, max_tokens=16)
    assert spec.kind == ("causal-lm" if loaded.causal else "contrastive")
    loss = C.loss_value(loaded.model, spec)
    assert np.isfinite(loss) and 0 < loss < 20

    layer = loaded.card.n_layers // 2
    block = C.select_block(loaded.model, f"layer:{layer}:mlp")
    # The block's matrices are the layer's MLP matrices as the weight pages classify them (another rule).
    mlp = {
        f"{m.module}.weight"
        for m in weight_matrices(loaded.model)
        if m.layer == layer and m.kind in MLP_KINDS
    }
    assert mlp == {
        n for n in block.names if n.endswith("weight") and dict(loaded.model.named_parameters())[n].ndim == 2
    }
    op = C.CurvatureOperator(loaded.model, spec, block)
    # Our operator's loss is float32 cross-entropy, loss_value's is float64 on the same float32 scores: the
    # log-sum-exp over up to 49k classes rounds at ~eps32 * sqrt(classes) relative, so 1e3 * eps32 of
    # max(1, loss) (SmolLM2: 1.3e-5 seen; MiniLM's loss on its own kind of pairs is only ~2e-3).
    assert op.loss == pytest.approx(loss, abs=1e3 * float(np.finfo(np.float32).eps) * max(1.0, loss))
    eigen = C.top_eigen(op, loaded.model, 1, tol=1e-4, max_matvec=60)
    power = power_iteration(op, op.n, max_matvec=80, tol=1e-5, options=op.probe_options())
    lam = eigen.eigenvalues[0]
    assert eigen.converged and lam > 0
    # Power iteration converges to the largest |lambda|; here that is lambda_max (a positive outlier).
    assert power.eigenvalue == pytest.approx(lam, rel=1e-2)
    assert eigen.groups == (f"layer {layer} mlp",)

    trace = C.block_trace(op, 4)
    assert np.isfinite(trace.trace) and trace.stderr > 0
    del op
    run = C.train_what_if(
        loaded.model, spec, C.TrainingSettings(f"layer:{layer}:mlp", steps=1, eta=0.1 / lam), max_matvec=8
    )
    assert np.all(np.isfinite(run.loss)) and run.loss[1] < run.loss[0]
    assert weights_checksum(loaded.model) == before


@pytest.mark.parametrize("kind", C.KINDS)
def test_forward_mode_products_equal_double_backward_on_embedded_model(embedded_model, kind):
    """One layer's MLP at 16 tokens, float32: the two product methods agree within twice the rounding of a sum of
    n = block size terms, normwise gamma_n ||A||_F ||v|| with gamma_n = 8 sqrt(n) eps32 (see
    tests/unit/test_curvature_products.py); ||A||_F taken as twice ||A v|| for the Rademacher v used (one
    Hutchinson probe of ||A||_F^2)."""
    loaded = embedded_model
    before = weights_checksum(loaded.model)
    spec = C.make_loss(loaded, SAMPLE_TEXT, max_tokens=16)
    block = C.select_block(loaded.model, f"layer:{loaded.card.n_layers // 2}:mlp")
    v = rademacher(block.n_params, dtype=torch.float32, device="cpu", generator=seeded_generator("cpu", 0))
    a = C.CurvatureOperator(loaded.model, spec, block, kind, "double-backward")(v).double()
    b = C.CurvatureOperator(loaded.model, spec, block, kind, "forward-mode")(v).double()
    frob = 2 * float(a.norm())
    tol = 2 * probabilistic_sum_rtol(block.n_params, dtype=np.float32) * frob * float(v.double().norm())
    assert float((a - b).norm()) <= tol
    assert weights_checksum(loaded.model) == before
