"""The logit lens page's work and words: the lens of the sidebar's text as a task (explorer/tasks.py), the
tokens' display texts, and the sentence that explains the heatmap (computed from the lens it describes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer import tasks
from explorer.analysis.generation import generated_mask
from explorer.analysis.logit_lens import LogitLens, logit_lens, vocab_texts
from explorer.figures.tokens import mark_generated
from explorer.models.choice import ModelChoice, TextChoice
from explorer.ui import task_view
from explorer.ui.cache import cached_capture, cached_model
from explorer.ui.state import Setting, new_chart_selection

TOP_K = 10  # computed once; the page shows the first k of them
# Rough float32 throughput of the lens (its cost is the (token x d_model) @ (d_model x vocab) product per layer)
# on a two-core laptop: sets the foreground/background split, nothing else.
FLOPS_PER_SECOND = 3e10


@dataclass(frozen=True)
class LensView:
    """A lens and what the page shows with it.

    Attributes:
        lens: the LogitLens (arrays of shape (layer, token[, k])).
        labels: list of length ``token``: "position:text" axis labels, generated tokens marked.
        vocab_texts: dict token id -> display text, for every id in the lens's top-k and final predictions.
    """

    lens: LogitLens
    labels: list[str]
    vocab_texts: dict[int, str]

    def texts(self, ids) -> list[str]:
        return [self.vocab_texts[int(i)] for i in np.asarray(ids).ravel()]

    def top1_texts(self) -> np.ndarray:
        """ndarray of shape (layer, token), object: the lens's top-1 token at every cell as text."""
        top1 = np.asarray(self.lens.top_ids[:, :, 0])
        return np.array(self.texts(top1), dtype=object).reshape(top1.shape)


@dataclass(frozen=True)
class LensSpec(tasks.Spec):
    """The lens of one text on one model. ``prompt_ids``: the prompt's tokens when the text ends with a
    continuation by the model (which tokens are generated), else None. The sizes only set the time estimate."""

    KIND = "logit_lens"
    MAX_FINISHED = 6

    model_key: ModelChoice
    text_key: TextChoice
    prompt_ids: tuple[int, ...] | None
    k: int
    n_tokens: int
    n_layers: int
    vocab: int
    d_model: int

    def estimated_seconds(self) -> float:
        return 2.0 * self.n_layers * self.n_tokens * self.vocab * self.d_model / FLOPS_PER_SECOND

    @property
    def label(self) -> str:
        return f"logit lens of {self.n_tokens} tokens over {self.n_layers} layers"


def _work(spec: LensSpec, task: tasks.Task) -> LensView:
    loaded = cached_model(spec.model_key)
    cap = cached_capture(spec.model_key, spec.text_key)
    generated = (
        None if spec.prompt_ids is None else generated_mask(cap.token_ids, np.asarray(spec.prompt_ids))
    )
    lens = logit_lens(loaded, cap.token_ids, k=spec.k, generated=generated, progress=task.report)
    return LensView(lens, mark_generated(cap.labels(), lens.generated), vocab_texts(loaded.tokenizer, lens))


def lens_spec(model_key: ModelChoice, text_key: TextChoice, prompt_ids, loaded, cap) -> LensSpec:
    """The one place a lens spec is built (to start the work and to look for it)."""
    vocab = int(loaded.model.get_output_embeddings().weight.shape[0])
    return LensSpec(
        model_key,
        text_key,
        None if prompt_ids is None else tuple(int(i) for i in prompt_ids),
        TOP_K,
        cap.n_tokens,
        loaded.card.n_layers,
        vocab,
        loaded.card.d_model,
    )


def watch_lens(spec: LensSpec) -> LensView | None:
    """The lens, drawn in this run when quick, else watched with progress (None while it runs)."""
    return task_view.watch(
        spec,
        lambda task: _work(spec, task),
        label=f"Reading {spec.n_layers} layers × {spec.n_tokens} positions through the unembedding",
        failure="The lens could not be computed; try a shorter text.",
        key="lens_task",
    )


def lens_summary(lens: LogitLens) -> str:
    """The sentence under the heatmap, from the lens it describes: where the final prediction settles (median
    over positions of the first layer from which it stays the lens's top-1), how often it is top-1 halfway, and
    how the mean KL falls."""
    first = lens.first_layer_with_final()
    n_layers, n_tokens = lens.n_layers, lens.n_tokens
    half = n_layers // 2
    top_half = int((lens.final_rank[half] == 1).sum())
    mean_kl = np.asarray(lens.kl, dtype=float).mean(axis=1)
    if n_layers == 1:
        return f"With one layer the lens is the model's own output at all {n_tokens} positions."
    kl_text = (
        f"The mean KL(final ‖ layer) is {mean_kl[0]:.3g} nats at layer 0"
        if n_layers == 2
        else f"The mean KL(final ‖ layer) falls from {mean_kl[0]:.3g} nats at layer 0 to {mean_kl[-2]:.3g} at "
        f"layer {n_layers - 2}"
    )
    text = (
        f"Across the {n_tokens} positions, the model's final prediction becomes the lens's top-1 for good at "
        f"layer {float(np.median(first)):g} (median; the last layer is {n_layers - 1}); at layer {half} it is "
        f"already top-1 at {top_half} of {n_tokens} positions. {kl_text} and is 0 at the last layer, whose lens "
        "is the model's own output."
    )
    n_generated = int(np.asarray(lens.generated).sum())
    if n_generated:
        text += (
            f" The last {n_generated} positions (shaded, marked ✦) are the model's own continuation: what each "
            "layer predicted while the model wrote."
        )
    return text


def _lens_cell(selection: dict) -> tuple[int, int]:
    """(layer, position) of the lens heatmap's first selected point. Its customdata (layer, position, ...)
    arrives as a list, or as {"0": layer, "1": position, ...} when plotly sent it as a typed array."""
    data = selection["points"][0]["customdata"]
    return (int(data["0"]), int(data["1"])) if isinstance(data, dict) else (int(data[0]), int(data[1]))


def apply_lens_click(
    page, chart_key: str, layer: Setting, position: Setting, n_layers: int, n_tokens: int
) -> None:
    """Select the (layer, position) of a newly clicked heatmap cell: the chart's selection, read at the top of the
    rerun the click caused. A selection already applied is ignored, so the sliders are not undone by it."""
    clicked = new_chart_selection(chart_key, _lens_cell)
    if clicked is None:
        return
    if 0 <= clicked[0] < n_layers and 0 <= clicked[1] < n_tokens:
        page.set(layer, clicked[0])
        page.set(position, clicked[1])
