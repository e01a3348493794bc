"""What a page asks for: the loaded model and the capture of the current text, or a clear message."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis.generation import generated_mask
from explorer.errors import ExplorerError
from explorer.figures.tokens import mark_generated
from explorer.models import Capture, LoadedModel
from explorer.models.catalogue import CATALOGUE
from explorer.ui.cache import cached_capture, cached_model
from explorer.ui.sidebar import Selection, draw_deferred, render_sidebar
from explorer.ui.state import open_link_notices
from explorer.ui.streamlit_internals import leave_legacy_pages_mode


def selection() -> Selection:
    """The sidebar's selection. A page reached without the entry script (Streamlit's legacy multipage mode on
    the first visit to a server started with plain `streamlit run`, or `streamlit run pages/x.py`) reruns
    through the entry script, or failing that draws the sidebar itself."""
    if "selection" not in st.session_state:
        leave_legacy_pages_mode()
        open_link_notices("")  # the entry script did not run: the notice goes at the top of this page
        return render_sidebar()
    return st.session_state["selection"]


def _loading_message(model_id: str) -> str:
    spec = CATALOGUE.get(model_id)
    message = f"Loading {spec.label if spec else model_id}…"
    quant = spec.quantization if spec else None
    if quant is not None:
        message += (
            f" The very first load de-quantizes the {quant.bits}-bit {quant.container} and saves it to the "
            f"cache (about {quant.first_load_seconds} s); later loads take about a second."
        )
    return message


def require_model() -> LoadedModel:
    """The selected model, loaded and cached; on failure show what to do and stop this page."""
    sel = selection()
    try:
        with st.spinner(_loading_message(sel.model_id)):
            loaded = cached_model(sel.model_key)
    except ExplorerError as err:
        st.error(str(err), icon=":material/error:")
        st.stop()
    draw_deferred()  # the sidebar's cost caption needed this load; drawn now, before the page may stop
    return loaded


def require_capture(single_token: str | None = None) -> tuple[LoadedModel, Capture]:
    """Model and capture of the sidebar text; shows truncation notes; stops the page with a message on bad input.

    ``single_token``: a page that needs two tokens or more says this (what a 1 x 1 attention means for it) and
    stops when the text is a single token."""
    loaded = require_model()
    sel = selection()
    try:
        with st.spinner("Running the model on the text…"):
            cap = cached_capture(sel.model_key, sel.text_key)
    except ExplorerError as err:
        st.error(str(err), icon=":material/error:")
        st.stop()
    for message in cap.messages:
        st.info(message, icon=":material/content_cut:")
    if single_token is not None and cap.n_tokens < 2:
        st.warning(f"The text is a single token: {single_token} Add some words in the sidebar.")
        st.stop()
    return loaded, cap


def token_labels(cap: Capture, sel: Selection | None = None) -> list[str]:
    """The capture's axis labels (Capture.labels), with figures.tokens.GENERATED_MARK after each token the model
    wrote when the sidebar asked for a continuation (``sel``: the sidebar's selection by default)."""
    sel = selection() if sel is None else sel
    generated = None if sel.prompt_ids is None else generated_mask(cap.token_ids, np.asarray(sel.prompt_ids))
    return mark_generated(cap.labels(), generated)
