"""The attention part of the headless report: per-head spectra and summaries in metrics.json under "attention",
and the layer x head grids plus a few selected heads in report.html."""

from __future__ import annotations

import html

import numpy as np
import torch

from explorer.analysis.attention import (
    COLLAPSED_STABLE_RANK,
    FULL_DECOMPOSITION_MAX_TOKENS,
    GRID_METRICS,
    SINK_MASS,
    attention_grid,
    attention_spectra,
    head_spectrum,
    selected_heads,
)
from explorer.figures.attention import (
    head_title,
    make_attention_grid_figure,
    make_attention_heatmap_figure,
    make_eigenvalue_plane_figure,
    make_spectrum_figure,
)
from explorer.models import Capture, LoadedModel
from explorer.report.html_table import card_table
from explorer.report.section import ReportSection
from explorer.spectra import attention_spectra as spec

DEFINITIONS = {
    "eigvals_real": "real parts of every eigenvalue, (layer, head, token), sorted by modulus descending",
    "eigvals_imag": "imaginary parts, same order",
    "lambda2_abs": "second-largest eigenvalue modulus, (layer, head)",
    "spectral_gap": "1 - lambda2_abs",
    "entropy": "mean row entropy / log(allowed keys), rows with >= 2 allowed keys, in [0, 1]",
    "entropy_nats": "mean row entropy in nats",
    "effective_rank": "exp(entropy of sigma / sum sigma) (Roy & Vetterli 2007)",
    "stable_rank": "||A||_F^2 / ||A||_2^2",
    "numerical_rank": "#{sigma > sigma_1 * T * eps(float32)}",
    "sink_mass": "mean attention on the first token",
    "laplacian_eigvals": "real parts of the eigenvalues of L = D - A, d_jj = (sum_u a_uj) / (T - j), "
    "(layer, head, token), sorted by real part descending (LapEigvals 2025)",
    "laplacian_eigvals_imag": "imaginary parts, same order (zero for causal heads)",
    "collapsed": f"stable_rank < {COLLAPSED_STABLE_RANK}",
    "sink": f"sink_mass >= {SINK_MASS}",
}


# Past FULL_DECOMPOSITION_MAX_TOKENS the JSON keeps the top of each head's spectra (all of them are exact for a
# triangular head, but 30 x 9 x 8,192 values of each kind would make metrics.json hundreds of MB).
LONG_TOP = 64


def _long_spectra(attentions, grid) -> tuple[np.ndarray, np.ndarray]:
    """(layer, head, LONG_TOP) eigenvalues and Laplacian eigenvalues of a long capture, one layer at a time:
    exact from the diagonal for triangular heads, NaN for the others (not offered at this length)."""
    n_layers, n_heads, n = attentions.shape[:3]
    k = min(LONG_TOP, n)
    eig = np.full((n_layers, n_heads, k), np.nan + 0j)
    lap = np.full((n_layers, n_heads, k), np.nan + 0j)
    for layer in range(n_layers):
        A = attentions[layer]
        for head in np.flatnonzero(grid.triangular[layer]):
            M = torch.from_numpy(np.asarray(A[head], dtype=np.float64))
            diag = torch.diagonal(M)
            eig[layer, head] = spec.sort_by_modulus(diag.to(torch.complex128)).numpy()[:k]
            lap[layer, head] = spec.sort_by_real(
                (spec.laplacian_degrees(M) - diag).to(torch.complex128)
            ).numpy()[:k]
    return eig, lap


def attention_section(loaded: LoadedModel, cap: Capture) -> ReportSection:
    """Every head's full spectrum and summaries (JSON), the grids and three telling heads (HTML). Past
    FULL_DECOMPOSITION_MAX_TOKENS: the grid of the O(T^2) metrics, the top LONG_TOP eigenvalues of triangular
    heads, and the selected heads' top spectra by Krylov methods (with residuals)."""
    grid = attention_grid(cap.attentions, causal=cap.causal, device=loaded.device)
    long = cap.n_tokens > FULL_DECOMPOSITION_MAX_TOKENS
    if long:
        eig, lap = _long_spectra(cap.attentions, grid)
        lam2 = grid.lambda2_abs
    else:
        spectra = attention_spectra(cap.attentions, device=loaded.device)
        eig, lap = spectra.eigvals, spectra.laplacian_eigvals
        # |lambda_2| from the full spectra written alongside, so the JSON is self-consistent (the grid's Krylov
        # value agrees with it to about 1e-13).
        lam2 = np.abs(eig[..., 1]) if eig.shape[-1] > 1 else np.zeros(eig.shape[:2])
    definitions = dict(DEFINITIONS)
    if long:
        definitions.update(
            eigvals_real=f"real parts of the top {eig.shape[-1]} eigenvalues by modulus, (layer, head, k): exact "
            f"(the diagonal) for triangular heads, NaN for others (past {FULL_DECOMPOSITION_MAX_TOKENS} tokens "
            "a general head's eigenvalues need a whole decomposition)",
            laplacian_eigvals=f"real parts of the top {lap.shape[-1]} eigenvalues of L = D - A by real part, "
            "(layer, head, k), as eigvals_real",
            stable_rank="||A||_F^2 / rho, rho <= sigma_1^2 from power iteration (an upper estimate; "
            "stable_rank_low is certified)",
            not_offered=grid.note,
        )
    data = {
        "n_tokens": cap.n_tokens,
        "causal": cap.causal,
        "eigvals_real": eig.real,
        "eigvals_imag": eig.imag,
        "lambda2_abs": lam2,
        "spectral_gap": 1.0 - lam2,
        "entropy": grid.entropy,
        "entropy_nats": grid.entropy_nats,
        "effective_rank": grid.effective_rank,
        "stable_rank": grid.stable_rank,
        "numerical_rank": grid.numerical_rank,
        "sink_mass": grid.sink_mass,
        "laplacian_eigvals": lap.real,
        "laplacian_eigvals_imag": lap.imag,
        "collapsed": grid.collapsed,
        "sink": grid.sink,
        "definitions": definitions,
    }
    if long:
        data["stable_rank_low"] = grid.stable_rank_low
        data["not_offered"] = list(grid.not_offered)

    figures = []
    for metric in ("lambda2_abs", "entropy", "stable_rank"):
        info = GRID_METRICS[metric]
        fig = make_attention_grid_figure(grid, metric, label=info.label, low_is_notable=info.low_is_notable)
        fig.update_layout(title=f"{info.label} of every head")
        figures.append((f"Grid: {info.label}", fig))
    labels = cap.labels()
    picks = selected_heads(grid)
    for layer, head, why in picks:
        spectrum = head_spectrum(cap.attentions, layer, head, causal=cap.causal, device=loaded.device)
        figures.append(
            (
                f"Layer {layer} · head {head}: {why}",
                make_attention_heatmap_figure(
                    spectrum.attention, labels, title=head_title(spectrum, "attention weights")
                ),
            )
        )
        figures.append(
            (
                f"Layer {layer} · head {head}: spectra",
                make_spectrum_figure(
                    spectrum.eigvals, spectrum.singular_values, title=head_title(spectrum, "sorted spectra")
                ),
            )
        )
        if not spectrum.triangular:
            figures.append(
                (
                    f"Layer {layer} · head {head}: eigenvalues",
                    make_eigenvalue_plane_figure(spectrum.eigvals, title=head_title(spectrum, "eigenvalues")),
                )
            )

    long_note = f"<p>{html.escape(grid.note)}</p>" if grid.note else ""
    causal_note = long_note + (
        "<p>The model is causal: every attention matrix is lower-triangular, so its eigenvalues are its "
        "diagonal entries (computed as such, no solver), and the Laplacian's are d_jj &minus; a_jj.</p>"
        if cap.causal
        else "<p>The model is bidirectional: eigenvalues come from LAPACK geev (balanced), |&lambda;<sub>2</sub>| "
        "in the app from a Krylov iteration checked against it.</p>"
    )
    text = (
        f"<p>{grid.n_layers} layers &times; {grid.n_heads} heads over {cap.n_tokens} tokens. "
        f"{int(grid.collapsed.sum())} heads look collapsed (stable rank &lt; {COLLAPSED_STABLE_RANK:g}), "
        f"{int(grid.sink.sum())} are attention sinks (sink mass &ge; {SINK_MASS:g}).</p>{causal_note}"
        + card_table(("layer", "head", "why shown"), picks)
    )
    return ReportSection("Attention spectra", "attention", data, figures, text)
