"""Compare mode of the QK/OV circuits page: model A (loaded) against a variant B named by ``vs=`` in the link
(explorer.analysis.variants; the same box and the same built variant as the weights page's compare mode).

Below the single-model view: the layer x head grid of one per-head quantity (B − A of the copying score, the
spectral radius of W_OV, ||W_OV||_2 or ||W_QK||_2, or the relative change ||ΔW_OV||_F / ||W_OV||_F or
||ΔW_QK||_F / ||W_QK||_F), a sentence on which head changed most, and one head's A | B: OV eigenvalues on one
plane, singular values on one chart. B is built and compared through the task layer (explorer/tasks.py: a
CircuitComparisonSpec keyed by B's VariantSpec), watched here with progress; the page only calls ``draw``."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis import variants
from explorer.analysis.circuits import (
    CIRCUIT_DELTAS,
    PAIRED,
    CircuitComparison,
    CircuitComparisonSpec,
    CircuitSpectra,
    compare_model_circuits,
)
from explorer.figures.circuits import (
    delta_label,
    make_circuit_delta_heatmap_figure,
    make_circuit_singular_values_pair_figure,
    make_ov_eigenvalue_pair_figure,
)
from explorer.models import LoadedModel
from explorer.ui import compare_view, task_view
from explorer.ui.cache import cached_fingerprint
from explorer.ui.state import LAYER_HELP, Choice, Int, PageState, new_chart_selection

VS_CIRCUIT = Choice("vs_circuit", "ov_change", tuple(CIRCUIT_DELTAS))
GRID_KEY = "circuits_vs_grid"


def change_sentence(comparison: CircuitComparison, metric: str) -> str:
    """Which head changed most in ``metric`` (a key of CIRCUIT_DELTAS) and by how much, from the data."""
    delta = comparison.delta(metric)
    n_heads, n_changed = delta.size, int((~comparison.same).sum())
    changed = f"{n_changed} of {n_heads} heads have weights that differ in B."
    top = comparison.most_changed(metric)
    if top is None:
        return f"No head's {CIRCUIT_DELTAS[metric]} changed: every value is A's. {changed}"
    layer, head = top
    finite = delta[np.isfinite(delta)]
    if metric in PAIRED:
        a, b = (v[layer, head] for v in comparison.values(metric))
        return (
            f"Changed most: layer {layer} head {head}, {CIRCUIT_DELTAS[metric]} {a:.4g} → {b:.4g} "
            f"(Δ {delta[layer, head]:+.3g}). Over the {finite.size} heads with a value: mean Δ "
            f"{finite.mean():+.3g}, mean |Δ| {np.abs(finite).mean():.3g}. {changed}"
        )
    return (
        f"Changed most: layer {layer} head {head}, {CIRCUIT_DELTAS[metric]} = {delta[layer, head]:.3g}; "
        f"median over the {finite.size} heads {np.median(finite):.3g}. {changed}"
    )


def head_rows(comparison: CircuitComparison, layer: int, head: int) -> list[dict]:
    """One head's paired numbers as table rows of text: quantity, A, B (4 significant digits), B − A (3, signed;
    exactly 0 for a head whose weights are unchanged)."""
    rows = []
    for name in PAIRED:
        a, b = (float(v[layer, head]) for v in comparison.values(name))
        shift = float(comparison.delta(name)[layer, head])
        rows.append(
            {"quantity": CIRCUIT_DELTAS[name], "A": f"{a:.4g}", "B": f"{b:.4g}", "B − A": f"{shift:+.3g}"}
        )
    return rows


def _comparison(
    sel, loaded: LoadedModel, variant: variants.Variant, circuits_a: CircuitSpectra
) -> CircuitComparison | None:
    vspec = variants.variant_spec(
        cached_fingerprint(sel.model_key), variant.key, sel.text_key.text, loaded.device
    )

    def work(task):
        return compare_model_circuits(loaded.model, variant.replaced, circuits_a, progress=task.report)

    return task_view.watch(
        CircuitComparisonSpec(vspec),
        work,
        label="Circuits of B and their changes",
        failure="Comparing the circuits of A and B failed. Reload the page to retry",
        key="circuits_vs_task",
    )


def draw(page: PageState, sel, loaded: LoadedModel, circuits_a: CircuitSpectra, key: str) -> None:
    """The compare section for B = ``key`` (canonical): everything below the "Compare with" box."""
    variant = compare_view.variant_for(sel, loaded, key)
    if variant is None:
        return
    st.markdown(f"**B = `{key}`**: {variant.description}. " + " ".join(variant.notes))
    comparison = _comparison(sel, loaded, variant, circuits_a)
    if comparison is None:
        return
    if comparison.unchanged:
        st.info(
            "No change: B has A's W_Q, W_K, W_V and W_O in every head (this variant changes other matrices "
            "only), so every circuit of B is A's and every difference below is 0.",
            icon=":material/info:",
        )
    metric = _grid_section(page, comparison)
    _head_section(page, comparison, metric)


def _grid_section(page: PageState, comparison: CircuitComparison) -> str:
    st.subheader("A | B, every head")
    metric = page.selectbox(
        VS_CIRCUIT,
        "Quantity",
        format_func=delta_label,
        help="B − A of a circuit's number, or how much a circuit moved relative to its size in A.",
    )
    st.plotly_chart(
        make_circuit_delta_heatmap_figure(comparison, metric),
        width="stretch",
        key=GRID_KEY,
        on_select="rerun",
        selection_mode="points",
    )
    st.caption(change_sentence(comparison, metric) + " Click a cell to see that head below.")
    return metric


def _grid_cell(selection: dict) -> tuple[int, int]:
    """(layer, head) of the grid's clicked cell (x = head, y = layer)."""
    point = selection["points"][0]
    return int(round(float(point["y"]))), int(round(float(point["x"])))


def _head_section(page: PageState, comparison: CircuitComparison, metric: str) -> None:
    st.subheader("One head: A and B")
    L, H = comparison.a.n_layers, comparison.a.n_heads
    layer0, head0 = comparison.most_changed(metric) or (0, 0)  # opens on the head that changed most
    layer_setting = Int("vs_layer", layer0, 0, L - 1, counts=True)
    head_setting = Int("vs_head", head0, 0, H - 1, counts=True)
    clicked = new_chart_selection(GRID_KEY, _grid_cell)
    if clicked is not None and 0 <= clicked[0] < L and 0 <= clicked[1] < H:
        page.set(layer_setting, clicked[0])
        page.set(head_setting, clicked[1])
    left, right = st.columns(2)
    layer = int(page.slider(layer_setting, "Layer (A | B)", where=left, help=LAYER_HELP))
    head = int(page.slider(head_setting, "Head (A | B)", where=right, help="Head, counted from 0."))
    st.dataframe(
        head_rows(comparison, layer, head), hide_index=True, width="stretch", key="circuits_vs_table"
    )
    same = (
        " It has the same weights in A and B: its circuits are A's." if comparison.same[layer, head] else ""
    )
    st.caption(
        f"Layer {layer} head {head}: ‖W_OV^B − W_OV^A‖_F / ‖W_OV^A‖_F = {comparison.ov_change[layer, head]:.3g}, "
        f"‖W_QK^B − W_QK^A‖_F / ‖W_QK^A‖_F = {comparison.qk_change[layer, head]:.3g}.{same}"
    )
    a, b = st.columns(2)
    a.plotly_chart(make_ov_eigenvalue_pair_figure(comparison, layer, head), width="stretch",
                   key="circuits_vs_eig")  # fmt: skip
    b.plotly_chart(make_circuit_singular_values_pair_figure(comparison, layer, head), width="stretch",
                   key="circuits_vs_sigma")  # fmt: skip
    st.caption(
        "A's eigenvalues are open circles, B's crosses: where a cross sits on its circle the change left that "
        "eigenvalue alone. On the right, A solid and B dotted, the QK circuit in violet and the OV circuit in "
        "orange. ‖ΔW‖_F / ‖W‖_F is computed from the d_head-sized factors, never forming the d_model × d_model "
        "circuits."
    )
