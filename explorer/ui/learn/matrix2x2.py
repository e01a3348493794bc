"""Walkthrough 1: a 2×2 matrix as a map of the plane (eigenvectors, trace, determinant, characteristic polynomial)."""

from __future__ import annotations

import streamlit as st

from explorer.analysis import teaching
from explorer.figures import learn as figures
from explorer.ui.learn.walkthrough import PAGE, Prose, layout, link
from explorer.ui.state import Float

ID = "matrix2x2"
#: The entries of M, each its own link param; defaults make the symmetric matrix [[2, 1], [1, 2]].
ENTRIES = {
    name: Float(name, default, -3.0, 3.0, key=f"m_{name}")
    for name, default in zip("abcd", (2.0, 1.0, 1.0, 2.0), strict=True)
}
PRESET_KEY = "m_preset"  # the preset picker is not a setting: it only fills the entries (never in the link)

KIND_TEXT = {
    "distinct": "two real eigenvalues, two eigenvector lines",
    "complex": "a complex-conjugate pair: no real eigenvector",
    "scalar": "M = λI: every direction is an eigenvector",
    "defective": "one repeated eigenvalue with a single eigenvector line (defective)",
}


def _load_preset() -> None:
    # A selectbox callback gets no value: read the picker's own widget, then set the entries through the page
    # state (sliders and link) before the script runs.
    name = PAGE.widget_value(PRESET_KEY)
    if name in teaching.PRESETS_2X2:
        (a, b), (c, d) = teaching.PRESETS_2X2[name][1]
        for setting, value in zip(ENTRIES.values(), (a, b, c, d), strict=True):
            PAGE.set(setting, value)


def _controls() -> list[list[float]]:
    """The preset picker and the four entry sliders; returns M (2, 2) as nested lists."""
    st.selectbox(
        "Preset",
        list(teaching.PRESETS_2X2),
        index=None,
        key=f"{PAGE.name}_{PRESET_KEY}",
        placeholder="Load a preset…",
        format_func=lambda name: teaching.PRESETS_2X2[name][0],
        on_change=_load_preset,
    )
    st.markdown("Entries of M")
    values = {}
    for row in (("a", "b"), ("c", "d")):
        for col, name in zip(st.columns(2), row, strict=True):
            with col:
                values[name] = PAGE.slider(ENTRIES[name], name, step=0.05)
    M = [[values["a"], values["b"]], [values["c"], values["d"]]]
    st.latex(
        rf"M = \begin{{pmatrix}} {M[0][0]:.4g} & {M[0][1]:.4g} \\ {M[1][0]:.4g} & {M[1][1]:.4g} \end{{pmatrix}}"
    )
    preset = teaching.preset_label(M)
    if preset:
        st.caption(f"This is the **{preset}** preset.")
    return M


def render(prose: Prose) -> None:
    with layout(prose):
        M = _controls()

    res = teaching.plane_2x2(M)
    lam1, lam2 = res.eigvals
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
        f"λ₁ = **{figures.format_complex(lam1)}**, λ₂ = **{figures.format_complex(lam2)}**: "
        f"{KIND_TEXT[res.kind]}."
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


def handout_figures(seed: int) -> list:
    """The default view (the symmetric matrix [[2, 1], [1, 2]]): the plane and the characteristic polynomial.
    The same for every seed: a figure of the student's own matrix would show its answers."""
    a, b, c, d = (s.default for s in ENTRIES.values())
    res = teaching.plane_2x2([[a, b], [c, d]])
    return [figures.make_plane_figure(res), figures.make_charpoly_figure(res)]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "A 2×2 matrix"
PARAMS = tuple(s.param for s in ENTRIES.values())
exercises = teaching.matrix2x2_exercises
