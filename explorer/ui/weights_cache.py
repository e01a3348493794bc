"""Cached, progress-reporting wrappers for the weight pages (weights, circuits, Gershgorin).

Weight spectra take seconds the first time, so they run as a background job that the page polls to draw
a progress bar. The job itself is the st.cache_resource entry (keyed by the model key tuple): a second
browser session that arrives mid-computation waits on the same job instead of starting another one, and
later visits find it finished. (A progress callback inside a cached function cannot draw on the page:
Streamlit would record those calls for replay.) Below that, ``analysis.weights`` keeps the result on
disk, so a new process reads it back in well under a second.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from explorer.analysis.circuits import CircuitSpectra, circuit_spectra, ov_core_matrix
from explorer.analysis.weights import WeightSpectra, weight_spectra
from explorer.models import LoadedModel
from explorer.spectra.gershgorin import GershgorinResult, analyse_gershgorin
from explorer.ui.cache import cached_capture, cached_model


@dataclass
class _Job:
    """A computation running in a worker thread. ``fraction``/``message`` are written by the worker only."""

    fraction: float = 0.0
    message: str = "Starting…"
    result: WeightSpectra | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def update(self, fraction: float, message: str) -> None:
        self.fraction, self.message = float(fraction), message


def _run(job: _Job, loaded: LoadedModel) -> None:
    try:
        job.result = weight_spectra(loaded.model, device=loaded.device, progress=job.update)
    except Exception as err:  # shown on the page; the job is then dropped so a rerun can retry
        job.error = err
    finally:
        job.done.set()


@st.cache_resource(max_entries=4, show_spinner=False)
def _weights_job(model_key: tuple, _loaded: LoadedModel) -> _Job:
    job = _Job()
    threading.Thread(target=_run, args=(job, _loaded), name="weight-spectra", daemon=True).start()
    return job


def weight_spectra_with_progress(model_key: tuple, loaded: LoadedModel) -> WeightSpectra:
    """The model's weight spectra, drawing a progress bar while the first computation runs.

    Stops the page with an st.error if the computation failed."""
    job = _weights_job(model_key, loaded)
    if not job.done.is_set():
        slot = st.empty()
        while not job.done.wait(timeout=0.25):
            slot.progress(job.fraction, text=f"Weight spectra (first visit for this model): {job.message}")
        slot.empty()
    if job.error is not None or job.result is None:
        _weights_job.clear()
        st.error(
            f"Computing the weight spectra failed: {job.error}. Reload the page to retry; if it fails again, "
            "try the CPU device in the sidebar.",
            icon=":material/error:",
        )
        st.stop()
    return job.result


@st.cache_resource(max_entries=4, show_spinner="Computing the QK and OV circuits of every head…")
def cached_circuits(model_key: tuple) -> CircuitSpectra:
    loaded = cached_model(*model_key)
    card = loaded.card
    return circuit_spectra(loaded.model, card.n_layers, card.n_heads, card.n_kv_heads)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_attention_gershgorin(
    model_key: tuple, text: str, max_tokens: int, layer: int, head: int
) -> GershgorinResult:
    """Discs of attention head (layer, head) of the capture of ``text``."""
    cap = cached_capture(model_key, text, max_tokens)
    return analyse_gershgorin(np.asarray(cap.attentions[layer, head], dtype=np.float64))


@st.cache_data(max_entries=16, show_spinner=False)
def cached_ov_gershgorin(model_key: tuple, layer: int, head: int) -> GershgorinResult:
    """Discs of the OV core W_O^h W_V^h (d_head x d_head) of one head."""
    loaded = cached_model(*model_key)
    card = loaded.card
    return analyse_gershgorin(ov_core_matrix(loaded.model, layer, head, card.n_heads, card.n_kv_heads))


@st.cache_data(max_entries=32, show_spinner=False)
def cached_matrix_gershgorin(matrix: np.ndarray) -> GershgorinResult:
    return analyse_gershgorin(matrix)
