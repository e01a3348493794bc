"""The curvature page's controller: its three tasks (one block's spectrum, the layer grid, the training
what-if) watched through the one task watcher (explorer/ui/task_view.watch: progress, Cancel, "Compute it
again" after a cancel, partial results as they arrive), and a block's results drawn into their places.

The page (pages/curvature.py) lays out; tasks, their specs and the disk store live in
explorer/ui/curvature_cache.py, figures in explorer/figures/curvature.py, words in explorer/ui/curvature_text.py.
A person's cancel is the task layer's (process-wide, until someone starts the task again): no session state here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import streamlit as st

from explorer import tasks
from explorer.analysis import curvature as C
from explorer.figures import curvature as figures
from explorer.models.choice import ModelChoice
from explorer.spectra.curvature import stability_threshold
from explorer.ui import curvature_cache as cc
from explorer.ui import curvature_text as words
from explorer.ui import task_view

_PARTIAL_KEYS = itertools.count()


def partial_key() -> str:
    """A fresh key for a chart drawn while a task runs (the same chart may be redrawn in one run)."""
    return f"curvature_partial_{next(_PARTIAL_KEYS)}"


# --------------------------------------------------------------------------------------------- one block


@dataclass(frozen=True)
class BlockSlots:
    """Where a block's results go, laid out before it is computed: ``metrics`` (a container above the charts)
    and one st.empty per chart, so partial results and the final ones take the same places."""

    metrics: object
    eigen: object
    convergence: object
    density: object
    trace: object
    density_caption: object
    mass: object


def block_slots() -> BlockSlots:
    metrics = st.container()
    top_left, top_right = st.columns(2)
    eigen, convergence = top_left.empty(), top_right.empty()
    low_left, low_right = st.columns(2)
    density, trace = low_left.empty(), low_right.empty()
    return BlockSlots(metrics, eigen, convergence, density, trace, low_left.empty(), st.empty())


def draw_partial(slots: BlockSlots, items: list) -> None:
    """A running block's published results: its top eigenvalues (with their convergence and where the
    eigenvectors live), then its trace."""
    for name, item in items:
        if name == "eigen":
            for slot, make in ((slots.eigen, figures.make_top_eigen_figure),
                               (slots.convergence, figures.make_convergence_figure),
                               (slots.mass, figures.make_group_mass_figure)):  # fmt: skip
                slot.plotly_chart(make(item), width="stretch", key=partial_key())
        elif name == "trace":
            slots.trace.plotly_chart(figures.make_trace_figure(item), width="stretch", key=partial_key())


def block_summary(
    model_key: ModelChoice, text: str, max_tokens: int, settings: cc.BlockSettings, slots: BlockSlots
) -> C.CurvatureSummary | None:
    """The block's spectrum, waited for within the run (its charts fill in as its parts arrive) with a Cancel
    button; None after a cancel or a failure (the watcher says which and offers to compute it again)."""
    return task_view.watch(
        *cc.block_task(model_key, text, max_tokens, settings),
        label="The block's spectrum",
        failure="Computing the block's spectrum failed",
        wait=True,
        cancellable=True,
        partial=lambda items: draw_partial(slots, items),
        key="curvature_block",
        restart_label="Compute it again",
    )


def draw_summary(summary: C.CurvatureSummary, slots: BlockSlots, n_params: int) -> None:
    """A finished block: its five numbers, its charts in their places and the sentences that read them."""
    eigen, trace, density = summary.eigen, summary.trace, summary.density
    lam_max = float(eigen.eigenvalues[0])
    cols = slots.metrics.columns(5)
    cols[0].metric("λ_max", f"{lam_max:.4g}", help="Largest eigenvalue of H (nats per parameter unit²).")
    cols[1].metric(
        "2/λ_max",
        f"{stability_threshold(lam_max):.4g}",
        help="On a quadratic model, gradient descent on this block with a larger step η diverges along the "
        "top eigenvector.",
    )
    cols[2].metric(
        "trace",
        f"{trace.trace:.4g}",
        help=f"Sum of all {n_params:,} eigenvalues, estimated from {trace.samples.size} random probes "
        f"({trace.n_matvec} products); ± one standard error of the mean over probes.",
    )
    cols[2].caption(f"± {trace.stderr:.2g} (one standard error, {trace.samples.size} probes)")
    cols[3].metric(
        "mean eigenvalue",
        f"{trace.trace / n_params:.3g}",
        help="trace / number of parameters: the bulk's centre of mass, to compare with λ_max.",
    )
    cols[4].metric("products", f"{eigen.n_matvec}", "converged" if eigen.converged else "not converged",
                   delta_color="normal" if eigen.converged else "inverse")  # fmt: skip
    slots.eigen.plotly_chart(figures.make_top_eigen_figure(eigen), width="stretch", key="curvature_top")
    slots.convergence.plotly_chart(
        figures.make_convergence_figure(eigen), width="stretch", key="curvature_convergence"
    )
    slots.density.plotly_chart(
        figures.make_density_figure(density, eigen.eigenvalues), width="stretch", key="curvature_density"
    )
    slots.trace.plotly_chart(
        figures.make_trace_figure(trace), width="stretch", key="curvature_trace_estimate"
    )
    slots.mass.plotly_chart(figures.make_group_mass_figure(eigen), width="stretch", key="curvature_mass")
    slots.density_caption.caption(words.density_caption(summary))
    with slots.metrics:
        st.markdown("\n\n".join(words.block_sentences(summary)))
        with st.expander("Details: how these numbers are computed"):
            st.markdown("\n\n".join(words.block_details(summary)))


# ----------------------------------------------------------------------------------------------- grid


def layer_grid(model_key: ModelChoice, text: str, max_tokens: int, kind: str, n_layers: int) -> None:
    """The layer grid: started on its own when it is quick or already there, else on a click (it takes
    minutes on a CPU for a real model); drawn layer by layer as it is computed."""
    spec, work = cc.grid_task(model_key, text, max_tokens, kind)
    if not cc.grid_starts_itself(spec):
        prompt = st.empty()  # cleared once the grid is asked for
        with prompt.container():
            st.caption(
                f"{2 * n_layers} blocks, each with up to {cc.GRID_MAX_MATVEC} products for λ_max and "
                f"{cc.GRID_PROBES} for the trace: several minutes on a CPU for this model. It runs in the "
                "background, is shared with every other visitor, and is kept on disk for the next one."
            )
            clicked = st.button("Compute the grid", key="curvature_grid_start", icon=":material/play_arrow:")
        if not clicked:
            return
        prompt.empty()
        tasks.start(spec, work)
    slot = st.empty()

    def partial(rows: list) -> None:
        grid = cc.merge_grid_rows(rows, n_layers, kind)
        slot.plotly_chart(figures.make_grid_figure(grid), width="stretch", key=partial_key())

    grid = task_view.watch(spec, work, label="The layer grid", failure="Computing the layer grid failed",
                           wait=True, cancellable=True, partial=partial, key="curvature_grid",
                           restart_label="Compute it again")  # fmt: skip
    if grid is None:
        return
    slot.plotly_chart(figures.make_grid_figure(grid), width="stretch", key="curvature_grid")
    st.caption(
        f"λ_max by Lanczos (relative tolerance {cc.GRID_TOL:g}, at most {cc.GRID_MAX_MATVEC} products), "
        f"trace by Hutchinson with {cc.GRID_PROBES} probes, each block on its own with the rest of the "
        "model fixed. Colours on a signed log scale; the numbers are the values."
    )


# ----------------------------------------------------------------------------------- training what-if


def training_run(
    model_key: ModelChoice,
    text: str,
    max_tokens: int,
    settings: cc.TrainingSettings,
    block_label: str,
    n_params: int,
) -> C.TrainingRun | None:
    """The training what-if of ``settings``: a "Run the what-if" button until someone asks for it (it is
    never started on its own), then waited for within the run with a Cancel button."""
    if tasks.peek(cc.training_spec(model_key, text, max_tokens, settings)) is None:
        prompt = st.empty()  # cleared once the run is asked for
        with prompt.container():
            st.caption(
                f"{settings.steps} steps on {block_label} ({n_params:,} parameters), each with up to "
                f"{cc.TRAIN_MAX_MATVEC} Hessian-vector products for λ_max."
            )
            clicked = st.button("Run the what-if", key="curvature_train_start", icon=":material/play_arrow:")
        if not clicked:
            return None
        prompt.empty()
        tasks.start(*cc.training_task(model_key, text, max_tokens, settings))
    return task_view.watch(
        *cc.training_task(model_key, text, max_tokens, settings),
        label="The training what-if",
        failure="The training what-if failed",
        wait=True,
        cancellable=True,
        key="curvature_training",
        restart_label="Run it again",
    )
