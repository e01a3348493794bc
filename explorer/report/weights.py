"""Report section for the weight pages: weight spectra, OV copying scores, and Gershgorin discs of one head.

``checkpoint_weights_section`` is its spectra part read from a safetensors checkpoint without loading the
model (``report --sections weights`` on a folder): the same "weights" rows, no "circuits" or "gershgorin".

metrics.json gains, at the top level:
    "weights": [{"name", "layer", "kind", "shape", "spectral_norm", "stable_rank", "effective_rank",
                 "condition_number", "k90", "k99", "alpha", "alpha_xmin", "alpha_ks",
                 "alpha_hat", "log_norm", "log_spectral_norm", "rand_distance", "n_traps", "trap_edge",
                 "traps"}, ...]  (one per matrix;
                 alpha_xmin in units of the ESD of W^T W / N, N = max(m, n); alpha NaN -> null when no fit.
                 WeightWatcher's metric set (explorer/spectra/weightwatcher.py), in its units, eigenvalues of
                 W^T W not divided by N: alpha_hat = alpha log10 sigma_1^2 (null without alpha), log_norm =
                 log10 ||W||_F^2, log_spectral_norm = log10 sigma_1^2. The randomized comparison (W with its
                 entries shuffled by numpy's permutation seeded [0, CRC-32 of the name]): rand_distance = the
                 Jensen-Shannon distance (nats, square-rooted) between the sorted real and shuffled spectra;
                 trap_edge = lambda_+ + 4 Tracy-Widom widths in ESD units; traps = the shuffled ESD eigenvalues
                 above it, decreasing; n_traps = their count)
    "circuits": {"copying_score": [[...] * n_heads] * n_layers}
    "gershgorin": {"layer", "head", "all_inside": bool, "groups": [{"discs", "n_discs", "n_eigenvalues"}, ...]}
        for the row discs of that attention head on the report's text.
"""

from __future__ import annotations

import numpy as np

from explorer.analysis.circuits import circuit_spectra
from explorer.analysis.weights import (
    ARRAY_FIELDS,
    RandomizedSpectra,
    WeightSpectra,
    checkpoint_spectra,
    randomized_spectra,
    weight_spectra,
    ww_rows,
)
from explorer.figures.circuits import make_copying_heatmap_figure
from explorer.figures.gershgorin import make_gershgorin_figure
from explorer.figures.weights import make_esd_figure, make_weight_heatmap_figure, make_ww_layer_figure
from explorer.models import Capture, LoadedModel
from explorer.models.checkpoint import Checkpoint
from explorer.report.section import ReportSection
from explorer.spectra.gershgorin import analyse_gershgorin

# Taken from ``ww_rows`` (WeightWatcher's metric set and the randomized comparison); the rest from ``rows``.
_WW_KEYS = ("alpha_hat", "log_norm", "log_spectral_norm", "rand_distance", "n_traps", "trap_edge", "traps")
# The stored columns (``ARRAY_FIELDS``, in their order) metrics.json leaves out.
_LEFT_OUT = ("frobenius_norm", "numerical_rank", "alpha_n_tail", "mp_edge", "n_spikes", "element_variance")
WEIGHT_KEYS = ("name", "layer", "kind", "shape", *(f for f in ARRAY_FIELDS if f not in _LEFT_OUT), *_WW_KEYS)


def weights_section(
    loaded: LoadedModel, cap: Capture, layer: int | None = None, head: int | None = None
) -> ReportSection:
    """Weight spectra of every matrix, copying scores of every head, and the Gershgorin discs of attention
    head (layer, head) on the captured text (default: the middle layer, head 0)."""
    card = loaded.card
    spectra = weight_spectra(loaded.model, device=loaded.device)
    randomized = randomized_spectra(loaded.model, spectra, device=loaded.device)
    circuits = circuit_spectra(loaded.model, card.n_layers, card.n_heads, card.n_kv_heads)
    layer = card.n_layers // 2 if layer is None else int(np.clip(layer, 0, card.n_layers - 1))
    head = 0 if head is None else int(np.clip(head, 0, card.n_heads - 1))
    gersh = analyse_gershgorin(np.asarray(cap.attentions[layer, head], dtype=np.float64))

    data = {
        "weights": _weight_rows(spectra, randomized),
        "circuits": {"copying_score": circuits.copying_score},
        "gershgorin": {
            "layer": layer,
            "head": head,
            "all_inside": gersh.all_inside,
            "groups": [
                {"discs": g["discs"], "n_discs": g["n_discs"], "n_eigenvalues": g["n_eigenvalues"]}
                for g in gersh.group_summary()
            ],
        },
    }
    figures = _spectra_figures(spectra, randomized) + [
        ("OV copying score of every head", make_copying_heatmap_figure(circuits)),
        (
            f"Gershgorin discs of attention layer {layer} head {head}",
            make_gershgorin_figure(gersh, labels=cap.labels()),
        ),
    ]
    text = (
        f"<p>{_spectra_summary(spectra, randomized)} Copying scores range "
        f"{np.nanmin(circuits.copying_score):+.2f} to {np.nanmax(circuits.copying_score):+.2f}. "
        f"Gershgorin (layer {layer}, head {head}): every eigenvalue inside the row discs: "
        f"{'yes' if gersh.all_inside else 'NO'}; {len(gersh.row_groups)} connected group(s).</p>"
    )
    return ReportSection("Weights, circuits and Gershgorin discs", None, data, figures, text)


def checkpoint_weights_section(checkpoint: Checkpoint, device: str = "cpu") -> ReportSection:
    """The weight spectra part of ``weights_section`` read straight from a safetensors checkpoint, without
    loading its model (``--sections weights`` on a folder): the same "weights" rows and spectra figures. The
    copying scores and Gershgorin discs need the model (and a text), so they are left out, and the text says
    how to get them."""
    spectra = checkpoint_spectra(checkpoint, device=device)
    randomized = randomized_spectra(checkpoint, spectra, device=device)
    text = (
        f"<p>{_spectra_summary(spectra, randomized)} Read from the checkpoint files tensor by tensor, without "
        "loading the model. Copying scores and Gershgorin discs need the loaded model: add another section "
        "(e.g. <code>--sections model,weights</code>) to get them.</p>"
    )
    return ReportSection(
        "Weight spectra (from the checkpoint files)",
        None,
        {"weights": _weight_rows(spectra, randomized)},
        _spectra_figures(spectra, randomized),
        text,
    )


def _weight_rows(spectra: WeightSpectra, randomized: RandomizedSpectra) -> list[dict]:
    """metrics.json's "weights" rows (WEIGHT_KEYS), one per matrix."""
    return [
        {key: ww_row[key] if key in _WW_KEYS else row[key] for key in WEIGHT_KEYS}
        for row, ww_row in zip(spectra.rows(), ww_rows(spectra, randomized), strict=True)
    ]


def _spectra_figures(spectra: WeightSpectra, randomized: RandomizedSpectra) -> list:
    """The spectra figures: alpha and stable-rank heatmaps, alpha-hat and rand_distance per layer, and the
    token embedding's ESD against its shuffle (when there is an embedding)."""
    figures = [
        ("Power-law exponent α of every weight matrix", make_weight_heatmap_figure(spectra, "alpha")),
        ("Stable rank of every weight matrix", make_weight_heatmap_figure(spectra, "stable_rank")),
        ("WeightWatcher's α̂ = α·log₁₀λ_max per layer", make_ww_layer_figure(spectra, "alpha_hat")),
        (
            "rand_distance per layer (each matrix against its shuffle)",
            make_ww_layer_figure(spectra, "rand_distance", randomized),
        ),
    ]
    embed = spectra.find("embed", None)
    if embed is not None:
        figures.append(
            (
                "Spectral density of the token embedding, and of it shuffled",
                make_esd_figure(spectra, embed, randomized=randomized),
            )
        )
    return figures


def _spectra_summary(spectra: WeightSpectra, randomized: RandomizedSpectra) -> str:
    """One sentence: matrix count, median alpha, correlation traps and median rand_distance."""
    median_alpha = float(np.nanmedian(spectra.alpha)) if np.isfinite(spectra.alpha).any() else float("nan")
    return (
        f"{len(spectra)} weight matrices; median power-law α {median_alpha:.2f}; "
        f"{int((randomized.n_traps > 0).sum())} with correlation traps ({int(randomized.n_traps.sum())} in all), "
        f"median rand_distance {float(np.median(randomized.rand_distance)):.3f}."
    )
