"""Home: what the tool is, what each page shows, the model card and the text as tokens."""

import html

import streamlit as st

from explorer.figures.tokens import make_surprisal_figure
from explorer.ui.navigation import PAGES
from explorer.ui.session import require_capture, token_labels

st.title("eigen-explorer")
st.markdown(
    "See the **spectral structure** of a transformer language model: the eigenvalues and eigenvectors of its "
    "attention, the singular values of its weights, its circuits and hidden-state directions, and what "
    "compressing it costs. Pick a model and a text in the sidebar; every page analyses that pair."
)
page_columns = st.columns(2)
for i, page in enumerate(p for p in PAGES if p.path != "pages/home.py"):
    with page_columns[i % 2]:
        # A page link is one line and cuts long labels: the summary goes below it, where it wraps.
        st.page_link(page.file, label=f"**{page.title}**", icon=page.icon)
        st.caption(page.summary)

loaded, cap = require_capture()
card = loaded.card

st.subheader("Model card")
st.caption(f"`{card.id}` · {card.architecture}")
cols = [*st.columns(3), *st.columns(3)]
cols[0].metric("Layers", card.n_layers)
cols[1].metric("Heads", card.n_heads, help="Query heads per layer.")
cols[2].metric(
    "KV heads",
    card.n_kv_heads,
    help="Key/value heads per layer; fewer than query heads means grouped-query attention.",
)
cols[3].metric("d_model", card.d_model, help=f"Head dimension d_head = {card.d_head}.")
cols[4].metric("Parameters", f"{card.n_params / 1e6:.1f} M")
cols[5].metric(
    "Attention",
    "causal" if card.causal else "bidirectional",
    help="Causal: each token attends only to itself and earlier tokens (lower-triangular matrices).",
)
st.caption(
    f"Device **{loaded.device}** · dtype **{loaded.dtype}** · loaded in **{loaded.load_seconds:.2f} s** · "
    f"max positions {card.max_positions:,} · vocabulary {card.vocab_size:,}"
)
for note in loaded.notes:
    st.info(note, icon=":material/info:")

st.subheader(f"The text as the model's {cap.n_tokens} tokens")
chips = " ".join(
    f'<span title="position {i} · id {int(tid)} · {html.escape(tok)}" style="display:inline-block;margin:2px;'
    f"padding:1px 5px;border-radius:4px;background:{'#e7ecfb' if i % 2 else '#fdf0dc'};font-family:monospace;"
    f'white-space:pre">{html.escape(text)}</span>'
    for i, (text, tok, tid) in enumerate(zip(cap.token_texts, cap.tokens, cap.token_ids, strict=True))
)
st.markdown(f'<div style="line-height:2">{chips}</div>', unsafe_allow_html=True)
st.caption("Hover a token for its position, id and the tokenizer's own spelling (Ġ marks a leading space).")

if cap.token_losses is not None and cap.token_losses.size:
    st.metric(
        "Perplexity on this text",
        f"{cap.perplexity:,.1f}",
        help="exp(mean next-token loss); lower means the model finds the text more predictable.",
    )
    st.plotly_chart(
        make_surprisal_figure(token_labels(cap), cap.token_losses), width="stretch", key="home_surprisal"
    )
