"""Compare mode of the logit lens page: model A (loaded) against a variant B named by ``vs=`` in the link (the
same box and the same built variant as the weights, circuits and attention pages). Per layer, the mean KL(A ‖ B)
of the lens distributions and the top-1 agreement, as lines over the layers; the comparison runs as a task
(LensComparisonSpec keyed by B's VariantSpec and the text choice) with progress; the page only calls ``draw``."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis.lens_compare import LensComparison, LensComparisonSpec, compare_lens
from explorer.figures.lens_compare import make_lens_compare_figure
from explorer.models import Capture, LoadedModel
from explorer.ui.head_compare import CompareTask, compared

TASK = CompareTask(
    LensComparisonSpec,
    "The lens of A and of B, layer by layer",
    "Comparing the lens of A and B failed. Reload the page to retry",
    "lens_vs_task",
)


def lens_sentence(comparison: LensComparison) -> str:
    """What the lines say, from the data: the last layer (the outputs) and the layer that differs most."""
    kl, agree = comparison.mean_kl, comparison.top1_agreement
    worst = int(np.argmax(kl))
    return (
        f"Last layer (the models' own outputs): mean KL(A ‖ B) {kl[-1]:.3g} nats, same top-1 token at "
        f"{agree[-1]:.1%} of the {comparison.kl.shape[1]} positions. Largest mean KL at layer {worst} "
        f"({kl[worst]:.3g} nats); lowest agreement {agree.min():.1%} (layer {int(np.argmin(agree))})."
    )


def draw(sel, loaded: LoadedModel, cap: Capture, key: str) -> None:
    """The compare section for B = ``key`` (canonical): everything below the "Compare with" box."""
    comparison = compared(
        sel,
        loaded,
        key,
        TASK,
        lambda variant, progress: compare_lens(loaded, variant.loaded(loaded), cap.token_ids, progress),
    )
    if comparison is None:
        return
    if comparison.unchanged:
        st.info(
            "No change: at every layer and position B's lens reads exactly A's distribution (KL 0, the same "
            "top-1 token).",
            icon=":material/info:",
        )
    st.plotly_chart(make_lens_compare_figure(comparison), width="stretch", key="lens_vs_lines")
    st.caption(
        lens_sentence(comparison) + " KL(A ‖ B) = Σ_v p_A log(p_A / p_B) over the vocabulary, each model's "
        "residual read through its own final norm and unembedding; averaged over every position of the text."
    )
