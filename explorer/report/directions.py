"""Report section: hidden-state PCA of the text and the default semantic direction (gender pairs)."""

from __future__ import annotations

import html

from explorer import wordlists
from explorer.analysis import directions as dirs
from explorer.analysis import word_vectors
from explorer.errors import ExplorerError
from explorer.figures import directions as figs
from explorer.models import Capture, LoadedModel
from explorer.report.section import ReportSection
from explorer.spectra import projections


def directions_section(loaded: LoadedModel, cap: Capture) -> ReportSection:
    """``metrics.json["directions"]``: layer, explained_variance_ratio (hidden-state PCA at that layer), pairs,
    direction_explained, bias_scores, direction_explained_by_layer, plus the random-pair control; report.html:
    the PCA scatter, its scree and the bias chart. Same defaults as the page (middle layer, token 0 left out
    for causal models, gender preset, contextual states at the middle layer)."""
    layer = loaded.card.n_layers // 2
    skip_first = loaded.causal
    data: dict = {"layer": layer, "skip_first_token": skip_first, "explained_variance_ratio": []}
    figures = []
    notes = []
    try:
        result = projections.hidden_state_pca(cap.hidden_states, layer, n_components=2, skip_first=skip_first)
        data["explained_variance_ratio"] = result.explained_variance_ratio.tolist()
        figures.append(("Hidden-state PCA", figs.make_pca_scatter_figure(result, cap.labels(), dims=2)))
        figures.append(("Explained variance (hidden states)", figs.make_scree_figure(result)))
    except ExplorerError as err:
        data["pca_error"] = str(err)
        notes.append(str(err))

    pairs, _ = wordlists.parse_pairs(wordlists.preset_pairs_text(wordlists.DEFAULT_PRESET))
    targets = wordlists.parse_words(wordlists.preset_targets_text(wordlists.DEFAULT_PRESET))
    try:
        analysis, profile = dirs.analyse_directions(
            loaded, pairs, targets, method=word_vectors.DEFAULT_METHOD, layer=layer
        )
    except ExplorerError as err:
        data["direction_error"] = str(err)
        notes.append(str(err))
    else:
        data.update(
            {
                "method": analysis.method,
                "pairs": [list(p) for p in analysis.pairs],
                "direction_explained": analysis.direction.explained,
                "bias_scores": {w: float(s) for w, s in zip(analysis.targets, analysis.bias, strict=True)},
                "direction_explained_by_layer": profile.shares.tolist(),
                "control": {
                    "mean": float(analysis.control.mean),
                    "std": float(analysis.control.std),
                    "n_draws": int(analysis.control.shares.size),
                    "n_pairs": analysis.control.n_pairs,
                    "seed": analysis.control.seed,
                },
                "control_by_layer_mean": profile.control.mean.tolist(),
                "template": profile.template,
            }
        )
        if analysis.targets:
            figures.append(("Bias scores (gender direction)", figs.make_bias_figure(analysis)))
        figures.append(
            (
                "Direction share by layer",
                figs.make_direction_by_layer_figure(profile, chosen_layer=analysis.layer),
            )
        )
        notes.append(
            f"Gender direction from {len(analysis.pairs)} pairs ({word_vectors.DEFAULT_METHOD} embeddings, layer {layer}): the first "
            f"component explains {100 * analysis.direction.explained:.1f} % of the pair differences; "
            f"random pairs: {100 * float(analysis.control.mean):.1f} ± {100 * float(analysis.control.std):.1f} %."
        )
    text = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    return ReportSection("PCA and semantic directions", "directions", data, figures, text)
