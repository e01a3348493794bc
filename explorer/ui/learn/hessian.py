"""Walkthrough: the Hessian, conditioning and flat vs sharp minima, on a 2-D quadratic or a block of the model."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis import teaching_models as tm
from explorer.analysis.exercises import Exercise, instance_rng
from explorer.figures import learn_models as figures
from explorer.ui.learn.models_cache import hessian_spec, hessian_work, watch_on_text
from explorer.ui.learn.walkthrough import PAGE, Prose, link, source_switch
from explorer.ui.session import require_model
from explorer.ui.state import Choice, Float, Int

ID = "hessian"
SOURCE = source_switch("hs", "2-D quadratic", "A block of the loaded model")
SMALL = Float("hs_lo", 1.0, 0.1, 10.0, key="hs_lo")
LARGE = Float("hs_hi", 10.0, 0.5, 20.0, key="hs_hi")
ETA_FRACTION = Float("hs_eta", 0.9, 0.05, 1.2, key="hs_eta")
SAMPLES = Int("hs_m", 20, 2, 80, key="hs_m")
BANDWIDTH = Float("hs_bw", 0.1, 0.01, 1.0, key="hs_bw")
PARTS = {"attention": "Attention", "mlp": "MLP"}
PART = Choice("hs_part", "attention", PARTS, key="hs_part")
STEPS = 30
N_PARAMS = 40  # the flatness example: a least-squares loss over this many parameters
START = (1.0, 1.0)
FLAT_WIDTH = 0.05  # "near 0": within this fraction of lambda_max


def exercises(seed: int) -> tuple[Exercise, ...]:
    """The step-size limit 2 / lambda_max and the condition number of a 2x2 Hessian."""
    rng = instance_rng(seed, ID, "limit")
    lo = float(rng.choice([0.5, 1.0, 2.0, 4.0]))
    hi = float(rng.choice([5.0, 8.0, 10.0, 16.0, 20.0, 25.0]))
    angle = float(rng.choice([0.0, 30.0, 45.0, 60.0]))
    H = tm.quadratic_hessian(lo, hi, angle)
    shown = f"H = [[{H[0, 0]:.3f}, {H[0, 1]:.3f}], [{H[1, 0]:.3f}, {H[1, 1]:.3f}]]"
    trace, det = H[0, 0] + H[1, 1], H[0, 0] * H[1, 1] - H[0, 1] ** 2
    return (
        Exercise(
            id="limit",
            question=f"The loss f(x) = xᵀHx/2 has {shown} (eigenvalues {lo:g} and {hi:g}). Gradient descent "
            "x ← x − η∇f converges from every start exactly when η is below what value?",
            answer=2.0 / hi,
            tolerance=0.002,
            hint="Along eigen-direction i a step multiplies the coordinate by 1 − ηλᵢ; it must stay in (−1, 1).",
            solution=f"|1 − ηλ| < 1 for every eigenvalue means η < 2/λ for all of them; the largest λ = {hi:g} "
            f"binds: η < 2/{hi:g} = **{2 / hi:.4f}**.",
        ),
        Exercise(
            id="kappa",
            question=f"Same H (trace {trace:.3f}, determinant {det:.3f}). What is its condition number "
            "κ = λ_max / λ_min?",
            answer=hi / lo,
            tolerance=0.05,
            hint="The eigenvalues solve λ² − (trace) λ + det = 0.",
            solution=f"λ = {lo:g} and {hi:g} (roots of λ² − {trace:.3f}λ + {det:.3f}), so κ = {hi:g}/{lo:g} = "
            f"**{hi / lo:.4g}**: even at the best fixed η the slow direction shrinks only by about 1 − 2/κ per step.",
        ),
    )


def _example(controls) -> None:
    lo = PAGE.slider(SMALL, "Flat curvature λ_min", where=controls, step=0.1)
    hi = PAGE.slider(LARGE, "Sharp curvature λ_max", where=controls, step=0.1)
    lo, hi = min(lo, hi), max(lo, hi)
    frac = PAGE.slider(ETA_FRACTION, "Step η as a fraction of the limit 2/λ_max", where=controls, step=0.01)
    qd = tm.quadratic_descent(tm.quadratic_hessian(lo, hi), START, frac * 2.0 / hi, STEPS)
    cols = st.columns(4)
    cols[0].metric("κ = λ_max/λ_min", f"{qd.kappa:.3g}")
    cols[1].metric("limit 2/λ_max", f"{qd.eta_max:.4g}")
    cols[2].metric("η", f"{qd.eta:.4g}")
    cols[3].metric(
        "loss after", f"{qd.losses[-1]:.3g}", help=f"f(x) after {STEPS} steps (f(x₀) = {qd.losses[0]:.3g})."
    )
    if qd.diverges:
        st.error(f"η = {qd.eta:.4g} > 2/λ_max = {qd.eta_max:.4g}: |1 − ηλ_max| = {abs(qd.multipliers[-1]):.3g} > 1, "
                 "the sharp direction oscillates and grows.", icon=":material/trending_up:")  # fmt: skip
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(figures.make_quadratic_path_figure(qd), width="stretch", key="learn_hs_path")
    with c2:
        st.plotly_chart(figures.make_eigen_coords_figure(qd), width="stretch", key="learn_hs_coords")
    st.markdown("#### Flatness: how many eigenvalues sit near 0")
    m = PAGE.slider(SAMPLES, f"Data points for a least-squares loss over {N_PARAMS} parameters")
    sigma = PAGE.slider(BANDWIDTH, "Kernel bandwidth σ", step=0.01)
    X = np.random.default_rng(0).standard_normal((m, N_PARAMS))
    lam = np.linalg.eigvalsh(X.T @ X / m)
    grid = np.linspace(lam.min() - 4 * sigma, lam.max() + 4 * sigma, 400)
    density = tm.kde_at(grid, lam, sigma=sigma)
    kde0 = float(tm.kde_at(0.0, lam, sigma=sigma)[0])
    zeros = int(np.sum(lam < 1e-10 * max(lam.max(), 1.0)))
    st.caption(
        f"H = XᵀX/m for m = {m} random data points: rank ≤ {min(m, N_PARAMS)}, so {zeros} of the {N_PARAMS} "
        f"eigenvalues are 0 (flat directions). Kernel density at 0: {kde0:.4g} per unit of λ."
    )
    st.plotly_chart(
        figures.make_density_figure(
            grid, density, kde0=kde0, title="Eigenvalue density of XᵀX/m", eigenvalues=lam
        ),
        width="stretch",
        key="learn_hs_density",
    )


def _model(controls) -> None:
    loaded = require_model()
    n_layers = loaded.card.n_layers
    layer = PAGE.slider(
        Int("hs_layer", n_layers // 2, 0, n_layers - 1, key="hs_layer"), "Layer", where=controls
    )
    part = PAGE.segmented_control(PART, "Block", where=controls, format_func=PARTS.get)
    block = f"layer:{layer}:{part}"
    result = watch_on_text(
        hessian_spec,
        hessian_work,
        block,
        label=f"Lanczos on the Hessian of {block}",
        failure="The Hessian could not be computed; try another block or a longer text",
        key="learn_hs_task",
    )
    if result is None:
        return
    flat = tm.weight_near_zero(result.nodes, result.weights, FLAT_WIDTH * result.lambda_max)
    cols = st.columns(4)
    cols[0].metric("λ_max", f"{result.lambda_max:.4g}", help=f"Top Ritz value; residual {result.residual:.2g} "
                   f"after {result.n_matvec} Hessian-vector products.")  # fmt: skip
    cols[1].metric(
        "limit 2/λ_max", f"{result.eta_max:.3g}", help="Largest stable step on the quadratic model."
    )
    cols[2].metric("density at 0", f"{result.kde0:.4g}", help=f"Gaussian kernel, σ = {result.sigma:.3g}.")
    cols[3].metric("parameters", f"{result.n_params:,}")
    st.caption(
        f"{result.description} Loss {result.loss:.4g} nats. Stochastic Lanczos quadrature with one probe (an "
        f"estimate): {100 * flat:.1f} % of the spectral weight lies within ±{FLAT_WIDTH:g} λ_max of 0, where "
        "the loss is nearly flat."
    )
    st.plotly_chart(
        figures.make_density_figure(result.grid, result.density, kde0=result.kde0,
                                    title=f"Hessian eigenvalue density of {result.label}"),
        width="stretch",
        key="learn_hs_model_density",
    )  # fmt: skip
    link(["curvature"], f"λ_max, trace and density of any block (here {block})", {"block": block})


def render(prose: Prose) -> None:
    if SOURCE.beside_intro(prose, "Loss", _example, _model) == "example":
        link(
            ["curvature"], "The loss curvature of the loaded model: λ_max, trace, density, training what-ifs"
        )


def handout_figures(seed: int) -> list:
    """The default 2-D quadratic and its gradient descent (the handout has no model)."""
    hi = LARGE.default
    qd = tm.quadratic_descent(
        tm.quadratic_hessian(SMALL.default, hi), START, ETA_FRACTION.default * 2 / hi, STEPS
    )
    return [figures.make_quadratic_path_figure(qd), figures.make_eigen_coords_figure(qd)]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "The Hessian & flat minima"
PARAMS = (
    SOURCE.param,
    SMALL.param,
    LARGE.param,
    ETA_FRACTION.param,
    SAMPLES.param,
    BANDWIDTH.param,
    "hs_layer",
    PART.param,
)
MODEL_LINK = SOURCE.model_link
PREREQUISITES = ("gd",)
