"""The report's quantization entries: what fewer bits cost on the same groups the compression sweep factors.

metrics.json's ``"compression"`` list gains one row per method below, each with ``"method"``, ``"groups"``,
``"bytes"`` (the whole model's storage: fp16 for every parameter left alone, the real storage of the changed
matrices: codes, scales and offsets, fp16 factors), ``"group_bytes"`` and ``"group_bytes_fp16"`` (the changed
matrices only), ``"weight_error"`` (sum ||W - Q(W)||_F² / sum ||W||_F²), the quality keys (``"perplexity"`` and
``"kl"``, or ``"embedding_cosine"`` and ``"similarity_spearman"``) and ``"latency_ms"``:

- ``"int8"``: int8 codes per output row (absmax scale); ``"int4-g32"``, ``"int4-g128"``: 4-bit symmetric groups
  of 32 / 128 input columns; ``"int4-g32-asym"``: with an offset per group, the grid GGUF's Q4_1 uses;
- ``"svd-residual-int4-g32"``: each matrix's top singular directions holding half its energy kept at fp16, the
  residual in 4-bit groups of 32 (``"ranks"``: the rank kept per matrix);
- ``"svdllm+int8"``: SVD-LLM factors at half the break-even rank of every matrix, each factor in int8;
- ``"svdllm-healed"``: the same factors (fp16) after ``HEAL_STEPS`` Adam steps on the calibration text
  (``"healing"``: steps, learning rate, seconds, objective, its value on the calibration text before and after,
  and the quality before healing).
"""

from __future__ import annotations

from explorer.analysis import compression as comp
from explorer.analysis import healing
from explorer.analysis import quantize as qz
from explorer.analysis.lowrank import Factorization
from explorer.analysis.quality import quality_values
from explorer.models import LoadedModel
from explorer.spectra.quantization import INT8, QuantScheme

REPORT_SCHEMES = (INT8, QuantScheme(4, 32), QuantScheme(4, 128), QuantScheme(4, 32, symmetric=False))
RESIDUAL_SCHEME = QuantScheme(4, 32)
COMBINED_SHARE = 0.5  # of each matrix's break-even rank, as the sweep's 50 % point
HEAL_STEPS = 20


def quality_record(q: comp.Quality) -> dict:
    """The quality keys of a row: perplexity and KL (causal) or cosine and Spearman (encoder), and latency."""
    return {**quality_values(q), "latency_ms": q.latency_ms}


def outcome_record(outcome: qz.QuantOutcome) -> dict:
    row = {
        "method": outcome.method,
        "groups": list(outcome.kinds),
        "bytes": outcome.bytes_model,
        "group_bytes": outcome.bytes_chosen,
        "group_bytes_fp16": outcome.bytes_chosen_fp16,
        "weight_error": outcome.weight_error,
        **quality_record(outcome.after),
    }
    if outcome.ranks:
        row["ranks"] = dict(outcome.ranks)
    return row


def quantization_records(
    loaded: LoadedModel,
    kinds: tuple[str, ...],
    svdllm: Factorization,
    evalset: comp.EvalSet,
    ref: comp.Reference,
) -> list[dict]:
    """The rows described in the module docstring, in that order."""
    rows = [outcome_record(qz.quantize_weights(loaded, kinds, s, evalset, ref)) for s in REPORT_SCHEMES]
    rows.append(outcome_record(qz.residual_split_weights(loaded, kinds, RESIDUAL_SCHEME, evalset, ref)))
    ranks = comp.choose_ranks(svdllm, comp.RankSetting(mode="share", share=COMBINED_SHARE))
    rows.append(outcome_record(qz.quantize_factored_weights(loaded, svdllm, ranks, INT8, evalset, ref)))

    run, _model = healing.heal(
        loaded, svdllm, ranks, comp.shipped_calibration_text(), evalset, ref, steps=HEAL_STEPS
    )
    kept = {f.name: f for f in svdllm.matrices if f.name in ranks}
    factor_bytes = sum(comp.BYTES_PER_PARAM * k * sum(kept[n].shape) for n, k in ranks.items())
    dense_bytes = sum(comp.BYTES_PER_PARAM * kept[n].shape[0] * kept[n].shape[1] for n in ranks)
    rows.append(
        {
            "method": "svdllm-healed",
            "groups": list(svdllm.kinds),
            "bytes": qz.model_fp16_bytes(loaded) - dense_bytes + factor_bytes,
            "group_bytes": factor_bytes,
            "group_bytes_fp16": dense_bytes,
            **quality_record(run.after),
            "healing": {
                "steps": run.steps,
                "lr": run.lr,
                "lr_asked": run.lr_asked,
                "best_step": run.best_step,
                "validation_losses": run.validation_losses.tolist(),
                "seconds": run.seconds,
                "objective": run.objective,
                "calibration_before": run.calibration_before,
                "calibration_after": run.calibration_after,
                "quality_before": quality_record(run.before),
            },
        }
    )
    return rows
