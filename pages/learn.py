"""Learn: six walkthroughs that make the linear algebra visible, then point to it on the loaded model.

Every setting is in the link (``?walkthrough=gd&l1=4&l2=0.5&eta=0.3``), so a teacher can share a
link to an exact view. Walkthroughs 1, 3 and 5 need no model; 2, 4 and 6 can use the loaded one.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis import teaching
from explorer.errors import ExplorerError
from explorer.figures import learn as figures
from explorer.spectra.curvature import stability_threshold
from explorer.ui import curvature_cache
from explorer.ui.cache import cached_model
from explorer.ui.learn_cache import (
    LANCZOS_MAX_STEPS,
    POWER_MAX_STEPS,
    lanczos_on_head,
    power_on_head,
    temperature_on_head,
    weight_svd,
)
from explorer.ui.navigation import PAGES
from explorer.ui.session import require_capture, require_model, selection
from explorer.ui.state import LAYER_HELP, Choice, Float, Int, PageState, drop_from_link, head_picker

WALKTHROUGHS = {
    "matrix2x2": "1 · A 2×2 matrix",
    "power": "2 · Power iteration & Lanczos",
    "gd": "3 · Gradient descent",
    "temperature": "4 · Softmax temperature",
    "nonnormal": "5 · Non-normal growth",
    "svd": "6 · SVD & low rank",
}
# The query params each walkthrough owns; switching walkthrough drops the others' so shared links stay clean.
PARAMS = {
    "matrix2x2": ["a", "b", "c", "d"],
    "power": ["matrix", "ratio", "layer", "head", "step", "lsteps"],
    "gd": ["l1", "l2", "eta"],
    "temperature": ["layer", "head", "tau"],
    "nonnormal": ["n", "rho", "s"],
    "svd": ["source", "layer", "kind", "k"],
}


# ---------------------------------------------------------------------------------------------- helpers


PAGE = PageState("learn")


def link(stems: list[str], text: str, query_params: dict | None = None) -> None:
    """st.page_link to the first of ``stems`` that this build has (pages still being built are skipped),
    opening it with ``query_params`` when given."""
    for stem in stems:
        page = next((p for p in PAGES if p.url_path == stem), None)
        if page is not None:
            st.page_link(
                page.file, label=f"{text} → **{page.title}**", icon=page.icon, query_params=query_params
            )
            return


def intro(text: str, formulas: list[str], tries: list[str]) -> None:
    st.markdown(text)
    for formula in formulas:  # one per line: long LaTeX does not wrap
        st.latex(formula)
    st.markdown("**What to try**\n" + "\n".join(f"- {t}" for t in tries))


def head_pickers(prefix: str, n_layers: int, n_heads: int) -> tuple[int, int]:
    """The walkthroughs on a head share one choice of head (link params layer, head)."""
    return head_picker(PAGE, n_layers, n_heads, shared="learn", prefix=f"{prefix}_")


def causal_note(model_id: str) -> None:
    st.info(
        f"**{model_id} is causal**: each token attends only to itself and earlier tokens, so A is "
        "lower-triangular and its eigenvalues are exactly its diagonal entries a_ii (how much each token "
        "attends to itself). λ = 1 always comes from the first token, which can attend only to itself.",
        icon=":material/south_west:",
    )


# ------------------------------------------------------------------------------------ 1. 2x2 matrix


def _load_preset() -> None:
    name = st.session_state.get("learn_m_preset")
    if name in teaching.PRESETS_2X2:
        (a, b), (c, d) = teaching.PRESETS_2X2[name][1]
        for key, value in zip("abcd", (a, b, c, d), strict=True):
            st.session_state[f"learn_m_{key}"] = value


def walkthrough_matrix2x2() -> None:
    left, right = st.columns([3, 2], gap="large")
    with left:
        intro(
            "A 2×2 matrix M is a map of the plane: every point moves, straight lines stay straight, and the "
            "columns of M are where the unit vectors e₁ and e₂ land. An **eigenvector** is a direction that "
            "M does not turn, only stretches by a factor λ, its **eigenvalue** (a negative λ flips it). "
            "The eigenvalues are the roots of the characteristic polynomial, and two quantities you can read "
            "straight off M give their sum and product.",
            [
                r"M v = \lambda v",
                r"\det(M - \lambda I) = \lambda^2 - \operatorname{tr}(M)\,\lambda + \det M = 0",
                r"\lambda_1 + \lambda_2 = \operatorname{tr} M, \qquad \lambda_1 \lambda_2 = \det M",
            ],
            [
                "**Rotation**: no direction survives, so there is no real eigenvector; the eigenvalues are a "
                "complex pair cos θ ± i sin θ on the unit circle, and p(λ) never touches zero.",
                "**Shear** or **Jordan block**: p(λ) just touches zero, one repeated eigenvalue, but only one "
                "eigenvector line: the matrix is *defective* and cannot be diagonalised.",
                "**Symmetric**: the eigenvectors are at right angles and are the axes of the orange ellipse.",
                "**Projection**: det = 0, so one eigenvalue is 0 and the plane collapses onto a line.",
                "**Row-stochastic**: rows sum to 1, so (1, 1) is an eigenvector with λ = 1: the reason every "
                "attention matrix has the eigenvalue 1.",
            ],
        )
    with right:
        st.selectbox(
            "Preset",
            list(teaching.PRESETS_2X2),
            index=None,
            key="learn_m_preset",
            placeholder="Load a preset…",
            format_func=lambda name: teaching.PRESETS_2X2[name][0],
            on_change=_load_preset,
        )
        st.markdown("Entries of M")
        defaults = dict(zip("abcd", (2.0, 1.0, 1.0, 2.0), strict=True))
        values = {}
        for row in (("a", "b"), ("c", "d")):
            cols = st.columns(2)
            for col, name in zip(cols, row, strict=True):
                with col:
                    values[name] = PAGE.slider(
                        Float(name, defaults[name], -3.0, 3.0, key=f"m_{name}"), name, step=0.05
                    )
        M = [[values["a"], values["b"]], [values["c"], values["d"]]]
        st.latex(
            rf"M = \begin{{pmatrix}} {M[0][0]:.4g} & {M[0][1]:.4g} \\ {M[1][0]:.4g} & {M[1][1]:.4g} \end{{pmatrix}}"
        )
        preset = next((label for label, P in teaching.PRESETS_2X2.values() if np.allclose(P, M)), None)
        if preset:
            st.caption(f"This is the **{preset}** preset.")

    res = teaching.plane_2x2(M)
    lam1, lam2 = res.eigvals
    kind_text = {
        "distinct": "two real eigenvalues, two eigenvector lines",
        "complex": "a complex-conjugate pair: no real eigenvector",
        "scalar": "M = λI: every direction is an eigenvector",
        "defective": "one repeated eigenvalue with a single eigenvector line (defective)",
    }[res.kind]
    cols = st.columns(5)
    cols[0].metric("trace", f"{res.trace:.4g}", help="a + d")
    cols[1].metric("λ₁ + λ₂", figures.format_complex(lam1 + lam2), help="Always equals the trace.")
    cols[2].metric(
        "det", f"{res.det:.4g}", help="ad − bc: the factor by which M scales areas (sign: orientation)."
    )
    cols[3].metric("λ₁ · λ₂", figures.format_complex(lam1 * lam2), help="Always equals the determinant.")
    cols[4].metric(
        "tr² − 4 det", f"{res.discriminant:.4g}", help="> 0: two real eigenvalues; 0: repeated; < 0: complex."
    )
    st.markdown(
        f"λ₁ = **{figures.format_complex(lam1)}**, λ₂ = **{figures.format_complex(lam2)}**: {kind_text}."
    )

    c1, c2 = st.columns([3, 2])
    with c1:
        st.plotly_chart(figures.make_plane_figure(res), width="stretch", key="learn_plane")
    with c2:
        st.plotly_chart(
            figures.make_eigenvalue_plane_figure(res.eigvals), width="stretch", key="learn_m_eigvals"
        )
        st.plotly_chart(figures.make_charpoly_figure(res), width="stretch", key="learn_charpoly")
    link(
        ["gershgorin", "attention", "weights"],
        "Every attention matrix is row-stochastic like the last preset; see where its eigenvalues lie",
    )


# ------------------------------------------------------------------------------- 2. power and Lanczos


def walkthrough_power() -> None:
    left, right = st.columns([3, 2], gap="large")
    with left:
        intro(
            "How does a computer find the eigenvalues of a big matrix? The simplest way: multiply a vector by "
            "A again and again, rescaling each time. Every eigen-component gets multiplied by its λ, so the "
            "top one wins and the vector turns toward the top eigenvector v₁; the rest shrinks by |λ₂/λ₁| per "
            "step. The Rayleigh quotient r_k = x_kᵀ A x_k estimates λ₁; for a symmetric A the bounds below hold "
            "exactly (θ_k is the angle between x_k and v₁). **Lanczos** keeps every vector it has "
            "made (a Krylov space) and reads off the best estimates in that space, the *Ritz values*: the "
            "extreme eigenvalues appear after far fewer steps.",
            [
                r"x_{k+1} = \frac{A x_k}{\lVert A x_k \rVert}, \qquad r_k = x_k^\top A x_k",
                r"\tan\theta_k \le \left|\frac{\lambda_2}{\lambda_1}\right|^k \tan\theta_0",
                r"|r_k - \lambda_1| \le \max_i|\lambda_1 - \lambda_i|\,\tan^2\theta_0"
                r"\left|\frac{\lambda_2}{\lambda_1}\right|^{2k}",
            ],
            [
                "Push the ratio |λ₂/λ₁| to 0.99: power iteration crawls, while Lanczos still pins λ₁ within "
                "a few steps.",
                "The bounds hold for symmetric matrices: the measured errors stay under the dashed lines.",
                "Pick **Head Aᵀ**: x ← Aᵀx moves probability along attention, so it converges to the "
                "head's stationary distribution (where attention flow ends up) at rate |λ₂|, which is "
                "1 − the spectral gap.",
            ],
        )
    with right:
        matrices = {"example": "Example", "head": "Head Aᵀ", "head_sym": "Head (A+Aᵀ)/2"}
        source = PAGE.segmented_control(
            Choice("matrix", "example", matrices, key="power_matrix"), "Matrix", format_func=matrices.get
        )
        labels = None
        model_id = None
        if source == "example":
            ratio = PAGE.slider(
                Float("ratio", 0.8, 0.05, 0.99, key="power_ratio"),
                "|λ₂ / λ₁|",
                step=0.01,
                help="40×40, eigenvalues 1, ratio, rest smaller.",
            )
        else:
            loaded, cap = require_capture()
            model_id = loaded.id
            if cap.n_tokens < 3:
                st.warning(
                    f"The text has {cap.n_tokens} token(s); Lanczos needs at least 3. Type a longer text in the "
                    "sidebar. Showing the symmetric example meanwhile.",
                    icon=":material/warning:",
                )
                source, ratio = "example", 0.8
            else:
                layer, head = head_pickers("power", loaded.card.n_layers, loaded.card.n_heads)
                labels = cap.labels()
        step = PAGE.slider(Int("step", 25, 0, POWER_MAX_STEPS, key="power_step"), "Power-iteration step k")

    sel = selection()
    if source == "example":
        S = teaching.example_symmetric(40, ratio)
        power = teaching.power_iteration(S, POWER_MAX_STEPS)
        run = teaching.lanczos(S, LANCZOS_MAX_STEPS)
    else:
        with st.spinner("Running power iteration and Lanczos on the head…"):
            key = (sel.model_key, sel.text_key, layer, head)
            power = power_on_head(*key, source == "head_sym")
            run = lanczos_on_head(*key)
        if cap.causal and source == "head":
            causal_note(model_id)
            st.caption(
                "So here |λ₂| is the largest self-attention weight after the first token's, and the walk ends "
                "entirely on the first token: attention only ever flows to earlier tokens."
            )

    cols = st.columns(4)
    cols[0].metric("λ₁", figures.format_complex(power.lambda1))
    cols[1].metric("|λ₂|", f"{abs(power.lambda2):.4g}")
    cols[2].metric(
        "rate |λ₂/λ₁|",
        f"{power.rate:.4g}",
        help="Error shrink factor per step (squared for r_k when A is symmetric).",
    )
    cols[3].metric(
        f"r_{step}", f"{power.rayleigh[step]:.8g}", help="Rayleigh quotient x_kᵀ A x_k after k steps."
    )
    if power.rate > 1 - 1e-9:
        st.warning(
            "|λ₂| = |λ₁| here: there is no single dominant eigenvalue, so power iteration need not converge.",
            icon=":material/warning:",
        )
    if not power.symmetric:
        st.caption(
            "Aᵀ is not symmetric: the dashed lines show the slope |λ₂/λ₁|^k only (the constant depends on how "
            "far from orthogonal the eigenvectors are), and r_k converges at |λ₂/λ₁|^k, not its square."
        )
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(
            figures.make_power_convergence_figure(power, step=step), width="stretch", key="learn_power_errors"
        )
    with c2:
        st.plotly_chart(
            figures.make_power_vector_figure(power, step=step, labels=labels),
            width="stretch",
            key="learn_power_vector",
        )

    st.markdown("#### Lanczos")
    if source != "example":
        st.caption(
            "Lanczos needs a symmetric matrix, so it runs on the head's symmetric part S = (A + Aᵀ)/2."
        )
    lsteps = PAGE.slider(
        Int("lsteps", min(10, run.steps), 1, run.steps, key="power_lsteps"), "Lanczos steps m"
    )
    st.plotly_chart(figures.make_lanczos_figure(run, steps=lsteps), width="stretch", key="learn_lanczos")
    top = run.ritz[lsteps - 1, lsteps - 1]
    st.caption(
        f"After {lsteps} steps the largest Ritz value is {top:.10g}; scipy's eigsh (ARPACK) gives "
        f"{run.eigsh_largest[-1]:.10g} and the full eigh {run.eigvals[-1]:.10g} (difference "
        f"{abs(top - run.eigvals[-1]):.2g}). Lanczos here reorthogonalizes against every previous vector: plain "
        "Lanczos loses orthogonality in floating point and shows ghost copies of converged eigenvalues."
    )
    link(["attention"], "|λ₂| and the spectral gap of every head of the loaded model")
    link(["eigenvectors"], "The stationary distribution and eigenvectors of a head over its tokens")


# --------------------------------------------------------------------------------- 3. gradient descent


def _set_eta(value: float) -> None:
    st.session_state["learn_gd_eta"] = value


def walkthrough_gd() -> None:
    left, right = st.columns([3, 2], gap="large")
    with left:
        intro(
            "Training walks downhill on a loss. Near a minimum every smooth loss looks like a bowl "
            "f(x) = ½ xᵀHx, and the eigenvectors of the Hessian H are the bowl's axes: steep along λ_max, "
            "flat along λ_min. Gradient descent x ← x − η∇f = x − ηHx treats each axis separately: the "
            "coordinate along eigenvector vᵢ is multiplied by (1 − ηλᵢ) at every step. The condition number "
            "κ = λ_max/λ_min says how stretched the bowl is.",
            [
                r"x_t = \sum_i (1 - \eta\lambda_i)^t\, c_i(0)\, v_i",
                r"\text{converges} \iff 0 < \eta < \frac{2}{\lambda_{\max}}",
                r"\eta^\ast = \frac{2}{\lambda_{\max} + \lambda_{\min}} \;\Rightarrow\; \text{rate } "
                r"\frac{\kappa - 1}{\kappa + 1}",
            ],
            [
                "Click **Just past 2/λ_max**: 1 − ηλ_max drops below −1, so the steep coordinate flips sign "
                "and grows every step.",
                "Steps between 1/λ_max and 2/λ_max zig-zag across the valley but still converge.",
                "Make the curvatures 10 and 0.1 (κ = 100): even the best step crawls along the flat "
                "direction, at rate 0.98 per step. Ill-conditioning is why training can stall.",
            ],
        )
    with right:
        c1, c2 = st.columns(2)
        with c1:
            l1 = PAGE.slider(Float("l1", 4.0, 0.1, 10.0, key="gd_l1"), "Curvature λ₁", step=0.1)
        with c2:
            l2 = PAGE.slider(Float("l2", 0.5, 0.1, 10.0, key="gd_l2"), "Curvature λ₂", step=0.1)
        lam_max, lam_min = max(l1, l2), min(l1, l2)
        eta_max, eta_opt = 2 / lam_max, 2 / (lam_max + lam_min)
        high = round(1.25 * eta_max, 4)
        step = round(high / 250, 5)
        eta = PAGE.slider(
            Float("eta", min(0.3, eta_opt), step, high, key="gd_eta"), "Step size η", step=step, format="%.4f"
        )
        b1, b2 = st.columns(2)
        b1.button("Optimal step", on_click=_set_eta, args=(eta_opt,), key="learn_gd_opt", width="stretch")
        b2.button(
            "Just past 2/λ_max",
            on_click=_set_eta,
            args=(eta_max * 1.04,),
            key="learn_gd_past",
            width="stretch",
        )

    res = teaching.gradient_descent(l1, l2, eta)
    cols = st.columns(5)
    cols[0].metric("κ = λ_max/λ_min", f"{res.condition:.3g}")
    cols[1].metric("2/λ_max", f"{res.eta_max:.4g}", help="Any larger step diverges.")
    cols[2].metric("optimal η*", f"{res.eta_opt:.4g}", help="2/(λ_max + λ_min): balances both directions.")
    cols[3].metric(
        "rate at your η", f"{res.rate:.4g}", help="max |1 − ηλᵢ|: the error is multiplied by this per step."
    )
    cols[4].metric("best rate", f"{res.rate_opt:.4g}", help="(κ − 1)/(κ + 1), reached at η*.")
    if res.diverges:
        st.warning(
            f"η = {eta:.4g} > 2/λ_max = {res.eta_max:.4g}: along the steep axis |1 − ηλ_max| = {abs(res.factors[0]):.3g}"
            " > 1, so gradient descent diverges.",
            icon=":material/trending_up:",
        )
    c1, c2 = st.columns([1, 1])
    with c1:
        st.plotly_chart(figures.make_gd_contour_figure(res), width="stretch", key="learn_gd_contour")
    with c2:
        st.plotly_chart(figures.make_gd_decay_figure(res), width="stretch", key="learn_gd_decay")
        st.plotly_chart(figures.make_gd_rate_figure(res), width="stretch", key="learn_gd_rate")
    real_curvature(lam_max, res.eta_max)
    link(
        ["weights"],
        "The same ratio κ = σ₁/σ_min measures how unevenly each weight matrix of the loaded model stretches",
    )


def real_curvature(quadratic_lam_max: float, quadratic_eta_max: float) -> None:
    """The loaded model's whole-model λ_max next to the quadratic's when the Curvature page (any session, or
    an earlier process through its disk cache) has computed it; a link there otherwise. Never computes it:
    a whole-model Hessian takes tens of seconds to minutes."""
    sel = selection()
    try:
        lam = curvature_cache.known_lambda_max(sel.model_key, sel.text, sel.max_tokens)
        loaded = cached_model(sel.model_key)
    except ExplorerError:
        lam = None
    if lam is None:
        link(
            ["curvature"],
            "The real loss of the loaded model has a Hessian too: compute its λ_max",
            query_params={"block": "all"},
        )
        return
    loss = (
        "next-token cross-entropy on the sidebar text"
        if loaded.causal
        else "contrastive loss on shipped pairs"
    )
    st.markdown(f"**The real thing.** The Hessian of {loaded.id}'s {loss}, over every parameter:")
    cols = st.columns(4)
    cols[0].metric("λ_max (model)", f"{lam:.4g}", help="Top eigenvalue of the loss Hessian, whole model.")
    cols[1].metric(
        "2/λ_max (model)",
        f"{stability_threshold(lam):.4g}",
        help="The largest stable gradient-descent step for the model's loss near its weights.",
    )
    cols[2].metric("λ_max (this quadratic)", f"{quadratic_lam_max:.4g}")
    cols[3].metric("2/λ_max (this quadratic)", f"{quadratic_eta_max:.4g}")
    link(["curvature"], "Its whole spectrum, layer by layer", query_params={"block": "all"})


# ------------------------------------------------------------------------------------- 4. temperature


def walkthrough_temperature() -> None:
    loaded, cap = require_capture()
    left, right = st.columns([3, 2], gap="large")
    with left:
        intro(
            "Attention turns scores into weights with a softmax. Dividing the scores by a temperature τ first "
            "sharpens the rows (τ < 1) or flattens them (τ > 1). Since log A equals the scores up to a "
            "constant per row, which softmax ignores, any head of the loaded model can be replayed at any τ "
            "exactly: raise each weight to the power 1/τ and renormalise the row. Masked (zero) weights stay zero.",
            [
                r"A_\tau = \operatorname{softmax}_{\text{row}}\!\left(\frac{\log A}{\tau}\right)",
                r"(A_\tau)_{ij} = \frac{a_{ij}^{1/\tau}}{\sum_k a_{ik}^{1/\tau}}",
            ],
            [
                "Press **▶ Play** or drag τ. Small τ: every row puts all its weight on its largest entry, "
                "so A becomes a 0/1 map token i → token f(i); its eigenvalues are roots of unity on the unit "
                "circle (one per cycle of that map, e.g. ±1 for two tokens attending to each other) and zeros.",
                "Large τ: each row becomes uniform over the tokens it may see. For a bidirectional model "
                "that is 11ᵀ/n, rank 1: one eigenvalue 1 and the rest at 0.",
                "Compare heads: a head that already attends sharply at τ = 1 sits near the small-τ picture.",
            ],
        )
    with right:
        if cap.n_tokens < 2:
            st.warning(
                "The text has a single token: type a longer text in the sidebar.", icon=":material/warning:"
            )
            return
        layer, head = head_pickers("temp", loaded.card.n_layers, loaded.card.n_heads)
        taus = teaching.default_taus()
        setting = Float("tau", 1.0, float(taus[0]), float(taus[-1]), key="temp_tau", digits=3)
        requested = PAGE.bind(setting)
        PAGE.set(setting, float(taus[np.argmin(np.abs(np.log(taus) - np.log(requested)))]))  # nearest in log
        tau = PAGE.select_slider(
            setting, "Temperature τ", [float(t) for t in taus], format_func=lambda t: f"{t:.3g}"
        )

    sel = selection()
    with st.spinner("Computing eigenvalues at 25 temperatures…"):
        sweep = temperature_on_head(sel.model_key, sel.text_key, layer, head, cap.causal)
    if sweep.n < sweep.n_total:
        st.caption(
            f"Using the first {sweep.n} of {sweep.n_total} tokens"
            + (
                " (for a causal model that block is exactly their attention)."
                if cap.causal
                else ", rows renormalised."
            )
        )
    if cap.causal:
        causal_note(loaded.id)
        st.caption(
            "So every eigenvalue here is real and lies in [0, 1]. As τ → 0 each a_ii becomes 1 (token attends "
            "most to itself) or 0; as τ → ∞ row i becomes uniform over i + 1 tokens, so the eigenvalues go to "
            "1, 1/2, 1/3, … and not to the rank-1 picture of bidirectional models."
        )
    i = sweep.index_of(tau)
    cols = st.columns(3)
    cols[0].metric(f"|λ₂| at τ = {tau:.3g}", f"{sweep.second_modulus[i]:.4g}")
    cols[1].metric("|λ₂| at τ = 1 (the model)", f"{sweep.second_modulus[sweep.index_of(1.0)]:.4g}")
    cols[2].metric(
        "row entropy / log(#keys)", f"{sweep.entropy[i]:.3f}", help="0: one-hot rows; 1: uniform rows."
    )
    c1, c2 = st.columns([3, 2])
    with c1:
        fig = figures.make_temperature_animation_figure(
            sweep, start_index=i, title=f"Layer {layer}, head {head}: eigenvalues of A_τ ({sweep.n} tokens)"
        )
        st.plotly_chart(fig, width="stretch", key="learn_temperature")
    with c2:
        st.plotly_chart(
            figures.make_temperature_summary_figure(sweep, tau=tau), width="stretch", key="learn_temp_summary"
        )
    link(["attention"], "Every head's spectrum, and the temperature what-if on all heads at once")


# -------------------------------------------------------------------------------------- 5. non-normal


def walkthrough_nonnormal() -> None:
    left, right = st.columns([3, 2], gap="large")
    with left:
        intro(
            "If J = VΛV⁻¹, then J^t = VΛ^tV⁻¹, so in the long run the eigenvalues decide: with spectral radius "
            "ρ(J) < 1, J^t → 0. But when the eigenvectors are nearly parallel (J is **non-normal**), the short "
            "run can differ wildly: ‖J^t‖ can grow by orders of magnitude before it decays. It is squeezed "
            "between ρ^t and κ(V)ρ^t, where κ(V) = ‖V‖‖V⁻¹‖ is 1 for orthogonal eigenvectors. The **Schur "
            "form** J = QTQᵀ makes this visible: T is triangular with the eigenvalues on its diagonal, and "
            "everything above the diagonal is the non-normal part N.",
            [
                r"\rho(J)^t \;\le\; \lVert J^t \rVert_2 \;\le\; \kappa(V)\,\rho(J)^t",
                r"J = Q(\Lambda + N)Q^\top",
                r"\lVert N\rVert_F^2 = \lVert J\rVert_F^2 - \textstyle\sum_i |\lambda_i|^2",
            ],
            [
                "Set the coupling to 0: J is symmetric (normal), ‖J^t‖ = ρ^t exactly and κ(V) = 1.",
                "Raise the coupling or the size: same eigenvalues, but a hump of transient growth, and a "
                "bound κ(V)ρ^t that becomes very loose.",
                "ρ just below 1 with strong coupling: a stable system that amplifies before it settles.",
            ],
        )
    with right:
        n = PAGE.slider(Int("n", 6, 2, 12, key="nn_n"), "Size n")
        rho = PAGE.slider(Float("rho", 0.95, 0.5, 1.1, key="nn_rho"), "Spectral radius ρ", step=0.01)
        s = PAGE.slider(Float("s", 1.0, 0.0, 3.0, key="nn_s"), "Coupling (superdiagonal of T)", step=0.05)
        st.caption(
            "J = Q T Qᵀ: T has diagonal ρ, …, 0.6ρ (distinct, so J is diagonalizable) and the coupling just "
            "above it; Q is a fixed random rotation so J looks dense."
        )
    res = teaching.transient_growth(teaching.nonnormal_matrix(n, rho, s), steps=60)
    cols = st.columns(4)
    cols[0].metric("ρ(J)", f"{res.rho:.4g}")
    cols[1].metric("‖J‖₂", f"{res.norms[1]:.4g}", help="Growth in one step can be as large as this.")
    cols[2].metric(
        "κ(V)", f"{res.kappa_V:.3g}", help="Condition number of the (unit-column) eigenvector matrix."
    )
    cols[3].metric("peak ‖J^t‖", f"{res.peak_norm:.3g}", help=f"at t = {res.peak_t}")
    st.plotly_chart(figures.make_transient_figure(res), width="stretch", key="learn_transient")
    st.plotly_chart(figures.make_schur_figure(res), width="stretch", key="learn_schur")
    link(
        ["gershgorin", "attention"],
        "Attention matrices are strongly non-normal (causal ones triangular); see bounds on their eigenvalues",
    )


# --------------------------------------------------------------------------------------------- 6. SVD


def walkthrough_svd() -> None:
    left, right = st.columns([3, 2], gap="large")
    with left:
        intro(
            "Every matrix is a sum of rank-one layers σᵢuᵢvᵢᵀ, sorted by weight σ₁ ≥ σ₂ ≥ … (the singular "
            "values). Keeping the first k gives W_k, and by the Eckart-Young theorem no matrix of rank k is "
            "closer to W. Storing U_k, σ, V_k takes k(m + n) numbers instead of mn, a saving only when "
            "k < mn/(m + n).",
            [
                r"W_k = \sum_{i \le k} \sigma_i u_i v_i^\top",
                r"\lVert W - W_k \rVert_F = \sqrt{\textstyle\sum_{i>k} \sigma_i^2}, \qquad "
                r"\lVert W - W_k \rVert_2 = \sigma_{k+1}",
            ],
            [
                "Picture, k = 1: one rank-one layer already paints the sky gradient; the house (all "
                "rectangles) needs a few more, while the round sun, the roof and the slanted stripes need many.",
                "A real weight matrix: its singular values fall off slowly, so the error shrinks slowly; "
                "that is what compressing a model trades away.",
                "Watch the red diamond (the error measured on the matrices) sit on the curve computed from "
                "the singular values alone.",
            ],
        )
    with right:
        sources = {"image": "Picture", "weight": "Weight of the loaded model"}
        source = PAGE.segmented_control(
            Choice("source", "image", sources, key="svd_source"), "Matrix", format_func=sources.get
        )
        name = "a 72×96 picture"
        if source == "weight":
            loaded = require_model()
            layer = PAGE.slider(
                Int("layer", 0, 0, loaded.card.n_layers - 1, key="svd_layer", shared="learn_layer"),
                "Layer",
                help=LAYER_HELP,
            )
            kind = PAGE.selectbox(
                Choice("kind", "attn_q", teaching.WEIGHT_KINDS, key="svd_kind"),
                "Weight",
                format_func={
                    "attn_q": "query W_Q",
                    "attn_k": "key W_K",
                    "attn_v": "value W_V",
                    "attn_o": "output W_O",
                }.get,
            )
            sel = selection()
            try:
                with st.spinner("Computing the SVD…"):
                    name, factors = weight_svd(sel.model_key, layer, kind)
            except ValueError as err:
                st.error(f"{err} Pick another layer or weight.", icon=":material/error:")
                return
            for note in loaded.notes:
                if any(w in note.lower() for w in ("quantiz", "random weights")):  # what these weights are
                    st.caption(note)
        else:
            factors = teaching.svd_factors(teaching.image_matrix())
        default_k = 4 if source == "image" else max(1, factors.rank_max // 8)
        k = PAGE.slider(Int("k", default_k, 0, factors.rank_max, key="svd_k"), "Rank k")
    res = teaching.best_rank_k(factors, k)
    m, n_cols = res.matrix.shape
    st.markdown(f"**{name}**, shape {m}×{n_cols}, rank ≤ {factors.rank_max}.")
    cols = st.columns(5)
    cols[0].metric("‖W − W_k‖_F measured", f"{res.error_fro:.5g}")
    cols[1].metric(
        "√(Σ_{i>k} σᵢ²)", f"{res.error_eckart_young:.5g}", help="Eckart-Young: equal to the measured error."
    )
    cols[2].metric("‖W − W_k‖₂ = σ_{k+1}", f"{res.error_spectral:.4g}")
    cols[3].metric(
        "energy kept",
        f"{100 * res.energy_kept:.2f} %",
        help=f"k₉₀ = {res.k90}, k₉₉ = {res.k99} (energy ranks).",
    )
    change = res.params_low / res.params_full - 1
    cols[4].metric(
        "parameters k(m+n)",
        f"{res.params_low:,}",
        delta=f"{100 * change:+.1f} % vs mn = {res.params_full:,}",
        delta_color="inverse",  # fewer parameters is the good direction
        help=f"A saving only when k < mn/(m+n) = {res.break_even:.1f}.",
    )
    st.plotly_chart(
        figures.make_low_rank_figure(res, image=source == "image"), width="stretch", key="learn_svd_images"
    )
    st.plotly_chart(figures.make_svd_error_figure(res), width="stretch", key="learn_svd_error")
    link(["compression", "weights"], "What low-rank weights cost the loaded model's quality, measured")


# ------------------------------------------------------------------------------------------------ page

RENDER = {
    "matrix2x2": walkthrough_matrix2x2,
    "power": walkthrough_power,
    "gd": walkthrough_gd,
    "temperature": walkthrough_temperature,
    "nonnormal": walkthrough_nonnormal,
    "svd": walkthrough_svd,
}

st.title("Learn: linear algebra made visible")
st.caption(
    "Six short walkthroughs. Each explains one idea, lets you play with it, and points to the page where the "
    "same idea shows up on the loaded model. Every setting is in the address bar: copy it to share this exact view."
)
current = PAGE.segmented_control(
    Choice("walkthrough", "matrix2x2", WALKTHROUGHS),
    "Walkthrough",
    format_func=WALKTHROUGHS.get,
    label_visibility="collapsed",
)
stale = {name for owner, names in PARAMS.items() if owner != current for name in names} - set(PARAMS[current])
drop_from_link(*stale)
st.subheader(WALKTHROUGHS[current].split("· ", 1)[1])
RENDER[current]()
