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
from explorer.analysis.weights import WeightSpectra, WeightSpectraSpec, compute_weight_spectra, with_origin
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
