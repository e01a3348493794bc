"""Gershgorin discs: where the eigenvalues must lie, beside where they are."""

import numpy as np
import streamlit as st

from explorer.errors import InputError
from explorer.figures.gershgorin import make_gershgorin_figure
from explorer.matrix_text import format_matrix, parse_matrix
from explorer.ui.session import require_capture, require_model, selection, token_labels
from explorer.ui.state import Choice, Flag, PageState, Text, drop_from_link, head_picker
from explorer.ui.weights_cache import (
    cached_attention_gershgorin,
    cached_matrix_gershgorin,
    cached_ov_gershgorin,
)

SOURCES = {
    "attention": "Attention head (current text)",
    "ov": "OV circuit core of a head (d_head × d_head)",
    "matrix": "A small matrix typed by hand",
}
EXAMPLE = "4 1 0.5\n0.2 -3 1\n1 0.5 8"


def _matrix_to_link(text: str) -> str:
    """A typed matrix in the link: tidied when it parses, as typed when not (the page then says why)."""
    try:
        return format_matrix(parse_matrix(text))
    except InputError:
        return text.strip()


PAGE = PageState("gershgorin")
SOURCE = Choice("source", "attention", SOURCES)
COLUMNS = Flag("discs", False, on="columns", off="rows", key="columns")
MATRIX = Text("matrix", EXAMPLE, to_link=_matrix_to_link)

st.title("Gershgorin discs")
st.markdown(
    r"For a square matrix $A$, row disc $i$ has its centre at the diagonal entry $a_{ii}$ and radius "
    r"$R_i = \sum_{j \ne i} |a_{ij}|$. **Gershgorin's theorem:** every eigenvalue lies in the union of the "
    r"discs (and in the union of the column discs, those of $A^\top$). Stronger: a connected group of $k$ discs "
    r"that touches no other holds exactly $k$ eigenvalues. No eigenvalue needs computing to draw the discs, "
    "which is why they are a cheap first look at a spectrum."
)

source = PAGE.radio(SOURCE, "Matrix", format_func=SOURCES.get, horizontal=True)
columns = PAGE.toggle(
    COLUMNS,
    "Column discs instead of row discs",
    help="Column discs are the row discs of Aᵀ: same eigenvalues, different bounds.",
)
sel = selection()
labels = None
title = None

if source == "matrix":
    drop_from_link("layer", "head")
    typed = PAGE.text_area(
        MATRIX,
        "Matrix (one row per line; entries separated by spaces or commas; complex numbers like 1+2j)",
        height=130,
        help=f"Up to 12×12. Example:\n\n{EXAMPLE}",
    )
    try:
        matrix = parse_matrix(typed)
    except InputError as err:
        st.error(f"{err}", icon=":material/error:")
        st.stop()
    result = cached_matrix_gershgorin(matrix)
    title = f"Gershgorin {'column' if columns else 'row'} discs of the typed {result.n}×{result.n} matrix"
else:
    drop_from_link("matrix")
    if source == "attention":
        loaded, cap = require_capture()
    else:
        loaded = require_model()
    card = loaded.card
    layer, head = head_picker(PAGE, card.n_layers, card.n_heads)
    if source == "attention":
        with st.spinner("Eigenvalues and discs of the attention matrix…"):
            result = cached_attention_gershgorin(sel.model_key, sel.text_key, layer, head)
        labels = token_labels(cap, sel)
        title = (
            f"Attention layer {layer} head {head}: {'column' if columns else 'row'} discs ({result.n} tokens)"
        )
        st.info(
            r"**Why every row disc touches 1.** Each attention row is a probability distribution: "
            r"$a_{ij} \ge 0$ and $\sum_j a_{ij} = 1$. So row disc $i$ has centre $a_{ii}$ and radius "
            r"$R_i = \sum_{j \ne i} a_{ij} = 1 - a_{ii}$; its rightmost point is $a_{ii} + (1 - a_{ii}) = 1$, "
            r"for every row (the dotted line). And 1 is itself an eigenvalue (the all-ones vector: "
            r"$A\mathbf{1} = \mathbf{1}$), the largest in modulus (Perron-Frobenius). A row disc excludes 0 "
            r"(the row is diagonally dominant) exactly when $a_{ii} > \tfrac12$: the token attends mostly to itself.",
            icon=":material/lightbulb:",
        )
        if cap.causal:
            st.info(
                "**Causal model:** the attention matrix is lower-triangular, so its eigenvalues *are* its diagonal "
                r"entries $a_{ii}$: each eigenvalue sits exactly at a disc centre, and the discs add nothing the "
                "diagonal does not already say. The column discs (toggle above) are more telling here: column j "
                "gathers how much later tokens attend to token j, so attention sinks show as huge column discs.",
                icon=":material/arrow_downward:",
            )
    else:
        result = cached_ov_gershgorin(sel.model_key, layer, head)
        title = f"OV core W_O W_V of layer {layer} head {head}: {'column' if columns else 'row'} discs"
        st.caption(
            f"The {result.n}×{result.n} core $W_O^h W_V^h$ has the same nonzero eigenvalues as the head's "
            "d_model × d_model OV circuit $W_V^h W_O^h$. Weight matrices have no stochastic row structure: "
            "their discs are usually wide and overlap into one group."
        )

st.plotly_chart(
    make_gershgorin_figure(
        result, columns=columns, labels=labels, title=title, mark_one=source == "attention" and not columns
    ),
    width="stretch",
    key="gershgorin_discs",
)
st.caption("Zoom with a drag (double-click resets); hover a disc centre for its row, centre and radius.")

word = "column" if columns else "row"
inside = result.inside_cols if columns else result.inside_rows
groups = result.group_summary(columns)
dominant = result.col_dominant if columns else result.row_dominant
cols = st.columns(4)
cols[0].metric(
    "eigenvalues inside the union",
    f"{int(inside.sum())} / {result.n}",
    help="Gershgorin's theorem guarantees all of them (up to rounding).",
)
cols[1].metric(
    "connected groups", len(groups), help="Discs that overlap, directly or through others, form a group."
)
cols[2].metric(
    f"diagonally dominant {word}s",
    f"{int(dominant.sum())} / {result.n}",
    help=f"|a_ii| > R_i: the {word} disc excludes 0.",
)
cols[3].metric("spectral radius max |λ|", f"{np.abs(result.eigvals).max():.4g}")
if inside.all():
    st.success(f"Every eigenvalue lies inside the union of the {word} discs, as the theorem says.")
else:
    st.error(
        f"{int((~inside).sum())} eigenvalue(s) fall outside the {word} discs: a numerical failure of the "
        "eigenvalue solver (the theorem has no exceptions). Please report it with this link."
    )
if dominant.all():
    st.success(
        f"Strictly diagonally dominant by {word}s: 0 lies in no disc, so the matrix is invertible (Lévy-Desplanques)."
    )
else:
    st.caption(
        f"Not strictly diagonally dominant by {word}s: {result.n - int(dominant.sum())} discs contain 0."
    )

st.markdown(f"**Connected groups of {word} discs** (each holds as many eigenvalues as it has discs)")
rows = [
    {
        "group": g_index + 1,
        "discs": g["n_discs"],
        "eigenvalues inside": g["n_eigenvalues"],
        "real extent": f"[{g['real_min']:.3g}, {g['real_max']:.3g}]",
        f"{word}s": ", ".join((labels[i] if labels is not None else str(i)) for i in g["discs"][:12])
        + (" …" if g["n_discs"] > 12 else ""),
    }
    for g_index, g in enumerate(groups)
]
st.dataframe(rows, hide_index=True, width="stretch", key="gershgorin_groups")
