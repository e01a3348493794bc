"""The report's quantization rows (explorer/report/quantization.py): every method present, bytes as defined,
checked against hand counts from the model's own matrices."""

import json

import pytest

from explorer.analysis import compression as comp
from explorer.analysis.matrices import weight_matrices
from explorer.models import capture
from explorer.report.build import write_report
from explorer.report.compression import compression_section
from explorer.report.quantization import REPORT_SCHEMES, RESIDUAL_SCHEME

NEW_METHODS = [s.name for s in REPORT_SCHEMES] + [
    f"svd-residual-{RESIDUAL_SCHEME.name}",
    "svdllm+int8",
    "svdllm-healed",
]


@pytest.mark.parametrize("model_id", ["tiny-llama", "tiny-bert"])
def test_report_has_every_quantization_row(load, tmp_path, model_id):
    loaded = load(model_id)
    cap = capture(loaded, comp.heldout_text(), 64)
    metrics_path, _ = write_report(loaded, cap, tmp_path, [compression_section])
    rows = {
        r["method"]: r for r in json.loads(metrics_path.read_text())["compression"] if "allocation" not in r
    }
    assert list(rows) == NEW_METHODS
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.available_kinds(loaded.model))
    mats = [m for m in weight_matrices(loaded.model) if m.kind in kinds]
    fp16 = 2 * sum(m.weight.numel() for m in mats)
    quality = ("perplexity", "kl") if loaded.causal else ("embedding_cosine", "similarity_spearman")
    for scheme in REPORT_SCHEMES:
        row = rows[scheme.name]
        assert row["group_bytes"] == sum(scheme.nbytes(tuple(m.shape)) for m in mats)
        assert row["group_bytes_fp16"] == fp16
        assert row["bytes"] == 2 * loaded.card.n_params - fp16 + row["group_bytes"]
        assert 0 < row["weight_error"] < 1
    for row in rows.values():
        assert set(quality) <= set(row) and "latency_ms" in row
        assert (
            row["bytes"] < 2 * loaded.card.n_params or row["method"] == f"svd-residual-{RESIDUAL_SCHEME.name}"
        )
    healed = rows["svdllm-healed"]["healing"]
    assert healed["calibration_after"] < healed["calibration_before"]
    assert healed["steps"] > 0 and healed["seconds"] > 0
