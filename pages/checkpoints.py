"""Checkpoint series: the weight spectra of a training run's checkpoints against the step."""

import streamlit as st

from explorer.analysis.series_demo import LEARNING_RATES, DemoSettings, read_series_loss
from explorer.analysis.weights import METRICS
from explorer.figures.checkpoint_series import (
    make_series_figure,
    make_series_heatmap,
    make_series_loss_figure,
)
from explorer.labels import weight_kind_label
from explorer.ui.series_view import (
    DEMO_LR,
    DEMO_STEPS,
    FOLDER,
    METRIC,
    demo_folder_when_done,
    heatmap_sentence,
    kind_setting,
    lines_sentence,
    loss_sentence,
    request_demo,
    step_setting,
    step_table,
    watch_series,
)
from explorer.ui.session import selection
from explorer.ui.state import PageState, drop_from_link

st.title("Checkpoint series")
st.markdown(
    "A training run's checkpoints read as a series: every weight matrix's power-law exponent **α** (ESD of "
    "WᵀW/N), **α̂** = α·log₁₀σ₁², **stable rank** Σσᵢ²/σ₁² and **spectral norm** σ₁ against the training step. "
    "Each checkpoint is read tensor by tensor from its safetensors files, without loading a model, and its "
    "spectra are kept on disk, so a series that grows re-reads only its new checkpoints."
)

PAGE = PageState("checkpoints")
sel = selection()

with st.expander(f"Make a demo series from the loaded model ({sel.model_id})"):
    st.caption(
        "A copy of the sidebar's model trained a few full-batch Adam steps on the curvature page's loss "
        "(next-token cross-entropy on the sidebar's text for a causal LM; the contrastive loss on the shipped "
        "sentence pairs for an encoder) and saved at every step in the user cache dir. Only the latest demo "
        "is kept on disk: each step is a full copy of the model."
    )
    left, right = st.columns(2)
    steps = PAGE.slider(DEMO_STEPS, "Adam steps", where=left)
    lr = PAGE.select_slider(
        DEMO_LR, "Learning rate", list(LEARNING_RATES), where=right, format_func="{:g}".format
    )
    if st.button("Make a demo series from the loaded model", icon=":material/model_training:"):
        request_demo(sel, DemoSettings(steps=int(steps), lr=float(lr)))
made = demo_folder_when_done()
if made is not None:
    PAGE.set(FOLDER, made)

folder = PAGE.text_input(
    FOLDER,
    "Folder of checkpoints",
    placeholder="/path/to/run (holding checkpoint-500/, checkpoint-1000/, …)",
    help="Sub-folders named checkpoint-N (what a transformers Trainer writes) or with one step number in their "
    "name (step_1200, ckpt-300), each a model saved with save_pretrained (safetensors).",
).strip()
if not folder:
    drop_from_link("metric", "kind", "step")  # nothing to choose them for
    st.info(
        "Give a folder of checkpoints, or make a demo series from the loaded model above.",
        icon=":material/folder_open:",
    )
    st.stop()
series = watch_series(folder)
if series is None:
    st.stop()

cached = int(series.from_cache.sum())
st.caption(
    f"{len(series.steps)} checkpoints of `{series.folder}`, steps {int(series.steps[0])} to "
    f"{int(series.steps[-1])}, {len(series.names)} matrices each; {cached} read from the disk store."
)
for name, why in series.failed.items():
    st.warning(f"Checkpoint **{name}** was left out: {why}", icon=":material/warning:")

loss = read_series_loss(series.folder)
if loss is not None:
    st.subheader("Loss")
    st.plotly_chart(make_series_loss_figure(loss.steps, loss.loss), width="stretch", key="series_loss")
    st.caption(loss_sentence(loss))

st.subheader("Each matrix kind against the step")
metric = PAGE.selectbox(
    METRIC, "Metric", format_func=lambda m: METRICS[m][0], help="Hover a point for its checkpoint."
)
st.plotly_chart(make_series_figure(series, metric), width="stretch", key="series_lines")
st.caption(lines_sentence(series, metric) + " " + METRICS[metric][1])

st.subheader("Every layer against the step")
kind = PAGE.selectbox(kind_setting(series), "Matrix type", format_func=weight_kind_label)
st.plotly_chart(make_series_heatmap(series, metric, kind), width="stretch", key="series_heatmap")
st.caption(heatmap_sentence(series, metric, kind))

st.subheader("One step, every matrix")
step = PAGE.select_slider(step_setting(series), "Step", [int(s) for s in series.steps])
st.dataframe(step_table(series, step), hide_index=True, width="stretch")
