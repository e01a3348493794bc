"""What the compare sections of the per-head pages (attention; the circuits page can share it) do alike, for a
comparison of model A with a variant B that has ``delta(metric)``, ``values(metric)``, ``same`` and
``most_changed(metric)`` (explorer.analysis.head_changes.HeadChanges): B built and compared through the task
layer, the sentence on which head changed most, one head's A, B, B − A as table rows, the grid of a chosen
quantity, and the compare section's own head picker, set by a click on that grid."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from explorer import tasks
from explorer.analysis import variants
from explorer.models import LoadedModel
from explorer.models.choice import TextChoice
from explorer.ui import compare_view, task_view
from explorer.ui.cache import cached_fingerprint
from explorer.ui.state import LAYER_HELP, Choice, Int, PageState, new_chart_selection


def change_sentence(comparison, metric: str, name: str, *, paired: bool, differ: str) -> str:
    """Which head changed most in ``metric`` (called ``name`` in words) and by how much, from the data.
    ``paired``: the delta is B − A of values A and B have (else a distance, shown as it is); ``differ``: what the
    changed heads do, e.g. "attend differently in B"."""
    delta = comparison.delta(metric)
    changed = f"{int((~comparison.same).sum())} of {delta.size} heads {differ}."
    top = comparison.most_changed(metric)
    if top is None:
        return f"No head's {name} changed: every value is A's. {changed}"
    layer, head = top
    finite = delta[np.isfinite(delta)]
    if not paired:
        return (
            f"Changed most: layer {layer} head {head}, {name} = {delta[layer, head]:.3g}; median over the "
            f"{finite.size} heads {np.median(finite):.3g}. {changed}"
        )
    a, b = (v[layer, head] for v in comparison.values(metric))
    return (
        f"Changed most: layer {layer} head {head}, {name} {a:.4g} → {b:.4g} (Δ {delta[layer, head]:+.3g}). Over "
        f"the {finite.size} heads with a value: mean Δ {finite.mean():+.3g}, mean |Δ| {np.abs(finite).mean():.3g}. "
        f"{changed}"
    )


def head_rows(comparison, layer: int, head: int, names: dict[str, str], column: str) -> list[dict]:
    """One head's paired values as table rows of text: ``column`` (the name from ``names``, metric -> words), A,
    B (4 significant digits), B − A (3, signed; exactly 0 for a head that is the same in A and B)."""
    rows = []
    for metric, name in names.items():
        a, b = (float(v[layer, head]) for v in comparison.values(metric))
        shift = float(comparison.delta(metric)[layer, head])
        rows.append({column: name, "A": f"{a:.4g}", "B": f"{b:.4g}", "B − A": f"{shift:+.3g}"})
    return rows


def _grid_cell(selection: dict) -> tuple[int, int]:
    """(layer, head) of a grid's clicked cell (x = head, y = layer)."""
    point = selection["points"][0]
    return int(round(float(point["y"]))), int(round(float(point["x"])))


def compare_head_picker(
    page: PageState, grid_key: str, n_layers: int, n_heads: int, default: tuple[int, int]
) -> tuple[int, int]:
    """The compare section's head (link params vs_layer, vs_head; opening on ``default``, e.g. the head that
    changed most), set by a click on the compare grid drawn with key ``grid_key`` as well as by two sliders."""
    layer_setting = Int("vs_layer", default[0], 0, n_layers - 1, counts=True)
    head_setting = Int("vs_head", default[1], 0, n_heads - 1, counts=True)
    clicked = new_chart_selection(grid_key, _grid_cell)
    if clicked is not None and 0 <= clicked[0] < n_layers and 0 <= clicked[1] < n_heads:
        page.set(layer_setting, clicked[0])
        page.set(head_setting, clicked[1])
    left, right = st.columns(2)
    layer = int(page.slider(layer_setting, "Layer (A | B)", where=left, help=LAYER_HELP))
    head = int(page.slider(head_setting, "Head (A | B)", where=right, help="Head, counted from 0."))
    return layer, head


def grid_section(
    page: PageState,
    setting: Choice,
    *,
    label: Callable[[str], str],
    help: str,
    figure: Callable[[str], go.Figure],
    sentence: Callable[[str], str],
    key: str,
) -> str:
    """The compare section's grid: a choice of quantity (``setting``, shown by ``label``), the clickable layer x
    head figure of it (``figure(metric)``, drawn with widget key ``key``) and ``sentence(metric)`` under it.
    Returns the chosen quantity."""
    st.subheader("A | B, every head")
    metric = page.selectbox(setting, "Quantity", format_func=label, help=help)
    st.plotly_chart(figure(metric), width="stretch", key=key, on_select="rerun", selection_mode="points")
    st.caption(sentence(metric) + " Click a cell to see that head below.")
    return metric


@dataclass(frozen=True)
class CompareTask:
    """How a page's compare section names and shows its comparison task: ``spec(B's VariantSpec, the text
    choice)`` builds the task's spec; ``label``: what the progress bar says is running; ``failure``: what to do
    if it fails; ``key``: the task's widget-key stem."""

    spec: Callable[[variants.VariantSpec, TextChoice], tasks.Spec]
    label: str
    failure: str
    key: str


def compared(
    sel,
    loaded: LoadedModel,
    key: str,
    task: CompareTask,
    compare: Callable[[variants.Variant, tasks.Progress], Any],
) -> Any | None:
    """B = ``key`` (canonical) built through compare_view (the weights page's task), a line naming it, and the
    comparison ``compare(variant, progress)`` run as ``task`` and watched with progress. None while B or the
    comparison is being computed (or failed: then the page says so)."""
    variant = compare_view.variant_for(sel, loaded, key)
    if variant is None:
        return None
    st.markdown(f"**B = `{key}`**: {variant.description}. " + " ".join(variant.notes))
    text = sel.text_key.text
    vspec = variants.variant_spec(cached_fingerprint(sel.model_key), variant.key, text, loaded.device)
    return task_view.watch(
        task.spec(vspec, sel.text_key),
        lambda running: compare(variant, running.report),
        label=task.label,
        failure=task.failure,
        key=task.key,
    )
