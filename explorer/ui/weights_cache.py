"""Cached, progress-reporting wrappers for the weight pages (weights, circuits, Gershgorin).

Weight spectra take seconds the first time, so they run as a task (explorer/tasks.py, keyed by the weights'
fingerprint): a second browser session that arrives mid-computation watches the same task instead of starting
another one, later visits find it finished, and the disk store gives it back to a new process in well under a
second.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import tasks
from explorer.analysis.circuits import CircuitSpectra, circuit_spectra, ov_core_matrix
from explorer.analysis.weights import (
    WW_METRICS,
    RandomizedSpectra,
    WeightSpectra,
    WeightSpectraSpec,
    compute_weight_spectra,
    randomized_spec,
    randomized_work,
    with_origin,
    ww_metric,
)
from explorer.labels import weight_kind_label
from explorer.models import LoadedModel
from explorer.models.choice import ModelChoice, TextChoice
from explorer.spectra.gershgorin import GershgorinResult, analyse_gershgorin
from explorer.ui import task_view
from explorer.ui.cache import cached_capture, cached_fingerprint, cached_model


def weight_spectra_with_progress(model_key: ModelChoice, loaded: LoadedModel) -> WeightSpectra:
    """The model's weight spectra, drawing a progress bar while the first computation runs.

    Stops the page after saying what to do if the computation failed (the next visit retries)."""
    spec = WeightSpectraSpec(cached_fingerprint(model_key))

    def work(task: tasks.Task) -> WeightSpectra:
        return compute_weight_spectra(
            loaded.model, device=loaded.device, progress=task.report, fingerprint=spec.fingerprint
        )

    result = task_view.watch(
        spec,
        work,
        label="Weight spectra (first visit for this model)",
        failure="Computing the weight spectra failed. Reload the page to retry; if it fails again, try the CPU "
        "device in the sidebar.",
        wait=True,
    )
    if result is None:
        st.stop()
    return with_origin(result, spec)


def randomized_in_background(loaded: LoadedModel, spectra: WeightSpectra) -> RandomizedSpectra | None:
    """The randomized comparison (every matrix with its entries shuffled), kept on disk; computed in a worker
    on a first visit while the page shows everything else (progress and Cancel drawn here), None meanwhile."""
    spec = randomized_spec(spectra)
    return task_view.watch(
        spec,
        randomized_work(loaded.model, spectra, loaded.device),
        label="Randomized comparison (every matrix shuffled; kept on disk)",
        failure="The randomized comparison failed. Switch it off and on to retry, or try the CPU device.",
        key="weights_randomized",
    )


def _name(spectra: WeightSpectra, i: int) -> str:
    """``L3 attention W_Q``, or the parameter's name outside the blocks."""
    layer = int(spectra.layers[i])
    return spectra.names[i] if layer < 0 else f"L{layer} {weight_kind_label(spectra.kinds[i])}"


def ww_sentence(spectra: WeightSpectra, randomized: RandomizedSpectra | None, metric: str) -> str:
    """One sentence on what ``metric`` (a key of WW_METRICS) means, with the numbers of this model."""
    values = ww_metric(spectra, randomized, metric)
    finite = np.flatnonzero(np.isfinite(values))
    meaning = WW_METRICS[metric][1]
    if finite.size == 0:
        missing = "once the randomized comparison is in" if randomized is None else "for no matrix"
        return f"{meaning} Values appear {missing}."
    v = values[finite]
    lo, hi = finite[np.argmin(v)], finite[np.argmax(v)]
    span = (
        f"from {values[lo]:.3g} ({_name(spectra, lo)}) to {values[hi]:.3g} ({_name(spectra, hi)}), "
        f"median {np.median(v):.3g} over {finite.size} matrices"
    )
    if metric == "alpha":
        inside = int(((v >= 2) & (v <= 6)).sum())
        return f"{meaning} Here α runs {span}; {inside} of {finite.size} lie in WeightWatcher's 2-6 band."
    if metric == "alpha_hat":
        return (
            f"{meaning} Here α̂ runs {span}; its mean {v.mean():.3g} is WeightWatcher's model score (lower "
            "went with better models of one family in Martin, Peng & Mahoney 2021)."
        )
    if metric == "log_norm":
        return f"{meaning} Here it runs {span}: ‖W‖_F² = 10^{values[hi]:.2f} at most."
    if metric == "log_spectral_norm":
        return f"{meaning} Here it runs {span}: the largest σ₁ is {10 ** (values[hi] / 2):.3g}."
    if metric == "stable_rank":
        return f"{meaning} Here it runs {span}: the median matrix holds that many times σ₁² in Σσᵢ²."
    if metric == "rand_distance":
        return f"{meaning} Here it runs {span}; the farthest from its shuffle is {_name(spectra, hi)}."
    trapped = finite[v > 0]
    if trapped.size == 0:
        return (
            f"{meaning} Here no matrix of {finite.size} has one: every shuffled spectrum stays in the bulk."
        )
    worst = trapped[np.argsort(-values[trapped])][:3]
    listed = ", ".join(f"{_name(spectra, i)} ({values[i]:.0f})" for i in worst)
    return (
        f"{meaning} Here {trapped.size} of {finite.size} matrices have traps, {int(v.sum())} in all; "
        f"most: {listed}."
    )


@st.cache_resource(max_entries=4, show_spinner="Computing the QK and OV circuits of every head…")
def cached_circuits(model_key: ModelChoice) -> CircuitSpectra:
    loaded = cached_model(model_key)
    card = loaded.card
    return circuit_spectra(loaded.model, card.n_layers, card.n_heads, card.n_kv_heads)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_attention_gershgorin(
    model_key: ModelChoice, text_key: TextChoice, layer: int, head: int
) -> GershgorinResult:
    """Discs of attention head (layer, head) of the capture of ``text``."""
    cap = cached_capture(model_key, text_key)
    return analyse_gershgorin(np.asarray(cap.attentions[layer, head], dtype=np.float64))


@st.cache_data(max_entries=16, show_spinner=False)
def cached_ov_gershgorin(model_key: ModelChoice, layer: int, head: int) -> GershgorinResult:
    """Discs of the OV core W_O^h W_V^h (d_head x d_head) of one head."""
    loaded = cached_model(model_key)
    card = loaded.card
    return analyse_gershgorin(ov_core_matrix(loaded.model, layer, head, card.n_heads, card.n_kv_heads))


@st.cache_data(max_entries=32, show_spinner=False)
def cached_matrix_gershgorin(matrix: np.ndarray) -> GershgorinResult:
    return analyse_gershgorin(matrix)
