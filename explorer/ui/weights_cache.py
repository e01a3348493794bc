"""Cached, progress-reporting wrappers for the weight pages (weights, circuits, Gershgorin).

Weight spectra take seconds the first time, so they run as a background job (explorer/ui/jobs.py, keyed
by the model key): a second browser session that arrives mid-computation watches the same job instead of
starting another one, and later visits find it finished. Below that, ``analysis.weights`` keeps the result
on disk, so a new process reads it back in well under a second.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis.circuits import CircuitSpectra, circuit_spectra, ov_core_matrix
from explorer.analysis.weights import WeightSpectra, weight_spectra
from explorer.models import LoadedModel
from explorer.models.choice import ModelChoice, TextChoice
from explorer.spectra.gershgorin import GershgorinResult, analyse_gershgorin
from explorer.ui import jobs
from explorer.ui.cache import cached_capture, cached_model


def weight_spectra_with_progress(model_key: ModelChoice, loaded: LoadedModel) -> WeightSpectra:
    """The model's weight spectra, drawing a progress bar while the first computation runs.

    Stops the page with an st.error if the computation failed (the next visit retries)."""
    job = jobs.board("weight-spectra", max_finished=4).submit(
        model_key,
        lambda job: weight_spectra(loaded.model, device=loaded.device, progress=job.report),
        label="weight spectra",
    )
    return jobs.result_with_progress(
        job,
        "Weight spectra (first visit for this model)",
        failure="Computing the weight spectra failed. Reload the page to retry; if it fails again, try the CPU "
        "device in the sidebar.",
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
