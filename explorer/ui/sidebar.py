"""The sidebar shared by every page: model, device, text. In the link: model, text or example, max_tokens.

A text too long for a link is kept on this server and named in the link by its digest (``text=@<16 hex>``,
explorer/ui/text_store.py); the sidebar says so under the text box. Link values it cannot use (an unknown model,
example or stored text, a text over the size limit) are named in the page's link notice (explorer/ui/state.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from explorer.models.capture import DEFAULT_MAX_TOKENS
from explorer.models.catalogue import CATALOGUE, DEFAULT_MODEL_ID, PICKER_IDS
from explorer.models.choice import ModelChoice, TextChoice
from explorer.models.device import DTYPES, available_devices
from explorer.texts import DEFAULT_EXAMPLE, EXAMPLE_TITLES, example_name_for, example_texts
from explorer.ui import settings, text_store
from explorer.ui.state import Choice, PageState, incoming, link_notice, write_link

CUSTOM = "__custom__"
# Texts longer than this are not written into the link (URLs get unwieldy): the example name is, when it is one,
# else the text's name on this server (text_store).
MAX_TEXT_IN_URL = 2000
MAX_TOKEN_CHOICES = [64, 128, 256, 512, 1024]


@dataclass(frozen=True)
class Selection:
    """What every page analyses: the model (and how to load it) and the text."""

    model_id: str
    device: str
    dtype: str
    trust_remote_code: bool
    allow_pickle: bool
    allow_external: bool
    text: str
    max_tokens: int

    @property
    def model_key(self) -> ModelChoice:
        """What model-level caches are keyed by (ui.cache.cached_model's argument)."""
        return ModelChoice(
            self.model_id,
            device=self.device,
            dtype=self.dtype,
            trust_remote_code=self.trust_remote_code,
            allow_pickle=self.allow_pickle,
            allow_external=self.allow_external,
        )

    @property
    def text_key(self) -> TextChoice:
        """What text-level caches are keyed by, with the model key (ui.cache.cached_capture's second argument)."""
        return TextChoice(self.text, self.max_tokens)


def default_model_key() -> ModelChoice:
    """The model key of a first visit with no model in the link: what the widgets below default to (the first
    device and dtype options, no remote code or pickle). The server's warm-up loads this one."""
    return ModelChoice(
        DEFAULT_MODEL_ID,
        device="auto",
        dtype=next(iter(DTYPES)),
        trust_remote_code=False,
        allow_pickle=False,
        allow_external=settings.allow_external_models(),
    )


SIDEBAR = PageState("sidebar", every_page=True)
MAX_TOKENS = Choice("max_tokens", DEFAULT_MAX_TOKENS, MAX_TOKEN_CHOICES)


def _model_from_link() -> None:
    """Set the model picker from the link when the link brings one (a session's first run, an edited link)."""
    state = st.session_state
    model = incoming("model", "sidebar_model")
    if model is None:
        if "sidebar_model" not in state:
            state.sidebar_model = DEFAULT_MODEL_ID
        return
    if model in PICKER_IDS:
        state.sidebar_model = model
    elif settings.allow_external_models() and model:
        state.sidebar_model = CUSTOM
        state.sidebar_model_path = model
    else:
        state.sidebar_model = DEFAULT_MODEL_ID
        if model:
            _note(
                "model",
                f"model '{model}' is not available here; showing {DEFAULT_MODEL_ID}",
                DEFAULT_MODEL_ID,
            )


def _note(param: str, text: str, shows: str) -> None:
    """A sidebar link value replaced: named in the link notice until the reader changes that widget."""
    key = "sidebar_model" if param == "model" else "sidebar_text"
    link_notice(text, key=key, shows=shows, every_page=True, about=param)


def _example_title(name: str) -> str:
    return f"the {EXAMPLE_TITLES.get(name, name)!r} example"


def _text_from_link() -> None:
    """Set the text from the link's ``text`` (or else its ``example`` name) when the link brings one."""
    state = st.session_state
    examples = example_texts()
    default = examples.get(DEFAULT_EXAMPLE, "")
    text = incoming("text", "sidebar_text")
    example = incoming("example", "sidebar_text")
    digest = text_store.digest_of(text) if text else None
    if digest is not None:
        text = text_store.load(digest)
        if text is None:
            state.sidebar_text = default
            _note(
                "text",
                f"text @{digest} is not kept on this server (a link from another server, or its cache was "
                f"cleaned); showing {_example_title(DEFAULT_EXAMPLE)}",
                default,
            )
            return
    if text:
        limit = settings.max_text_chars()
        state.sidebar_text = text[:limit]
        if len(text) > limit:
            _note(
                "text",
                f"text has {len(text):,} characters, more than this server takes; showing the first {limit:,}",
                state.sidebar_text,
            )
    elif example in examples:
        state.sidebar_text = examples[example]
    elif "sidebar_text" not in state:
        state.sidebar_text = default
    if example is not None and example not in examples:
        if text:
            shown = "the link's text"
        elif state.sidebar_text == default:
            shown = _example_title(DEFAULT_EXAMPLE)
        else:
            shown = "the text already here"
        _note(
            "example",
            f"example '{example}' is not one of {', '.join(examples)}; showing {shown}",
            state.sidebar_text,
        )


def _load_example() -> None:
    name = st.session_state.get("sidebar_example")
    if name in example_texts():
        st.session_state.sidebar_text = example_texts()[name]


def render_sidebar() -> Selection:
    """Draw the shared sidebar and return the current selection (also kept in session_state.selection)."""
    _model_from_link()
    _text_from_link()
    state = st.session_state
    allow_external = settings.allow_external_models()
    with st.sidebar:
        options = list(PICKER_IDS) + ([CUSTOM] if allow_external else [])
        if state.sidebar_model not in options:  # a custom path from an earlier run, external models now off
            state.sidebar_model = DEFAULT_MODEL_ID
        st.selectbox(
            "Model",
            options,
            options.index(state.sidebar_model),
            key="sidebar_model",
            format_func=lambda mid: "Local folder or hub id…" if mid == CUSTOM else CATALOGUE[mid].label,
            help="SmolLM2 (causal) and MiniLM (encoder) ship with the app; tiny random models are for tests.",
        )
        model_id = state.sidebar_model
        if model_id == CUSTOM:
            model_id = st.text_input(
                "Model folder or hub id",
                state.get("sidebar_model_path", ""),
                key="sidebar_model_path",
                placeholder="/path/to/saved_model  or  org/name",
                help="A folder written by save_pretrained (config.json + safetensors), or a hub id (needs internet).",
            ).strip()
        with st.expander("Device and loading", expanded=False):
            device = st.selectbox(
                "Device",
                ["auto", *available_devices()],
                key="sidebar_device",
                help="auto picks cuda, then mps, then cpu.",
            )
            dtype = st.selectbox(
                "Weights dtype",
                list(DTYPES),
                key="sidebar_dtype",
                help="float32 is exact for the maths; half precision saves memory on GPUs.",
            )
            max_tokens = SIDEBAR.select_slider(
                MAX_TOKENS,
                "Max tokens",
                help="Longer texts are cut to this many tokens (and the page says so).",
            )
            trust_remote_code = st.checkbox(
                "Trust remote code",
                key="sidebar_trust_remote_code",
                disabled=not allow_external,
                help="Runs Python code from the model's repository. Leave off unless you trust its authors.",
            )
            allow_pickle = st.checkbox(
                "Allow pickle weights (*.bin)",
                key="sidebar_allow_pickle",
                disabled=not allow_external,
                help="Pickle files can run arbitrary code when loaded; safetensors are always preferred.",
            )
        st.divider()
        examples = example_texts()
        st.selectbox(
            "Example text",
            list(examples),
            index=None,
            key="sidebar_example",
            placeholder="Load an example…",
            format_func=lambda name: EXAMPLE_TITLES.get(name, name),
            on_change=_load_example,
        )
        text = st.text_area(
            "Text",
            state.sidebar_text,
            key="sidebar_text",
            height=180,
            max_chars=settings.max_text_chars(),
            help="Press Ctrl+Enter (or click outside) to analyse the new text.",
        )
        example, text_param = _link_text(text or "")
        if text_param is not None and text_store.digest_of(text_param) is not None:
            st.caption(
                f"This text ({len(text):,} characters) is too long for a link: the link names it "
                f"`{text_param}` and carries it only on this server.",
                help="The text is kept in this server's cache; a link opened on another server, or after the "
                "cache is cleaned, shows the default text and says so.",
            )

    selection = Selection(
        model_id=model_id,
        device=device,
        dtype=dtype,
        trust_remote_code=bool(trust_remote_code) and allow_external,
        allow_pickle=bool(allow_pickle) and allow_external,
        allow_external=allow_external,
        text=text or "",
        max_tokens=int(max_tokens),
    )
    state.selection = selection
    # The model is always written: a link without it would open whatever the default model is by then.
    write_link("model", selection.model_id or None)
    write_link("example", None if example == DEFAULT_EXAMPLE else example)
    write_link("text", text_param)
    return selection


def _link_text(text: str) -> tuple[str | None, str | None]:
    """How the link names ``text``: (example name, None) for an example, else (None, the text itself), or for a
    text over MAX_TEXT_IN_URL characters (None, ``@<digest>``) with the text kept on this server."""
    example = example_name_for(text)
    if example is not None:
        return example, None
    if len(text) <= MAX_TEXT_IN_URL:
        return None, text
    return None, text_store.store(text)
