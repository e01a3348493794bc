"""Report section ``compare`` (``report --compare KEY``): the report's model A against a variant B, the weights
page's compare mode written out (explorer/ui/compare_view.py). KEY is the page's ``vs=`` key
(explorer.analysis.variants: int8, int4-g32, rank:0.8:svdllm, lora:r8:s50, dir:/path, ...). B is built, its
spectra computed and A and B run on the text through the same task specs and functions the page uses
(explorer.analysis.variants, explorer.analysis.compare): no second implementation here, only layout.

metrics.json gains:
    "compare": {
        "key": canonical key, "description": what B is, "notes": [sentences, e.g. LoRA's loss before/after],
        "subspace_ranks": [1, 4, 8, 16, 64],
        "matrices": [{"name", "layer", "kind", "shape",
                      "alpha_a", "alpha_b", "alpha_hat_a", "alpha_hat_b", "stable_rank_a", "stable_rank_b",
                      "spectral_norm_a", "spectral_norm_b"   (WeightSpectra metrics of W_A and W_B),
                      "changed": bool (W_B != W_A),
                      "relative_change": ||dW||_F / ||W_A||_F with dW = W_B - W_A,
                      "delta_frobenius": ||dW||_F, "delta_effective_rank", "delta_stable_rank" (0 for dW = 0),
                      "delta_numerical_rank": #sigma_i(dW) above the float32 rounding floor of W_B,
                      "energy_share": {"r": ||U_r^T dW V_r||_F^2 / ||dW||_F^2 with U_r, V_r W_A's top-r
                                       singular vectors},
                      "amplification": {"r": ||dW||_F / ||U'_r^T W_A V'_r||_F with U'_r, V'_r dW's top-r
                                        singular vectors (Hu et al. 2021, LoRA, section 7.3)}
                      (both keyed by r of subspace_ranks; null when dW = 0 or r > min(64, m, n))}, ...],
        "summary": [{"kind" (a matrix kind, or "all"), "n_matrices" (with a finite alpha in A and B),
                     "mean_alpha_a", "mean_alpha_b", "relative_change": (mean_b - mean_a) / |mean_a|}, ...],
        "outputs": causal LMs: {"n_tokens", "n_positions", "kl" (mean KL(A || B) per predicting position,
                   nats), "top1_agreement" (share in [0, 1]), "perplexity_a", "perplexity_b",
                   "n_new", "continuation_a", "continuation_b" (greedy, n_new tokens)};
                   encoders: {"n_tokens", "mean_cosine", "relative_change" (||H_B - H_A||_F / ||H_A||_F)}}
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable

import numpy as np

from explorer import tasks
from explorer.analysis import variants
from explorer.analysis.compare import (
    CONTINUATION_TOKENS,
    MATRIX_METRICS,
    SUBSPACE_RANKS,
    DeltaSpectrum,
    compare_metric,
    delta_spectrum,
)
from explorer.analysis.compression import text_hash
from explorer.analysis.weights import WeightSpectra, weight_spectra, with_origin
from explorer.figures.compare import make_delta_figure, make_delta_heatmap_figure
from explorer.figures.weights import matrix_label
from explorer.models import Capture, LoadedModel
from explorer.report.html_table import card_table
from explorer.report.section import ReportSection

PROGRESS_SECONDS = 5.0  # at most one progress line per this many seconds within a step

Log = Callable[[str], None]


class _Steps:
    """Progress lines on stderr for the section: "compare: <step> (t s)" at each step, and the running work's
    own messages at most every PROGRESS_SECONDS (a LoRA fine-tune reports every Adam step)."""

    def __init__(self, log: Log | None) -> None:
        self.log = log
        self.start = time.perf_counter()
        self.last = -np.inf

    def step(self, message: str) -> None:
        if self.log is not None:
            self.log(f"compare: {message} ({time.perf_counter() - self.start:.1f} s)")
        self.last = time.perf_counter()

    def progress(self, fraction: float, message: str) -> None:
        now = time.perf_counter()
        if self.log is not None and message and now - self.last >= PROGRESS_SECONDS:
            self.log(f"compare:   {fraction:4.0%} {message} ({now - self.start:.1f} s)")
            self.last = now


def compare_section(loaded: LoadedModel, cap: Capture, key: str, log: Log | None = None) -> ReportSection:
    """A (``loaded``) against B = the variant ``key`` (InputError for a bad key): per-matrix metrics of both,
    Delta W's spectrum against W_A for every changed matrix, and A and B on the capture's text (cut to the
    capture's tokens). ``log`` receives the progress lines."""
    steps = _Steps(log)
    text = cap.text
    steps.step("A's weight spectra")
    spectra_a = weight_spectra(loaded.model, device=loaded.device, progress=steps.progress)
    vspec = variants.variant_spec(spectra_a.fingerprint, key, text, loaded.device)
    steps.step(f"building B = {vspec.key}")
    variant = tasks.run(vspec, variants.variant_work(loaded, vspec, text), progress=steps.progress)
    steps.step("B's weight spectra (only the changed matrices are decomposed)")
    bspec = variants.variant_spectra_spec(loaded, variant)
    spectra_b = with_origin(
        tasks.run(
            bspec, variants.variant_spectra_work(loaded, variant, bspec, spectra_a), progress=steps.progress
        ),
        bspec,
    )
    change = variants.relative_change(loaded, variant)
    changed = np.flatnonzero(change > 0)
    steps.step(f"ΔW of the {changed.size} changed matrices")
    deltas = {}
    for j, i in enumerate(changed):
        steps.progress(j / changed.size, spectra_a.names[i])
        deltas[int(i)] = delta_spectrum(*variants.matrix_pair(loaded, variant, spectra_a.names[i]))
    steps.step("A and B on the text")
    outputs = _outputs(loaded, variant, vspec, text, cap.n_tokens, steps.progress)
    steps.step("done")

    comparisons = {m: compare_metric(spectra_a.metric(m), spectra_b.metric(m), m) for m in MATRIX_METRICS}
    rows = _matrix_rows(spectra_a, comparisons, change, deltas)
    summary = _summary(spectra_a, comparisons["alpha"])
    data = {
        "key": variant.key,
        "description": variant.description,
        "notes": list(variant.notes),
        "subspace_ranks": list(SUBSPACE_RANKS),
        "matrices": rows,
        "summary": summary,
        "outputs": outputs,
    }
    figures = [
        (
            f"Δ power-law α (B − A), B = {variant.key}",
            make_delta_heatmap_figure(spectra_a, comparisons["alpha"]),
        )
    ]
    if changed.size:
        top = int(changed[np.argmax(change[changed])])
        label = matrix_label(spectra_a, top)
        figures.append(
            (f"ΔW of the most changed matrix, {label}", make_delta_figure(deltas[top], f"ΔW of {label}"))
        )
    text_html = _html(variant, rows, summary, outputs, changed.size, len(change))
    return ReportSection(f"Compare with B = {variant.key}", "compare", data, figures, text_html)


def _outputs(loaded, variant, vspec, text: str, n_tokens: int, progress) -> dict:
    """A and B on ``text`` cut to ``n_tokens`` (the capture's tokens) through the page's OutputsSpec."""
    n_new = CONTINUATION_TOKENS if loaded.causal else 0
    spec = variants.OutputsSpec(vspec, text_hash(text), int(n_tokens), n_new)

    def work(task: tasks.Task) -> variants.Outputs:
        return variants.compare_outputs_of(loaded, variant, text, n_tokens, n_new, task.report)

    out = tasks.run(spec, work, progress=progress)
    if out.tokens is None:
        h = out.hidden
        return {"n_tokens": out.n_tokens, "mean_cosine": h.mean_cosine, "relative_change": h.relative_change}
    t = out.tokens
    return {
        "n_tokens": out.n_tokens,
        "n_positions": t.n_positions,
        "kl": t.kl,
        "top1_agreement": t.top1_agreement,
        "perplexity_a": t.perplexity_a,
        "perplexity_b": t.perplexity_b,
        "n_new": n_new,
        "continuation_a": out.continuation_a,
        "continuation_b": out.continuation_b,
    }


def _at_ranks(curve: np.ndarray) -> dict[str, float | None]:
    """A curve over r = 1..R at SUBSPACE_RANKS (None past R or where it is nan)."""
    return {
        str(r): float(curve[r - 1]) if r <= curve.size and np.isfinite(curve[r - 1]) else None
        for r in SUBSPACE_RANKS
    }


_NONE = {str(r): None for r in SUBSPACE_RANKS}


def _delta_fields(delta: DeltaSpectrum | None) -> dict:
    """A matrix's Delta W fields; ``delta`` None: dW = 0 (what delta_spectrum returns for a zero update,
    without decomposing W_A for nothing)."""
    if delta is None:
        return {
            "delta_frobenius": 0.0,
            "delta_effective_rank": 0.0,
            "delta_stable_rank": 0.0,
            "delta_numerical_rank": 0,
            "energy_share": dict(_NONE),
            "amplification": dict(_NONE),
        }
    return {
        "delta_frobenius": delta.frobenius,
        "delta_effective_rank": delta.effective_rank,
        "delta_stable_rank": delta.stable_rank,
        "delta_numerical_rank": delta.numerical_rank,
        "energy_share": _at_ranks(delta.energy_share),
        "amplification": _at_ranks(delta.amplification),
    }


def _matrix_rows(spectra_a: WeightSpectra, comparisons: dict, change: np.ndarray, deltas: dict) -> list[dict]:
    rows = []
    for i, name in enumerate(spectra_a.names):
        row = {
            "name": name,
            "layer": int(spectra_a.layers[i]),
            "kind": spectra_a.kinds[i],
            "shape": [int(v) for v in spectra_a.shapes[i]],
        }
        for metric, comparison in comparisons.items():
            row[f"{metric}_a"] = float(comparison.a[i])
            row[f"{metric}_b"] = float(comparison.b[i])
        row["changed"] = bool(change[i] > 0)
        row["relative_change"] = float(change[i])
        row.update(_delta_fields(deltas.get(i)))
        rows.append(row)
    return rows


def _summary(spectra_a: WeightSpectra, alpha) -> list[dict]:
    """Mean alpha of A and B over the matrices with a finite alpha in both, per kind and over all (as the
    page's caption), and the relative change of the mean."""
    kinds = np.array(spectra_a.kinds)
    finite = np.isfinite(alpha.a) & np.isfinite(alpha.b)
    out = []
    for kind in [*spectra_a.kinds_present, "all"]:
        mask = finite & ((kinds == kind) if kind != "all" else True)
        n = int(mask.sum())
        mean_a = float(alpha.a[mask].mean()) if n else float("nan")
        mean_b = float(alpha.b[mask].mean()) if n else float("nan")
        relative = (mean_b - mean_a) / abs(mean_a) if n and mean_a else float("nan")
        out.append(
            {
                "kind": kind,
                "n_matrices": n,
                "mean_alpha_a": mean_a,
                "mean_alpha_b": mean_b,
                "relative_change": relative,
            }
        )
    return out


def _fmt(value, spec: str = ".4g") -> str:
    return "–" if value is None or not np.isfinite(value) else format(value, spec)


def _html(variant, rows: list[dict], summary: list[dict], outputs: dict, n_changed: int, n_total: int) -> str:
    parts = [
        f"<p><b>B = <code>{html.escape(variant.key)}</code></b>: {html.escape(variant.description)}. "
        + html.escape(" ".join(variant.notes))
        + "</p>"
    ]
    if n_changed == 0:
        parts.append(
            "<p><b>No change</b>: every weight matrix of B equals A's, so every difference below is 0.</p>"
        )
    else:
        parts.append(f"<p>{n_changed} of {n_total} matrices differ.</p>")
    parts.append("<h3>Mean power-law α per matrix kind</h3>")
    parts.append(
        card_table(
            ("matrices", "n", "mean α of A", "mean α of B", "change of the mean"),
            (
                (
                    s["kind"],
                    s["n_matrices"],
                    _fmt(s["mean_alpha_a"]),
                    _fmt(s["mean_alpha_b"]),
                    _fmt(s["relative_change"], "+.1%"),
                )
                for s in summary
            ),
        )
    )
    parts.append("<h3>A and B on the text</h3>" + _outputs_html(outputs))
    parts.append("<h3>Every matrix</h3>")
    ranks = ", ".join(str(r) for r in SUBSPACE_RANKS)
    parts.append(
        "<p>Per matrix: α, α̂ = α·log₁₀λ_max, stable rank and spectral norm σ₁ of A → B; ΔW = W_B − W_A with "
        "its relative size ‖ΔW‖_F/‖W_A‖_F, effective and stable rank; the share of ‖ΔW‖_F² in W_A's top-r "
        f"singular subspace (r = {ranks}; a random update holds r²/(mn) there) and the amplification "
        "‖ΔW‖_F/‖U'_rᵀ W_A V'_r‖_F at r = 8 (Hu et al., LoRA, section 7.3: large when ΔW lives in directions "
        "W_A does not emphasise).</p>"
    )
    headers = ("matrix", "α A → B", "α̂ A → B", "stable rank A → B", "σ₁ A → B", "‖ΔW‖/‖W_A‖",
               "eff. rank ΔW", "stable rank ΔW", *(f"share r={r}" for r in SUBSPACE_RANKS),
               "amplification r=8")  # fmt: skip
    parts.append("<div class='wide'>" + card_table(headers, (_row_cells(r) for r in rows)) + "</div>")
    return "".join(parts)


def _row_cells(row: dict) -> list[str]:
    pairs = [f"{_fmt(row[f'{m}_a'])} → {_fmt(row[f'{m}_b'])}" for m in MATRIX_METRICS]
    if not row["changed"]:
        return [row["name"], *pairs, "no change", *[""] * (3 + len(SUBSPACE_RANKS))]
    return [
        row["name"],
        *pairs,
        _fmt(row["relative_change"], ".3g"),
        _fmt(row["delta_effective_rank"], ".1f"),
        _fmt(row["delta_stable_rank"], ".2f"),
        *(_fmt(row["energy_share"][str(r)], ".2g") for r in SUBSPACE_RANKS),
        _fmt(row["amplification"]["8"], ".3g"),
    ]


def _outputs_html(outputs: dict) -> str:
    if "kl" not in outputs:
        return (
            "<p>An encoder predicts no next token: its last hidden states are compared instead.</p>"
            + card_table(
                ("tokens", "mean cosine of the last hidden states", "‖H_B − H_A‖_F / ‖H_A‖_F"),
                [
                    (
                        outputs["n_tokens"],
                        _fmt(outputs["mean_cosine"], ".6f"),
                        _fmt(outputs["relative_change"], ".3g"),
                    )
                ],
            )
        )
    table = card_table(
        (
            "next-token predictions",
            "mean KL(A ‖ B), nats",
            "same top-1 token",
            "perplexity A",
            "perplexity B",
        ),
        [
            (
                outputs["n_positions"],
                _fmt(outputs["kl"], ".3g"),
                _fmt(outputs["top1_agreement"], ".1%"),
                _fmt(outputs["perplexity_a"]),
                _fmt(outputs["perplexity_b"]),
            )
        ],
    )
    conts = card_table(
        (
            f"A continues ({outputs['n_new']} tokens, greedy)",
            f"B continues ({outputs['n_new']} tokens, greedy)",
        ),
        [(outputs["continuation_a"] or "(nothing)", outputs["continuation_b"] or "(nothing)")],
    )
    return table + conts
