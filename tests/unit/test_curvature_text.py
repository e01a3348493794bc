"""The Curvature page's sentences (explorer.ui.curvature_text) against the numbers behind them, each worked out
here from hand-made results: quantiles of a known quadrature, the Gaussian mixture's mass below 0 from the normal
CDF, and the quadratic model's factor (1 - eta lambda)^2."""

import numpy as np
import pytest
from scipy.stats import norm

from explorer.analysis.curvature import CurvatureSummary, TopEigen, TrainingRun
from explorer.spectra.curvature import SpectralDensity, TraceEstimate
from explorer.ui import curvature_text as T

N_PARAMS = 10_000
SIGMA = 0.05


def _density(nodes, weights) -> SpectralDensity:
    """One probe's quadrature broadened by Gaussians of SIGMA onto a fine grid, integrating to 1 (as SLQ draws)."""
    nodes, weights = np.array([nodes], dtype=float), np.array([weights], dtype=float)
    grid = np.linspace(nodes.min() - 5 * SIGMA, nodes.max() + 5 * SIGMA, 40001)
    curve = norm.pdf(grid[:, None], loc=nodes[0], scale=SIGMA) @ weights[0]
    return SpectralDensity(nodes, weights, grid, curve / np.trapezoid(curve, grid), 1.0, SIGMA, np.zeros(3),
                           np.zeros(3))  # fmt: skip


def _summary(nodes, weights, kind="hessian", trace=120.0, method="hutchinson") -> CurvatureSummary:
    lam = np.array([50.0, 7.0, 2.5])
    residuals = np.array([1e-3, 4e-3, 2e-2])
    eigen = TopEigen(lam, residuals, np.tile(lam, (5, 1)), np.tile(residuals, (5, 1)), 17, True, ("g",),
                     np.ones((1, 3)))  # fmt: skip
    estimate = TraceEstimate(trace, 4.0, np.full(16, trace), 16, method)
    return CurvatureSummary(
        2.5, 12, "layer:1:mlp", N_PARAMS, kind, eigen, estimate, _density(nodes, weights), ""
    )


# Nodes at and above 0 only: no negative eigenvalue, but the broadening draws some of the curve below 0.
NONNEG = ([0.0, 0.02, 0.1, 0.2, 50.0], [0.2, 0.2, 0.3, 0.25, 0.05])
# One node well below -sigma (-1), one just below 0 (-0.01, inside the resolution).
WITH_NEG = ([-1.0, -0.01, 0.1, 0.2, 50.0], [0.1, 0.2, 0.4, 0.25, 0.05])


def _below_zero(nodes, weights) -> float:
    """The Gaussian mixture's mass below 0: sum_j w_j Phi(-theta_j / sigma) (its far tails, beyond the 5 sigma
    grid, are under 3e-7 of a node's weight)."""
    return float(np.dot(weights, norm.cdf(-np.asarray(nodes) / SIGMA)))


def test_lambda_sentence_says_the_step_limit():
    text = T.lambda_sentence(_summary(*NONNEG))
    assert "λ_max = 50**" in text and f"2/λ_max = {2 / 50.0:.4g}" in text and "overshoot" in text


def test_trace_sentence_gives_the_mean_and_its_share_of_lambda_max():
    text = T.trace_sentence(_summary(*NONNEG))
    mean = 120.0 / N_PARAMS
    assert f"all {N_PARAMS:,} directions" in text and f"{mean:.3g} per direction" in text
    assert f"{mean / 50.0:.2g} of λ_max" in text and "nearly flat" in text  # 2.4e-4 of lambda_max < 1 %
    spread = T.trace_sentence(_summary(*NONNEG, trace=0.2 * 50.0 * N_PARAMS))
    assert "spread over many directions" in spread
    assert "negative" in T.trace_sentence(_summary(*NONNEG, trace=-3.0))


def test_negative_share_says_what_it_counts_and_what_the_broadening_draws():
    text = T.negative_sentence(_summary(*NONNEG))
    # No node below -sigma: 0 % of the weight; the curve's area below 0 from the normal CDF (0.104 here,
    # the node at 0 gives half its weight, 0.02 = 0.4 sigma gives 34 % of its own).
    share = _below_zero(*NONNEG)
    assert text.startswith("**0% negative**") and "Ritz values of the density below −σ" in text
    assert f"drawn curve has {share:.1%} of its area below 0" in text and "Gaussian broadening" in text
    with_neg = T.negative_sentence(_summary(*WITH_NEG))
    nodes, weights = map(np.array, WITH_NEG)
    resolved = weights[nodes < -SIGMA].sum()  # 0.1: only -1 is below -sigma
    assert with_neg.startswith(f"**{resolved:.1%} negative**") and "saddle" in with_neg
    assert f"drawn curve has {_below_zero(*WITH_NEG):.1%} of its area below 0" in with_neg
    # -0.01 is below 0 but within sigma of it: its 0.2 of the weight is told apart, not counted as negative.
    assert "Ritz values just below 0 (between −σ and 0) hold 20.0% of the weight" in with_neg
    assert "just below 0" not in text  # NONNEG: no node below 0 at all
    assert "positive semi-definite" in T.negative_sentence(_summary(*NONNEG, kind="gauss-newton"))
    # A share that would print as 0.0 % is not called zero: 1e-4 of the weight at -1 (far below -sigma).
    tiny = T.negative_sentence(_summary([-1.0, 0.1, 50.0], [1e-4, 0.9499, 0.05]))
    assert tiny.startswith("**<0.1% negative**") and "saddle" in tiny


def test_density_sentence_and_caption_read_the_quadrature():
    summary = _summary(*WITH_NEG)
    # Weights in node order: cumulative 0.1, 0.3, 0.7, 0.95, 1: the 5 % quantile is -1, the 95 % one 0.2.
    text = T.density_sentence(summary)
    assert "between -1 and 0.2 (the bulk)" in text and "3 of the top 3 eigenvalues" in text  # all above 0.2
    caption = T.density_caption(summary)
    assert (
        "2 of 5 Ritz values are below 0" in caption
        and "10.0% of the weight at Ritz values below −σ" in caption
    )
    assert f"area below 0, {_below_zero(*WITH_NEG):.1%}" in caption and f"σ = {SIGMA:.2g}" in caption


def test_block_sentences_and_details_cover_every_number():
    summary = _summary(*WITH_NEG, method="hutch++")
    sentences = T.block_sentences(summary)
    assert [s.split("**")[1][:5] for s in sentences] == ["λ_max", "Trace", "10.0%", "The d"]
    details = " ".join(T.block_details(summary))
    for needle in ("nats per (parameter unit)²", "17 Hessian-vector products", "largest here 0.02", "Hutch++",
                   "16 probes", "Stochastic Lanczos quadrature", "5 Ritz values",
                   "2 of the 5 nodes are below 0"):  # fmt: skip
        assert needle in details, needle


def test_eta_just_past_is_the_factor_over_lambda_max_to_three_digits():
    assert T.eta_just_past(4.433751750861608) == 0.496  # 2.2 / 4.4338 = 0.49619...
    assert T.eta_just_past(2.0, factor=3.0) == 1.5
    with pytest.raises(ValueError):
        T.eta_just_past(0.0)


def _run(loss, lam, eta, optimizer="gd", converged=None):
    lam = np.asarray(lam, dtype=float)
    converged = np.ones(lam.size, dtype=bool) if converged is None else np.asarray(converged)
    return TrainingRun(np.asarray(loss, dtype=float), lam, eta, 2 / eta, optimizer, "layer:1:mlp", (),
                       np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.full(lam.size, 1e-3),
                       converged)  # fmt: skip


# (loss, lambda_max) at eta = 0.2 (2 / eta = 10) and the words each outcome must be told with.
RUNS = {
    "converged below the limit": ([3.0, 2.0, 1.5, 1.2], [5.0, 5.5, 6.0, 6.2]),
    "diverged": ([3.0, 4.0, 6.0, 9.0], [11.0, 11.0, 11.0, 11.0]),
    "a catapult": ([3.0, 5.0, 8.0, 4.0, 2.0, 1.5], [12.0, 12.0, 9.0, 6.0, 5.0, 5.0]),
    "edge of stability": (
        [3.0, 2.8, 2.6, 2.65, 2.4, 2.45, 2.2, 2.1],
        [6.0, 8.0, 9.5, 10.3, 9.7, 10.2, 9.8, 10.1],
    ),
    "the sharpness fell, without a spike": ([3.32, 2.4, 1.98, 1.65, 0.68], [4.43, 2.17, 5.11, 2.3, 1.54]),
    "not settled in 2 steps": ([3.0, 2.9, 2.8], [11.0, 11.5, 12.0]),
}


@pytest.mark.parametrize("label", list(RUNS))
def test_training_sentences_state_the_prediction_and_what_happened(label):
    loss, lam = RUNS[label]
    eta = 0.496 if label.startswith("the sharpness") else 0.2
    first, second = T.training_sentences(_run(loss, lam, eta))
    ratio = eta * lam[0]
    if ratio > 2:
        assert "predicts divergence" in first and f"= {ratio:.3g} > 2" in first
        factor = (1 - ratio) ** 2
        assert f"|1 − ηλ_max|² = {factor:.3g}" in first and f"×{factor ** (len(loss) - 1):.3g} after" in first
    else:
        assert "predicts convergence" in first and f"= {ratio:.3g} < 2" in first
    assert second.startswith(f"**What happened: {label}.**")
    assert f"{loss[0]:.4g}" in second and f"{2 / eta:.4g}" in second
    if label != "edge of stability":
        assert f"{loss[-1]:.4g}" in second
    if label == "the sharpness fell, without a spike":  # lambda_max went past 2/eta = 4.032 again at step 2
        assert f"to {lam[2]:.4g} at step 2" in second and f"from {lam[0]:.4g} to {lam[-1]:.4g}" in second
    if label == "a catapult":
        assert "to 8 at step 2" in second and "Lewkowycz" in second
    if label == "edge of stability":
        assert "between 9.7 and 10.3" in second and "2 of 7 steps went up" in second and "Cohen" in second


def test_training_sentences_for_adam_and_for_unconverged_lambda():
    adam = T.training_sentences(_run([3.0, 2.0], [5.0, 4.0], 1e-3, optimizer="adam"))
    assert "reference only" in adam[0] and "from 3 to 2" in adam[1] and "from 5 to 4" in adam[1]
    lost = T.training_sentences(_run([3.0, 2.0, 1.5], [5.0, 5.1, 5.2], 0.2, converged=[True, False, False]))
    assert len(lost) == 3 and "at steps 1, 2" in lost[2] and "lower bound" in lost[2]
    blown = T.training_sentences(_run([3.0, 40.0, np.inf], [11.0, 30.0, np.nan], 0.2))
    assert "no longer finite at step 2" in blown[1]
