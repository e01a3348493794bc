"""Loss curvature: the Hessian's (or Gauss-Newton's) spectrum of the loaded model, block by block, every
layer at once, and a training what-if against gradient descent's stability limit 2/λ_max. Thin: maths in
explorer.analysis.curvature, tasks and their disk store in explorer.ui.curvature_cache, watching them and drawing a
block's results in explorer.ui.curvature_view, figures in explorer.figures.curvature."""

import streamlit as st

from explorer.errors import ExplorerError
from explorer.figures import curvature as figures
from explorer.spectra.curvature import stability_threshold
from explorer.ui import curvature_cache as cc
from explorer.ui import curvature_text as words
from explorer.ui import curvature_view as view
from explorer.ui.session import require_model, selection
from explorer.ui.state import Choice, Float, Int, PageState

OPERATORS = {"hessian": "Hessian", "gauss-newton": "Gauss-Newton"}
TRACE_METHODS = {"hutchinson": "Hutchinson", "hutch++": "Hutch++"}
OPTIMIZERS = {"gd": "Gradient descent", "adam": "Adam"}
TRAIN_ON = {"block": "The chosen block", "all": "Every parameter"}
ETAS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)

st.title("Loss curvature")
st.caption(
    "How sharply the loss bends around the loaded weights: the eigenvalues of its Hessian H (second "
    "derivatives), found from Hessian-vector products without ever forming H. A few large eigenvalues "
    "(outliers) over a bulk near zero is the usual picture; negative ones are saddle directions. On a "
    "quadratic loss, gradient descent with step η is stable only while η < 2/λ_max. The page starts on one "
    "layer's MLP, which takes under a minute on a CPU; choose **Whole model** for every parameter at once "
    "(minutes on a CPU)."
)

loaded = require_model()
sel = selection()
try:
    spec = cc.cached_loss(sel.model_key, sel.text, sel.max_tokens)
    loss = cc.cached_loss_value(sel.model_key, sel.text, sel.max_tokens)
except ExplorerError as err:
    st.error(str(err), icon=":material/error:")
    st.stop()
choices = cc.block_choices(sel.model_key)
n_layers = loaded.card.n_layers
middle_mlp = f"layer:{n_layers // 2}:mlp"

PAGE = PageState("curvature")
BLOCK = Choice(
    "block",
    middle_mlp if middle_mlp in choices else "all",
    choices,
    hint=f"{loaded.id} has layers 0-{n_layers - 1}; blocks look like all, embeddings, layer:3, "
    "layer:3:attention, layer:3:mlp or param:<parameter name>",
)
OPERATOR = Choice("op", "hessian", OPERATORS)
K = Int("k", 3, 1, 10)
TRACE = Choice("trace", "hutchinson", TRACE_METHODS)
PROBES = Int("probes", 16, 4, 64)
TRAIN_BLOCK = Choice("train_on", "block", TRAIN_ON)
OPTIMIZER = Choice("opt", "gd", OPTIMIZERS)
STEPS = Int("steps", 10, 1, 50)
# Any step in range (the "just past 2/λ_max" button sets one off the grid: 2.2/λ_max of a flat block can be
# large); the slider offers ETAS and it.
ETA_MAX = 1e4
ETA = Float("eta", 0.1, ETAS[0], ETA_MAX)

st.markdown(f"**Loss.** {spec.description} At the loaded weights it is **{loss:.4f}** nats.")


def _whole_model() -> None:
    PAGE.set(BLOCK, "all")


left, mid, right = st.columns([2.2, 1.2, 1.6], gap="medium")
block = PAGE.selectbox(
    BLOCK,
    "Parameter block",
    where=left,
    format_func=choices.get,
    help="Which parameters H is taken over (the rest stay fixed): the whole model, the embeddings, one "
    "layer, a layer's attention or MLP, or one weight matrix.",
)
if block != "all":
    left.button("Whole model", key="curvature_whole_model", on_click=_whole_model, icon=":material/zoom_out:")
kind = PAGE.segmented_control(
    OPERATOR,
    "Curvature",
    where=mid,
    format_func=OPERATORS.get,
    help="Hessian: the loss's exact second derivative (can have negative eigenvalues). Gauss-Newton JᵀH_zJ: "
    "the part through the softmax's own curvature, positive semi-definite.",
)
k = PAGE.number_input(K, "Top eigenvalues k", where=mid, step=1)
trace_method = PAGE.segmented_control(
    TRACE,
    "Trace estimator",
    where=right,
    format_func=TRACE_METHODS.get,
    help="Hutchinson: mean of zᵀHz over random ±1 vectors z. Hutch++: takes the top of the spectrum exactly "
    "first, then Hutchinson on the rest (less variance when a few eigenvalues dominate).",
)
probes = PAGE.slider(PROBES, "Hessian-vector products for the trace", where=right)
n_params = cc.block_size(sel.model_key, block)
settings, memory_notes = cc.fit_to_memory(
    cc.BlockSettings(block, kind, int(k), trace_method, int(probes)), n_params
)


# ------------------------------------------------------------------------------------------ one block
st.subheader(f"{choices[block]}: {OPERATORS[kind]} spectrum")
st.caption(
    f"{n_params:,} parameters: H is {n_params:,} × {n_params:,} and is never formed; every number below "
    "comes from products Hv (one double backward each)."
)
for note in memory_notes:
    st.info(note, icon=":material/memory:")
slots = view.block_slots()
summary = view.block_summary(sel.model_key, sel.text, sel.max_tokens, settings, slots)
if summary is not None:
    view.draw_summary(summary, slots, n_params)

# --------------------------------------------------------------------------------------------- grid


@st.fragment
def grid_section() -> None:
    st.subheader(f"Every layer: λ_max and trace of attention and MLP ({OPERATORS[kind]})")
    view.layer_grid(sel.model_key, sel.text, sel.max_tokens, kind, n_layers)


grid_section()

# ----------------------------------------------------------------------------------- training what-if


def _eta_past(lambda_max: float) -> None:
    PAGE.set(ETA, min(words.eta_just_past(lambda_max), ETA_MAX))


@st.fragment
def training_section() -> None:
    st.subheader("Training what-if: a few steps from the loaded weights")
    st.caption(
        "Full-batch steps on this loss, on a copy of the model (the loaded one is never changed), recording "
        "the loss and the trained block's λ_max at every step. On a quadratic loss gradient descent is stable "
        "while λ_max < 2/η and blows up past it; a real loss is not quadratic, and steps past the limit can "
        "lower λ_max itself (a catapult, or a hover at the edge of stability). The run below says which it "
        "did."
    )
    c1, c2, c3, c4 = st.columns([1.4, 1.2, 1, 1.6])
    train_on = PAGE.radio(TRAIN_BLOCK, "Train", where=c1, format_func=TRAIN_ON.get)
    optimizer = PAGE.radio(OPTIMIZER, "Optimizer", where=c2, format_func=OPTIMIZERS.get)
    steps = PAGE.number_input(STEPS, "Steps", where=c3, step=1)
    eta_now = PAGE.bind(ETA)
    eta = PAGE.select_slider(
        ETA, "Step size η", sorted({*ETAS, eta_now}), where=c4, format_func=lambda v: f"{v:g}"
    )
    train_block = block if train_on == "block" else "all"
    if summary is not None and train_block == block:
        lam_max = float(summary.eigen.eigenvalues[0])
        c4.caption(f"This block's 2/λ_max = {stability_threshold(lam_max):.3g}.")
        if lam_max > words.ETA_PAST_FACTOR / ETA_MAX:
            c4.button(f"η = {words.ETA_PAST_FACTOR:g}/λ_max (just past the limit)", key="curvature_eta_past",
                      on_click=_eta_past, args=(lam_max,))  # fmt: skip
    run_settings = cc.TrainingSettings(train_block, int(steps), float(eta), optimizer)
    run = view.training_run(sel.model_key, sel.text, sel.max_tokens, run_settings, choices[train_block],
                            cc.block_size(sel.model_key, train_block))  # fmt: skip
    if run is None:
        return
    cols = st.columns(4)
    cols[0].metric("loss", f"{run.loss[-1]:.4f}", f"{run.loss[-1] - run.loss[0]:+.4f}", delta_color="inverse")
    cols[0].caption(f"before: {run.loss[0]:.4f}")
    cols[1].metric("λ_max", f"{run.lambda_max[-1]:.4g}", f"{run.lambda_max[-1] - run.lambda_max[0]:+.3g}",
                   delta_color="off")  # fmt: skip
    cols[1].caption(f"before: {run.lambda_max[0]:.4g}")
    cols[2].metric("2/η", f"{run.threshold:.4g}", help="GD's stability limit for λ_max at this step size.")
    cols[3].metric(
        "η · λ_max (start)", f"{run.eta * run.lambda_max[0]:.3g}", help="Above 2: a quadratic model diverges."
    )
    st.plotly_chart(figures.make_training_figure(run), width="stretch", key="curvature_training")
    st.markdown("\n\n".join(words.training_sentences(run)))
    if run.matrices:
        st.plotly_chart(
            figures.make_training_spectra_figure(run), width="stretch", key="curvature_training_spectra"
        )


training_section()
