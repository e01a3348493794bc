"""Report section for the logit lens (causal LMs): what each block's residual stream predicts.

metrics.json gains:
    "logit_lens": {"available": true, "n_layers", "n_tokens", "token_ids": [token], "generated": [token bools],
                   "n_generated", "final_ids": [token] (the model's own next-token prediction),
                   "layers": [{"layer", "top1_id": [token], "top1_prob": [token] (0-1),
                               "final_rank": [token] (1 = top), "final_prob": [token] (0-1),
                               "kl": [token] (nats, KL(final || layer))}, ...]}
For an encoder: {"available": false, "reason": "..."}. Positions count from 0; the lens at position t predicts
token t + 1.
"""

from __future__ import annotations

import html

import numpy as np

from explorer.analysis.logit_lens import NoLensError, logit_lens, vocab_texts
from explorer.figures.logit_lens import make_lens_heatmap_figure
from explorer.figures.tokens import mark_generated
from explorer.models import Capture, LoadedModel
from explorer.report.section import ReportSection

TOP_K = 1


def logit_lens_section(
    loaded: LoadedModel, cap: Capture, generated: np.ndarray | None = None
) -> ReportSection:
    """Per layer and position: the lens's top-1 token and probability, the rank and probability of the final
    prediction, and KL(final || layer). ``generated``: shape (token,), bool, the tokens the model wrote."""
    title = "Logit lens"
    try:
        lens = logit_lens(loaded, cap.token_ids, k=TOP_K, generated=generated)
    except NoLensError as err:
        return ReportSection(
            title,
            "logit_lens",
            {"available": False, "reason": str(err)},
            [],
            f"<p>{html.escape(str(err))}</p>",
        )
    layers = [
        {
            "layer": layer,
            "top1_id": lens.top_ids[layer, :, 0],
            "top1_prob": lens.top_probs[layer, :, 0],
            "final_rank": lens.final_rank[layer],
            "final_prob": lens.final_prob[layer],
            "kl": lens.kl[layer],
        }
        for layer in range(lens.n_layers)
    ]
    data = {
        "available": True,
        "n_layers": lens.n_layers,
        "n_tokens": lens.n_tokens,
        "token_ids": lens.token_ids,
        "generated": lens.generated,
        "n_generated": int(lens.generated.sum()),
        "final_ids": lens.final_ids,
        "layers": layers,
    }
    texts = vocab_texts(loaded.tokenizer, lens)
    labels = mark_generated(cap.labels(), lens.generated)
    top1 = np.array([texts[int(i)] for i in lens.top_ids[:, :, 0].ravel()], dtype=object).reshape(
        lens.n_layers, lens.n_tokens
    )
    finals = [texts[int(i)] for i in lens.final_ids]
    figures = [
        (
            f"Rank of the final prediction, layer by layer ({'generated tokens marked ✦' if generated is not None and np.any(generated) else 'the text as given'})",
            make_lens_heatmap_figure(lens, "rank", labels, top1, finals),
        ),
        ("KL(final ‖ layer), nats", make_lens_heatmap_figure(lens, "kl", labels, top1, finals)),
    ]
    settled = lens.first_layer_with_final()
    text = (
        f"<p>The model's final prediction becomes the lens's top-1 for good at layer {float(np.median(settled)):g} "
        f"(median over {lens.n_tokens} positions; the last layer is {lens.n_layers - 1}).</p>"
    )
    return ReportSection(title, "logit_lens", data, figures, text)
