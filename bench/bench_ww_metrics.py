"""WeightWatcher's metric set, ours against WeightWatcher 0.7.7's analyze(randomize=True), same process, same run.

Ours:  analysis.weights.compute_weight_spectra (every spectrum, alpha fits, norms) followed by
       compute_randomized_spectra (every matrix shuffled and decomposed again; rand_distance and traps), i.e. the
       first visit of the weights page with the randomized comparison on, with no disk cache.
Theirs: ww.WeightWatcher(model=...).analyze(randomize=True) (its SVDs, power-law fits, randomized ESDs, MP fits).

Agreement, matrix by matrix (matched by module name):
  log_norm, log_spectral_norm, stable_rank: the same definitions (eigenvalues of W^T W), so equal to rounding;
  alpha and alpha-hat "under its conventions": our fit with its one-sided KS distance and tails down to 2
    points (``fit_power_law(ks="weightwatcher", min_tail=2)``), alpha-hat = that alpha * our log_spectral_norm;
    also the app's own alpha (exact KS, tails >= 10) for reference;
  rand_distance: a random variable (each side shuffles with its own random numbers; WeightWatcher's
    np.random.shuffle is unseeded), so the bench reports the differences next to our own seed-to-seed spread;
  traps: WeightWatcher counts shuffled eigenvalues past its *fitted* MP edge (kernel-density sigma, a TW term);
    ours past lambda_+ of the mean squared entry plus 4 TW widths: the counts are listed, not expected equal.

WeightWatcher is a bench-only dependency (bench/requirements.txt), never imported by the app or the tests.
Run:  HF_HUB_OFFLINE=1 /tmp/bench-venv/bin/python bench/bench_ww_metrics.py [--model smollm2-135m] [--blocks K]
``--blocks K`` analyses the first K transformer blocks only (both sides, the same tensors) to keep it short.
Machines here are shared: the load average is printed; compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from explorer.analysis.weights import compute_randomized_spectra, compute_weight_spectra  # noqa: E402
from explorer.models import load_model  # noqa: E402
from explorer.spectra.heavy_tail import esd, fit_power_law  # noqa: E402


class Blocks(torch.nn.Module):
    """The first ``k`` transformer blocks of a model, sharing its modules (nothing is copied). A ModuleDict, not a
    ModuleList: the app then lists its Linear weights generically (no model anatomy without a config)."""

    def __init__(self, blocks: list[torch.nn.Module]):
        super().__init__()
        self.blocks = torch.nn.ModuleDict({str(i): block for i, block in enumerate(blocks)})


def _blocks_of(model: torch.nn.Module) -> torch.nn.ModuleList:
    for path in ("model.layers", "encoder.layer", "transformer.h", "bert.encoder.layer"):
        obj = model
        with contextlib.suppress(AttributeError):
            for part in path.split("."):
                obj = getattr(obj, part)
            return obj
    raise SystemExit("no transformer blocks found for --blocks")


def run_weightwatcher(model: torch.nn.Module):
    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return ww.WeightWatcher(model=model).analyze(randomize=True)


def summary(pairs: list[tuple[str, float, float]]) -> dict:
    if not pairs:
        return {"matched": 0}
    a = np.array([p[1] for p in pairs])
    b = np.array([p[2] for p in pairs])
    diff = np.abs(a - b)
    rel = diff / np.maximum(np.abs(b), 1e-300)
    worst = pairs[int(diff.argmax())]
    return {
        "matched": len(pairs),
        "median_abs_diff": float(np.median(diff)),
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float(rel.max()),
        "share_equal_1e-6_rel": float((rel <= 1e-6).mean()),
        "pearson_r": float(np.corrcoef(a, b)[0, 1])
        if len(pairs) > 2 and a.std() > 0 and b.std() > 0
        else None,
        "worst": {"name": worst[0], "ours": worst[1], "ww": worst[2]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--blocks", type=int, default=None, help="only the first K transformer blocks")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    loaded = load_model(args.model, device="cpu")
    model = loaded.model
    if args.blocks is not None:
        model = Blocks(list(_blocks_of(model))[: args.blocks])

    start = time.perf_counter()
    spectra = compute_weight_spectra(model)
    t_real = time.perf_counter() - start
    start = time.perf_counter()
    rand = compute_randomized_spectra(model, spectra, seed=0)
    t_rand = time.perf_counter() - start
    rand_other = compute_randomized_spectra(model, spectra, seed=1)  # our own seed-to-seed spread (not timed)

    start = time.perf_counter()
    details = run_weightwatcher(model)
    t_ww = time.perf_counter() - start

    index = {name: i for i, name in enumerate(spectra.names)}
    alpha_ww_conv = np.array(
        [
            float(fit_power_law(esd(s, tuple(shape)), ks="weightwatcher", min_tail=2).alpha)
            for s, shape in zip(spectra.sigma, spectra.shapes, strict=True)
        ]
    )
    ours = {
        "log_norm": spectra.metric("log_norm"),
        "log_spectral_norm": spectra.metric("log_spectral_norm"),
        "stable_rank": spectra.metric("stable_rank"),
        "alpha": alpha_ww_conv,
        "alpha_weighted": alpha_ww_conv * spectra.metric("log_spectral_norm"),
        "alpha_app_fit": spectra.alpha,
        "rand_distance": rand.rand_distance,
        "num_traps": rand.n_traps,
    }
    columns = {"alpha_app_fit": "alpha"}
    pairs: dict[str, list] = {key: [] for key in ours}
    traps = []
    for _, row in details.iterrows():
        name = str(row.get("longname", row.get("name")))
        if name not in index:
            continue
        i = index[name]
        for key, values in ours.items():
            theirs = row.get(columns.get(key, key))
            if theirs is None or not np.isfinite(values[i]) or not np.isfinite(float(theirs)):
                continue
            if key.startswith("alpha") and float(row["alpha"]) <= 0:
                continue
            pairs[key].append((name, float(values[i]), float(theirs)))
        if "num_traps" in row and (rand.n_traps[i] > 0 or float(row["num_traps"]) > 0):
            traps.append((name, int(rand.n_traps[i]), int(row["num_traps"])))

    spread = np.abs(rand.rand_distance - rand_other.rand_distance)
    result = {
        "model": args.model,
        "blocks": args.blocks,
        "matrices_ours": len(spectra),
        "matrices_ww": int(len(details)),
        "ours_real_s": t_real,
        "ours_randomized_s": t_rand,
        "ours_total_s": t_real + t_rand,
        "weightwatcher_randomize_s": t_ww,
        "speedup": t_ww / (t_real + t_rand),
        "agreement": {key: summary(value) for key, value in pairs.items()},
        "rand_distance_our_seed_spread": {"median": float(np.median(spread)), "max": float(spread.max())},
        "traps_ours_total": int(rand.n_traps.sum()),
        "traps_matrices_either": traps,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
    }
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.json is not None:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
