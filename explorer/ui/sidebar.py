"""The sidebar shared by every page: model, device, text, and an optional continuation of the text by the model.
In the link: model, text or example, max_tokens, and gen (tokens to generate), gen_mode, gen_temp, gen_top_p,
gen_seed.

With a continuation (causal LMs only), the text every page analyses is the text (cut to max tokens) followed by
what the model wrote; ``Selection.prompt_ids`` keeps the prompt's tokens so pages can mark the generated ones
(explorer.analysis.generation.generated_mask).

A text too long for a link is kept on this server and named in the link by its digest (``text=@<16 hex>``,
explorer/ui/text_store.py); the sidebar says so under the text box. Link values it cannot use (an unknown model,
example or stored text, a text over the size limit) are named in the page's link notice (explorer/ui/state.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import streamlit as st

from explorer.analysis.generation import (
    GREEDY,
    MAX_NEW_TOKENS,
    MODES,
    SAMPLED,
    GenerationSettings,
    continue_text,
)
from explorer.errors import ExplorerError
from explorer.models.capture import DEFAULT_MAX_TOKENS
from explorer.models.catalogue import CATALOGUE, DEFAULT_MODEL_ID, PICKER_IDS
from explorer.models.choice import ModelChoice, TextChoice
from explorer.models.device import DTYPES, available_devices
from explorer.texts import DEFAULT_EXAMPLE, EXAMPLE_TITLES, example_name_for, example_texts
from explorer.ui import settings, text_store
from explorer.ui.state import Choice, Float, Int, PageState, incoming, link_notice, write_link

CUSTOM = "__custom__"
# Texts longer than this are not written into the link (URLs get unwieldy): the example name is, when it is one,
# else the text's name on this server (text_store).
MAX_TEXT_IN_URL = 2000
# Up to SmolLM2's whole context; a model is offered the lengths up to its own context (max_positions).
MAX_TOKEN_CHOICES = [64, 128, 256, 512, 1024, 2048, 4096, 8192]


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
    # A continuation by the model: its settings, the prompt's token ids (the analysed text's first tokens) and
    # the text as typed (``text`` is then prompt + continuation). Defaults: no continuation.
    generation: GenerationSettings = GenerationSettings()
    prompt_ids: tuple[int, ...] | None = None
    prompt_text: str | None = None

    @property
    def generated_tokens(self) -> bool:
        """True when ``text`` ends with a continuation written by the model."""
        return self.prompt_ids is not None

    @property
    def model_key(self) -> ModelChoice:
        """What model-level caches are keyed by (ui.cache.cached_model's argument)."""
        return ModelChoice(**{f.name: getattr(self, f.name) for f in fields(ModelChoice)})

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
GEN_TOKENS = Int("gen", 0, 0, MAX_NEW_TOKENS, key="gen_tokens")
GEN_MODE = Choice("gen_mode", GREEDY, MODES)
GEN_TEMPERATURE = Float("gen_temp", 1.0, 0.05, 5.0, digits=2)
GEN_TOP_P = Float("gen_top_p", 1.0, 0.05, 1.0, digits=2)
GEN_SEED = Int("gen_seed", 0, 0, 2**31 - 1)


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


_DEFERRED = "_sidebar_deferred"


def _defer(draw: Callable[[], None]) -> None:
    """Keep ``draw`` (which fills a slot the sidebar left) for draw_deferred. The cost estimate needs the loaded
    model: drawn once the page has loaded it (session.require_model) or after the page, the sidebar never waits
    for a load."""
    st.session_state[_DEFERRED] = draw


def draw_deferred() -> None:
    """Fill the sidebar's slot kept by _defer, once: from session.require_model right after the page's model
    load, and from the entry script after the page for a page that loads none (after st.stop nothing more can
    be drawn). A failure is left to the page, which loads the same model and says what went wrong."""
    draw = st.session_state.pop(_DEFERRED, None)
    if draw is not None:
        try:
            draw()
        except Exception:  # noqa: BLE001 (never a second message for the page's one; control flow passes)
            pass


def render_sidebar() -> Selection:
    """Draw the shared sidebar and return the current selection (also kept in session_state.selection)."""
    st.session_state.pop(_DEFERRED, None)
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
            model_key = ModelChoice(model_id, device=device, dtype=dtype,
                                    trust_remote_code=bool(trust_remote_code) and allow_external,
                                    allow_pickle=bool(allow_pickle) and allow_external,
                                    allow_external=allow_external)  # fmt: skip
            context = _model_context(model_key)
            max_tokens = SIDEBAR.select_slider(
                max_tokens_setting(context),
                "Max tokens",
                help="Longer texts are cut to this many tokens (and the page says so). Lengths up to the "
                "model's context are offered; past 512 tokens on SmolLM2 the attention is reduced layer by layer "
                "as the model runs and one layer is recomputed when a page shows it (the estimate below says "
                "what a length costs).",
            )
            if context is not None:
                _defer(functools.partial(_cost_caption, st.empty(), model_key, int(max_tokens)))
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
        generation_settings = _generation_controls()
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
    if generation_settings.active:
        selection = _with_continuation(selection, generation_settings)
    state.selection = selection
    # The model is always written: a link without it would open whatever the default model is by then.
    write_link("model", selection.model_id or None)
    write_link("example", None if example == DEFAULT_EXAMPLE else example)
    write_link("text", text_param)
    return selection


def token_choices(context: int | None) -> list[int]:
    """The max-tokens lengths offered for a model with ``context`` positions (all of them when unknown)."""
    if context is None:
        return list(MAX_TOKEN_CHOICES)
    # A context that is not one of the lengths (a tiny model's 128 is; a custom model's 1,000 is not) is offered
    # too, so the whole context stays reachable.
    fits = [n for n in MAX_TOKEN_CHOICES if n <= context]
    return fits + [context] if context < MAX_TOKEN_CHOICES[-1] and context not in fits else fits


def _model_context(model_key: ModelChoice) -> int | None:
    """The model's context length (max_positions): from its config where that can be read without loading a
    weight (the sidebar is drawn before the page, so a load here would hold back the whole first paint), else
    from the loaded model; None when it does not load (the page says why)."""
    from explorer.models.loading import context_length
    from explorer.ui.cache import cached_model  # here: explorer.ui.cache imports heavy modules

    if not model_key.model_id:
        return None
    if model_key.allow_external or model_key.model_id in CATALOGUE:
        context = context_length(model_key.model_id, trust_remote_code=model_key.trust_remote_code)
        if context is not None:
            return context
    try:
        with st.spinner(f"Loading {model_key.model_id}…"):
            return int(cached_model(model_key).card.max_positions)
    except Exception:  # noqa: BLE001 (any load failure: the page loads it again and says why)
        return None


def max_tokens_setting(context: int | None) -> Choice:
    """The max-tokens setting for a model with ``context`` positions: its lengths (token_choices), and as default
    the usual DEFAULT_MAX_TOKENS or the longest offered when the context is shorter. A link's longer value is
    not offered: the link notice says so and the default is used."""
    choices = token_choices(context)
    return replace(MAX_TOKENS, default=min(MAX_TOKENS.default, choices[-1]), choices=tuple(choices))


def _cost_caption(slot, model_key: ModelChoice, max_tokens: int) -> None:
    """What the chosen length costs (an estimate from explorer.analysis.attention_long's cost model), when a
    capture at that length takes longer than a moment; drawn into ``slot`` after the page (see _defer)."""
    from explorer.ui.cache import capture_cost

    cost = capture_cost(model_key, max_tokens)
    if cost.long or cost.seconds > 1:
        slot.caption(f":material/timer: At {max_tokens:,} tokens, {cost.describe()}.")


def _link_text(text: str) -> tuple[str | None, str | None]:
    """How the link names ``text``: (example name, None) for an example, else (None, the text itself), or for a
    text over MAX_TEXT_IN_URL characters (None, ``@<digest>``) with the text kept on this server."""
    example = example_name_for(text)
    if example is not None:
        return example, None
    if len(text) <= MAX_TEXT_IN_URL:
        return None, text
    return None, text_store.store(text)


def _generation_controls() -> GenerationSettings:
    """The "continue the text" controls (in the link: gen, gen_mode, gen_temp, gen_top_p, gen_seed); the
    sampling settings are drawn, and linked, only when sampling."""
    with st.expander("Continue the text (generate)", expanded=bool(SIDEBAR.bind(GEN_TOKENS))):
        n_new = SIDEBAR.number_input(
            GEN_TOKENS,
            "Continue the text by N tokens",
            step=8,
            help="The model writes N more tokens after the text (cut to max tokens) and every page analyses "
            "text + continuation, with the generated tokens marked. 0 = off. Causal LMs only: an encoder "
            "such as MiniLM cannot write.",
        )
        if not n_new:
            for setting in (GEN_MODE, GEN_TEMPERATURE, GEN_TOP_P, GEN_SEED):
                SIDEBAR.bind(setting, link=False)
            return GenerationSettings()
        mode = SIDEBAR.radio(GEN_MODE, "Decoding", format_func=MODES.get, horizontal=True)
        if mode != SAMPLED:
            for setting in (GEN_TEMPERATURE, GEN_TOP_P, GEN_SEED):
                SIDEBAR.bind(setting, link=False)
            return GenerationSettings(int(n_new), GREEDY)
        temperature = SIDEBAR.slider(
            GEN_TEMPERATURE,
            "Temperature",
            step=0.05,
            help="Logits are divided by it: < 1 sharper, > 1 flatter.",
        )
        top_p = SIDEBAR.slider(
            GEN_TOP_P,
            "Top-p",
            step=0.05,
            help="Sample only from the most likely tokens whose mass reaches p.",
        )
        seed = SIDEBAR.number_input(GEN_SEED, "Seed", step=1, help="The same seed gives the same tokens.")
        return GenerationSettings(int(n_new), SAMPLED, float(temperature), float(top_p), int(seed))


@st.cache_data(max_entries=16, show_spinner=False)
def _cached_generation(model_key: ModelChoice, text_key: TextChoice, settings: GenerationSettings):
    """(prompt ids, generation, prompt text, continuation text, the model's context length): the text cut as
    pages cut it, and the model's continuation of it."""
    from explorer.ui.cache import cached_model  # here: explorer.ui.cache imports heavy modules

    loaded = cached_model(model_key)
    prompt_ids, generation, prompt_text, continuation = continue_text(
        loaded, text_key.text, text_key.max_tokens, settings
    )
    return prompt_ids, generation, prompt_text, continuation, loaded.card.max_positions


def _with_continuation(selection: Selection, settings: GenerationSettings) -> Selection:
    """The selection with the model's continuation appended to its text; unchanged (with a note in the sidebar
    saying why) for an encoder, a model that does not load, or a text the model cannot take."""
    from explorer.ui.cache import cached_model

    try:
        with st.spinner(f"Loading {selection.model_id}…"):
            loaded = cached_model(selection.model_key)
    except ExplorerError:
        return selection  # the page says why the model does not load
    if not loaded.causal:
        st.sidebar.caption(
            f":material/block: {loaded.card.id} is an encoder without a language-model head: it cannot continue "
            "the text, so the text is analysed as typed."
        )
        return selection
    try:
        with st.spinner(f"Generating {settings.describe()}…"):
            prompt_ids, generation, prompt_text, continuation, limit = _cached_generation(
                selection.model_key, selection.text_key, settings
            )
    except ExplorerError as err:
        st.sidebar.warning(f"No continuation: {err}", icon=":material/edit_off:")
        return selection
    n_new = generation.n_generated
    st.sidebar.caption(
        f":material/edit_note: Analysing the text ({len(prompt_ids):,} tokens) and its continuation by the "
        f"model: {n_new} token{'s' if n_new != 1 else ''}, "
        f"{'greedy' if settings.mode == GREEDY else 'sampled'}"
        + (" (the model ended its text early)" if generation.stopped_early else "")
        + f". Every page marks the generated tokens ✦ on its token axes. Continuation: “{continuation.strip()[:300]}”"
    )
    return replace(
        selection,
        text=prompt_text + continuation,
        max_tokens=int(limit),
        generation=settings,
        prompt_ids=prompt_ids,
        prompt_text=selection.text,
    )
