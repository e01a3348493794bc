"""GPU against CPU: the app's numerics on both devices, compared with documented tolerances, and timed.

For each embedded model (MiniLM, SmolLM2) it runs on the reference side (CPU) and the test side (--device,
default cuda):

  capture          load_model + capture(): attention weights, hidden states, next-token losses (each side
                   runs its own model on its own device)
  attn eigvals     the batched attention spectra: spectra.attention_spectra.eigvals (torch.linalg.eigvals,
                   float64, every head in one call), on the SAME input on both sides (the reference capture)
  attn grid        analysis.attention.attention_grid (lambda_2 by diagonal / Arnoldi / geev, ranks, entropy)
  head spectrum    analysis.attention.head_spectrum for a few heads: the eigh paths (symmetric part, eigvalsh),
                   singular values, Laplacian eigenvalues, stationary distribution
  weight svdvals   analysis.weights.compute_weight_spectra, route "svd" (float32 torch.linalg.svdvals) and
                   route "gram" (float64 eigvalsh of the smaller Gram matrix), every 2-D weight
  compression      analysis.compression: factorize the MLP matrices (plain SVD) and evaluate the half-break-even
                   setting (a forward pass of the factored copy on each side's device)

Tolerances, and why (eps32 = 1.2e-7, eps64 = 2.2e-16):

  capture: attention entries are probabilities in [0, 1]: max |diff| <= 1e-4. float32 matmuls and softmax in
      another order (and another library: cuBLAS vs MKL/OpenBLAS) differ by a few eps32 per layer, and the
      difference grows through the layers. Hidden states: per layer ||diff||_F / ||ref||_F <= 1e-3 (relative,
      because SmolLM2's residual stream has a few dimensions of very large norm). Next-token losses: max |diff|
      <= 1e-3 nats.
  eigenvalues of non-symmetric matrices (attention, Laplacian): compared as multisets, each eigenvalue matched
      to one of the other side's by a minimum-cost assignment (scipy linear_sum_assignment; sorting complex
      numbers is not stable under rounding, conjugate pairs swap), error = max matched |diff| / ||A||_2.
      Same float64 input on both sides: <= 1e-6. Attention matrices are highly non-normal, so a backward error
      of eps64 * ||A|| can move an eigenvalue of a cluster of k nearly equal ones by ~eps64^(1/k) (1.5e-8 for
      k = 2, 6e-6 for k = 3); geev with balancing on both sides stays well inside that in practice.
  lambda_2 of the grid: |diff| <= 1e-6 (same reason; Arnoldi converges to 1e-10 but its starting vector is
      random per device), entropy and sink mass <= 1e-9, effective/stable rank relative <= 1e-6, numerical rank
      equal up to 1 (a singular value within rounding of the threshold may flip).
  symmetric eigenvalues (eigh) and singular values: well conditioned (Weyl: |diff| <= ||E||_2), so
      max |diff| / ||A||_2 <= 1e-9 in float64, and for float32 svdvals of weights max |diff| / sigma_1 <= 1e-5
      (a few eps32 * sqrt(n) for n up to 1536). The gram route squares the matrix: sigma_i = sqrt(lambda_i)
      with lambda error ~eps64 * sigma_1^2, i.e. sigma error up to ~sqrt(eps64) * sigma_1 = 1.5e-8 sigma_1
      for the smallest sigma: tolerance 1e-6.
  stationary distribution: a probability vector from a well-conditioned PageRank system: max |diff| <= 1e-8.
  compression: the factorization runs on the CPU for either device (lowrank.factorize_matrix moves W to the
      CPU), so its singular values must agree to 1e-5 relative (float32); the factored copy's quality
      (perplexity / embedding cosine) relative |diff| <= 1e-3 (a float32 forward on two devices).

With --reference-dtype float64 the reference side runs its model in float64 (and the weights' svdvals in
float64): then the comparison measures float32 rounding itself, the same tolerances apply, and it runs with
--device cpu on a machine without a GPU, which is how the comparison code is exercised there. In that mode the
capture, weight-spectra and compression rows compare float32 against float64; the attention linear-algebra rows
(eigvals, grid, head spectrum) get the same float64 input and the same CPU LAPACK on both sides, so they read 0
and exercise only the matching and reporting. --tolerance-scale 1e-12 makes every non-zero error a mismatch:
a check of the failure path (exit status 1).

Usage: .venv/bin/python bench/gpu_check.py [--models minilm-l6 smollm2-135m] [--tokens 128]
       [--device cuda|cpu] [--reference-dtype float32|float64] [--heads 3] [--tolerance-scale 1]
Without CUDA (and without --device) it prints "no CUDA device: nothing to compare" and exits 0.
Exit status 1 if any comparison is out of tolerance.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from explorer.analysis import compression as comp  # noqa: E402
from explorer.analysis.attention import attention_grid, head_spectrum  # noqa: E402
from explorer.analysis.weights import compute_weight_spectra  # noqa: E402
from explorer.models import capture, load_model  # noqa: E402
from explorer.spectra import attention_spectra as spec  # noqa: E402
from explorer.texts import example_texts  # noqa: E402

TOL = {
    "attention": 1e-4,
    "hidden_rel": 1e-3,
    "loss": 1e-3,
    "eig_rel": 1e-6,
    "lambda2": 1e-6,
    "entropy": 1e-9,
    "rank_rel": 1e-6,
    "numerical_rank": 1,
    "sym_rel": 1e-9,
    "stationary": 1e-8,
    "svd32_rel": 1e-5,
    "gram_rel": 1e-6,
    "quality_rel": 1e-3,
}


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(on: str, fn, *args, **kwargs):
    """(fn(*args, **kwargs), wall seconds), device ``on`` synchronized before and after."""
    sync(on)
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    sync(on)
    return value, time.perf_counter() - start


def matched_error(a: np.ndarray, b: np.ndarray) -> float:
    """Max |a_i - b_pi(i)| over the minimum-cost one-to-one matching of two multisets of complex numbers."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    cost = np.abs(a[:, None] - b[None, :])
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].max())


def spectral_norms(attentions: np.ndarray) -> np.ndarray:
    """||A||_2 of every head: (layer, head)."""
    return torch.linalg.matrix_norm(torch.from_numpy(attentions).double(), ord=2).numpy()


class Checks:
    """Collects rows: (model, check, reference seconds, test seconds, error, tolerance)."""

    def __init__(self):
        self.rows: list[tuple] = []

    def add(self, model: str, name: str, t_ref: float | None, t_test: float | None, error: float, tol: float):
        ok = bool(np.isfinite(error) and error <= tol)
        self.rows.append((model, name, t_ref, t_test, float(error), tol, ok))
        print(
            f"  {name:<44} ref {fmt(t_ref)}  test {fmt(t_test)}  error {error:.2e}  tol {tol:.0e}  "
            f"{'ok' if ok else 'MISMATCH'}",
            flush=True,
        )

    @property
    def ok(self) -> bool:
        return all(row[-1] for row in self.rows)


def fmt(seconds: float | None) -> str:
    return "     —  " if seconds is None else f"{seconds:7.3f}s"


def load_side(model_id: str, device: str, float64: bool):
    loaded = load_model(model_id, device=device)
    if float64:
        loaded.model.to(torch.float64)  # our own copy, not a cached one
    return loaded


def check_model(model_id: str, args, checks: Checks) -> None:
    ref_dev, test_dev = "cpu", args.device
    f64 = args.reference_dtype == "float64"
    text = (" ".join(example_texts().values()) + " ") * 4
    print(f"\n== {model_id}: reference cpu ({args.reference_dtype}) vs test {test_dev} (float32)", flush=True)

    ref, t_ref = timed(ref_dev, lambda: load_side(model_id, ref_dev, f64))
    test, t_test = timed(test_dev, lambda: load_side(model_id, test_dev, False))
    checks.add(model_id, "load_model", t_ref, t_test, 0.0, 0.0)

    # capture: each side its own model
    cap_r, t_ref = timed(ref_dev, lambda: capture(ref, text, args.tokens))
    cap_t, t_test = timed(test_dev, lambda: capture(test, text, args.tokens))
    checks.add(
        model_id,
        "capture: attention max |diff|",
        t_ref,
        t_test,
        float(np.abs(cap_r.attentions - cap_t.attentions).max()),
        TOL["attention"],
    )
    rel = [
        np.linalg.norm(r - t) / max(np.linalg.norm(r), 1e-30)
        for r, t in zip(cap_r.hidden_states, cap_t.hidden_states, strict=True)
    ]
    checks.add(
        model_id, "capture: hidden states, max rel. per layer", None, None, max(rel), TOL["hidden_rel"]
    )
    if cap_r.token_losses is not None:
        checks.add(
            model_id,
            "capture: next-token loss max |diff| (nats)",
            None,
            None,
            float(np.abs(cap_r.token_losses - cap_t.token_losses).max()),
            TOL["loss"],
        )

    # attention eigenvalues, batched, same input
    att = cap_r.attentions
    norms = spectral_norms(att)
    A_ref = spec.as_float64(att, ref_dev)
    A_test = spec.as_float64(att, test_dev)
    ev_r, t_ref = timed(ref_dev, lambda: spec.eigvals(A_ref).cpu().numpy())
    ev_t, t_test = timed(test_dev, lambda: spec.eigvals(A_test).cpu().numpy())
    worst = max(
        matched_error(ev_r[i, j], ev_t[i, j]) / norms[i, j]
        for i in range(att.shape[0])
        for j in range(att.shape[1])
    )
    checks.add(
        model_id,
        f"attention eigvals, {att.shape[0] * att.shape[1]} heads batched",
        t_ref,
        t_test,
        worst,
        TOL["eig_rel"],
    )

    # the grid (every head's metrics)
    g_r, t_ref = timed(ref_dev, lambda: attention_grid(att, causal=cap_r.causal, device=ref_dev))
    g_t, t_test = timed(test_dev, lambda: attention_grid(att, causal=cap_r.causal, device=test_dev))
    checks.add(
        model_id,
        "attention grid: |lambda_2|",
        t_ref,
        t_test,
        float(np.abs(g_r.lambda2_abs - g_t.lambda2_abs).max()),
        TOL["lambda2"],
    )
    checks.add(
        model_id,
        "attention grid: entropy, sink mass",
        None,
        None,
        float(max(np.abs(g_r.entropy - g_t.entropy).max(), np.abs(g_r.sink_mass - g_t.sink_mass).max())),
        TOL["entropy"],
    )
    checks.add(
        model_id,
        "attention grid: effective, stable rank (rel.)",
        None,
        None,
        float(
            max(
                np.abs(g_t.effective_rank / g_r.effective_rank - 1).max(),
                np.abs(g_t.stable_rank / g_r.stable_rank - 1).max(),
            )
        ),
        TOL["rank_rel"],
    )
    checks.add(
        model_id,
        "attention grid: numerical rank",
        None,
        None,
        float(np.abs(g_r.numerical_rank - g_t.numerical_rank).max()),
        TOL["numerical_rank"],
    )

    # head spectra: the eigh path (symmetric part), singular values, Laplacian, stationary distribution
    rng = np.random.default_rng(0)
    heads = [(0, 0)] + [
        (int(rng.integers(att.shape[0])), int(rng.integers(att.shape[1]))) for _ in range(args.heads - 1)
    ]
    errs = {"sym": 0.0, "sv": 0.0, "lap": 0.0, "eig": 0.0, "pi": 0.0}
    t_ref = t_test = 0.0
    for layer, head in heads:
        h_r, s_r = timed(ref_dev, head_spectrum, att, layer, head, causal=cap_r.causal, device=ref_dev)
        h_t, s_t = timed(test_dev, head_spectrum, att, layer, head, causal=cap_r.causal, device=test_dev)
        t_ref, t_test = t_ref + s_r, t_test + s_t
        n2 = norms[layer, head]
        errs["sym"] = max(errs["sym"], float(np.abs(h_r.sym_eigvals - h_t.sym_eigvals).max() / n2))
        errs["sv"] = max(errs["sv"], float(np.abs(h_r.singular_values - h_t.singular_values).max() / n2))
        lap_norm = max(np.abs(h_r.laplacian_eigvals).max(), 1e-30)
        errs["lap"] = max(errs["lap"], matched_error(h_r.laplacian_eigvals, h_t.laplacian_eigvals) / lap_norm)
        errs["eig"] = max(errs["eig"], matched_error(h_r.eigvals, h_t.eigvals) / n2)
        errs["pi"] = max(errs["pi"], float(np.abs(h_r.stationary - h_t.stationary).max()))
    label = f"{len(heads)} heads"
    checks.add(
        model_id, f"head spectrum ({label}): symmetric part, eigh", t_ref, t_test, errs["sym"], TOL["sym_rel"]
    )
    checks.add(model_id, "head spectrum: singular values", None, None, errs["sv"], TOL["sym_rel"])
    checks.add(model_id, "head spectrum: eigenvalues (matched)", None, None, errs["eig"], TOL["eig_rel"])
    checks.add(
        model_id, "head spectrum: Laplacian eigenvalues (matched)", None, None, errs["lap"], TOL["eig_rel"]
    )
    checks.add(model_id, "head spectrum: stationary distribution", None, None, errs["pi"], TOL["stationary"])

    # weight spectra: both routes; the reference in float64 when asked
    for method, tol in (("svd", TOL["svd32_rel"]), ("gram", TOL["gram_rel"])):
        ws_t, t_test = timed(
            test_dev, lambda m=method: compute_weight_spectra(test.model, device=test_dev, method=m)
        )
        ws_r, t_ref = timed(
            ref_dev, lambda m=method: compute_weight_spectra(ref.model, device=ref_dev, method=m)
        )
        sigma_r = ws_r.sigma
        if f64:  # the reference: float64 singular values of the (float32-exact) weights
            sigma_r = [torch.linalg.svdvals(m.weight.detach().double()).numpy() for m in _matrices(ref.model)]
        err = max(
            float(np.abs(np.asarray(r) - np.asarray(t)).max() / max(np.asarray(r)[0], 1e-30))
            for r, t in zip(sigma_r, ws_t.sigma, strict=True)
        )
        what = "torch.linalg.svdvals float32" if method == "svd" else "Gram eigvalsh float64"
        checks.add(model_id, f"weight spectra ({len(ws_t.sigma)} matrices), {what}", t_ref, t_test, err, tol)

    # compression: factorization (CPU for either device) and the factored copy's quality on each device
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.available_kinds(test.model))
    ref32 = ref if not f64 else load_side(model_id, ref_dev, False)
    f_r, t_ref = timed(ref_dev, lambda: comp.factorize_model(ref32, "svd", kinds, None))
    f_t, t_test = timed(test_dev, lambda: comp.factorize_model(test, "svd", kinds, None))
    err = max(
        float(np.abs(a.sigma - b.sigma).max() / a.sigma[0])
        for a, b in zip(f_r.matrices, f_t.matrices, strict=True)
    )
    checks.add(
        model_id,
        f"compression: factorize {len(f_r.matrices)} MLP matrices",
        t_ref,
        t_test,
        err,
        TOL["svd32_rel"],
    )
    setting = comp.RankSetting(mode="share", share=0.5)
    quality = []
    times = []
    for loaded, fact in ((ref32, f_r), (test, f_t)):
        evalset = comp.make_eval_set(loaded, comp.heldout_text(), args.tokens)
        reference = comp.reference(loaded, evalset)
        ranks = comp.choose_ranks(fact, setting)
        outcome, seconds = timed(loaded.device, comp.evaluate_ranks, loaded, fact, ranks, evalset, reference)
        quality.append(outcome.after.headline)
        times.append(seconds)
    checks.add(
        model_id,
        "compression: factored copy's quality (rel.)",
        times[0],
        times[1],
        abs(quality[1] - quality[0]) / max(abs(quality[0]), 1e-30),
        TOL["quality_rel"],
    )


def _matrices(model):
    from explorer.analysis.matrices import weight_matrices

    return weight_matrices(model)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["minilm-l6", "smollm2-135m"])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--device", default=None, help="the test side (default: cuda when there is one)")
    parser.add_argument(
        "--reference-dtype",
        choices=["float32", "float64"],
        default=None,
        help="the CPU reference's model dtype (default: float32 against a GPU, float64 with --device cpu)",
    )
    parser.add_argument("--heads", type=int, default=3, help="heads for the full head-spectrum check")
    parser.add_argument("--tolerance-scale", type=float, default=1.0, help="multiply every tolerance by this")
    args = parser.parse_args()
    for key in TOL:
        TOL[key] *= args.tolerance_scale
    if args.device is None:
        if not torch.cuda.is_available():
            print("no CUDA device: nothing to compare (run with --device cpu to exercise the comparison)")
            return 0
        args.device = "cuda"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: nothing to compare")
        return 0
    if args.reference_dtype is None:
        args.reference_dtype = "float64" if args.device == "cpu" else "float32"
    warnings.simplefilter("ignore")
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(
        f"torch {torch.__version__}; test device {args.device} ({device_name}); reference cpu "
        f"{args.reference_dtype}; {args.tokens} tokens; {os.cpu_count()} CPUs"
    )
    checks = Checks()
    for model_id in args.models:
        check_model(model_id, args, checks)

    print()
    header = f"{'model':<14}{'check':<50}{'ref (s)':>9}{'test (s)':>9}{'x':>7}{'error':>10}{'tol':>8}  result"
    print(header)
    print("-" * len(header))
    for model, name, t_ref, t_test, error, tol, ok in checks.rows:
        speed = f"{t_ref / t_test:.1f}" if t_ref and t_test else "—"
        print(
            f"{model:<14}{name[:49]:<50}{fmt(t_ref):>9}{fmt(t_test):>9}{speed:>7}{error:>10.1e}{tol:>8.0e}  "
            f"{'ok' if ok else 'MISMATCH'}"
        )
    bad = [row for row in checks.rows if not row[-1]]
    print(f"\n{len(checks.rows) - len(bad)} of {len(checks.rows)} comparisons within tolerance")
    return 0 if not bad else 1


if __name__ == "__main__":
    raise SystemExit(main())
