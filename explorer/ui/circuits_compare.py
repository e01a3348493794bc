"""Compare mode of the QK/OV circuits page: model A (loaded) against a variant B named by ``vs=`` in the link
(explorer.analysis.variants; the same box and the same built variant as the weights page's compare mode).

Below the single-model view: the layer x head grid of one per-head quantity (B − A of the copying score, the
spectral radius of W_OV, ||W_OV||_2 or ||W_QK||_2, or the relative change ||ΔW_OV||_F / ||W_OV||_F or
||ΔW_QK||_F / ||W_QK||_F), a sentence on which head changed most, and one head's A | B: OV eigenvalues on one
plane, singular values on one chart. B is built and compared through the task layer (explorer/tasks.py: a
CircuitComparisonSpec keyed by B's VariantSpec), watched here with progress; the page only calls ``draw``."""

from __future__ import annotations

import streamlit as st

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
from explorer.ui import head_compare
from explorer.ui.state import Choice, PageState

VS_CIRCUIT = Choice("vs_circuit", "ov_change", tuple(CIRCUIT_DELTAS))
GRID_KEY = "circuits_vs_grid"
TASK = head_compare.CompareTask(
    lambda vspec, _text: CircuitComparisonSpec(vspec),  # circuits depend on the weights alone
    "Circuits of B and their changes",
    "Comparing the circuits of A and B failed. Reload the page to retry",
    "circuits_vs_task",
)
PAIRED_NAMES = {name: CIRCUIT_DELTAS[name] for name in PAIRED}  # the head table's rows


def draw(page: PageState, sel, loaded: LoadedModel, circuits_a: CircuitSpectra, key: str) -> None:
    """The compare section for B = ``key`` (canonical): everything below the "Compare with" box."""
    comparison = head_compare.compared(
        sel,
        loaded,
        key,
        TASK,
        lambda variant, progress: compare_model_circuits(
            loaded.model, variant.replaced, circuits_a, progress=progress
        ),
    )
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
    return head_compare.grid_section(
        page,
        VS_CIRCUIT,
        label=delta_label,
        help="B − A of a circuit's number, or how much a circuit moved relative to its size in A.",
        figure=lambda metric: make_circuit_delta_heatmap_figure(comparison, metric),
        sentence=lambda metric: head_compare.change_sentence(
            comparison,
            metric,
            CIRCUIT_DELTAS[metric],
            paired=metric in PAIRED,
            differ="have weights that differ in B",
        ),
        key=GRID_KEY,
    )


def _head_section(page: PageState, comparison: CircuitComparison, metric: str) -> None:
    st.subheader("One head: A and B")
    L, H = comparison.a.n_layers, comparison.a.n_heads
    layer, head = head_compare.compare_head_picker(
        page, GRID_KEY, L, H, comparison.most_changed(metric) or (0, 0)
    )
    st.dataframe(
        head_compare.head_rows(comparison, layer, head, PAIRED_NAMES, "quantity"),
        hide_index=True,
        width="stretch",
        key="circuits_vs_table",
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
