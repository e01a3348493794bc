"""``report --compare KEY``: the compare section's numbers are the analysis functions' (called here directly,
not through the report's code), a variant equal to A changes nothing, and a bad key is refused before anything
is written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.analysis import variants as V
from explorer.analysis.compare import MATRIX_METRICS, SUBSPACE_RANKS, compare_metric, delta_spectrum
from explorer.analysis.weights import compute_weight_spectra, weight_spectra
from explorer.cli import main
from explorer.errors import InputError
from explorer.models.tiny import build_tiny_model, byte_tokenizer
from explorer.report.build import SECTION_NAMES, parse_sections
from tests import tolerances
from tests.conftest import get_model

TEXT = "The fox saw the dog. The dog saw the fox."

MATRIX_KEYS = {
    "name",
    "layer",
    "kind",
    "shape",
    *(f"{m}_{who}" for m in MATRIX_METRICS for who in "ab"),
    "changed",
    "relative_change",
    "delta_frobenius",
    "delta_effective_rank",
    "delta_stable_rank",
    "delta_numerical_rank",
    "energy_share",
    "amplification",
}
CAUSAL_OUTPUT_KEYS = {
    "n_tokens",
    "n_positions",
    "kl",
    "top1_agreement",
    "perplexity_a",
    "perplexity_b",
    "n_new",
    "continuation_a",
    "continuation_b",
}


def _report(tmp_path, model: str, key: str, *extra: str):
    out = tmp_path / "report"
    code = main(["report", "--model", model, "--text", TEXT, "--compare", key, *extra, "--out", str(out)])
    return code, out


def _metrics(out) -> dict:
    return json.loads((out / "metrics.json").read_text())


def _documented_keys(compare: dict, causal: bool) -> None:
    assert {"key", "description", "notes", "subspace_ranks", "matrices", "summary", "outputs"} <= set(compare)
    assert compare["subspace_ranks"] == list(SUBSPACE_RANKS)
    for row in compare["matrices"]:
        assert MATRIX_KEYS <= set(row)
        assert set(row["energy_share"]) == set(row["amplification"]) == {str(r) for r in SUBSPACE_RANKS}
    for row in compare["summary"]:
        assert {"kind", "n_matrices", "mean_alpha_a", "mean_alpha_b", "relative_change"} <= set(row)
    assert compare["summary"][-1]["kind"] == "all"
    expected = CAUSAL_OUTPUT_KEYS if causal else {"n_tokens", "mean_cosine", "relative_change"}
    assert expected <= set(compare["outputs"])


# ------------------------------------------------------------------------------------------------ sections


def test_compare_runs_only_with_a_key():
    assert "compare" in SECTION_NAMES
    assert "compare" not in parse_sections(None)
    assert parse_sections(None, compare=True)[-1] == "compare"
    assert parse_sections("weights", compare=True) == ("weights", "compare")
    assert parse_sections("compare", compare=True) == ("compare",)
    with pytest.raises(InputError, match="--compare KEY"):
        parse_sections("weights,compare")


def test_bad_key_exits_2_naming_the_keys_and_writes_nothing(tmp_path, capsys):
    code, out = _report(tmp_path, "tiny-gpt2", "int5-g32")
    err = capsys.readouterr().err
    assert code == 2 and "int5-g32" in err
    assert all(form in err for form in ("int8", "int4-g32", "rank:0.8:svdllm", "lora:r8:s50", "dir:"))
    assert "Traceback" not in err and not out.exists()
    code, out = _run_sections_compare_without_key(tmp_path)
    assert code == 2 and "--compare KEY" in capsys.readouterr().err and not out.exists()
    # A key that parses but names no model: refused when B is built, and still nothing is written.
    code, out = _report(tmp_path, "tiny-gpt2", f"dir:{tmp_path / 'missing'}", "--sections", "compare")
    err = capsys.readouterr().err
    assert code == 2 and "dir:" in err and "Traceback" not in err and not out.exists()


def _run_sections_compare_without_key(tmp_path):
    out = tmp_path / "report"
    code = main(
        ["report", "--model", "tiny-gpt2", "--text", TEXT, "--sections", "compare", "--out", str(out)]
    )
    return code, out


# ------------------------------------------------------------------------------------- B equal to A


def test_a_variant_equal_to_a_changes_nothing(tmp_path, capsys):
    folder = tmp_path / "same"
    build_tiny_model("gpt2").save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    code, out = _report(tmp_path, "tiny-gpt2", f"dir:{folder}", "--sections", "compare")
    err = capsys.readouterr().err
    assert code == 0, err
    assert "computing compare" in err and "compare: building B" in err
    metrics = _metrics(out)
    assert set(metrics) == {"compare"}
    compare = metrics["compare"]
    _documented_keys(compare, causal=True)
    for row in compare["matrices"]:
        assert row["changed"] is False and row["relative_change"] == 0.0 and row["delta_frobenius"] == 0.0
        assert row["delta_effective_rank"] == 0.0 and row["delta_stable_rank"] == 0.0
        assert all(v is None for v in row["energy_share"].values())
        for m in MATRIX_METRICS:
            assert row[f"{m}_a"] == row[f"{m}_b"]
    # What the report writes for an unchanged matrix is what delta_spectrum gives for dW = 0.
    loaded = get_model("tiny-gpt2")
    variant = V.build_variant(loaded, f"dir:{folder}")
    for row in compare["matrices"][:3]:
        d = delta_spectrum(*V.matrix_pair(loaded, variant, row["name"]))
        assert d.zero and d.effective_rank == 0.0 and d.stable_rank == 0.0 and d.numerical_rank == 0
    assert all(s["relative_change"] == 0.0 for s in compare["summary"])
    outputs = compare["outputs"]
    assert outputs["kl"] == 0.0 and outputs["top1_agreement"] == 1.0
    assert outputs["perplexity_a"] == outputs["perplexity_b"]
    assert outputs["continuation_a"] == outputs["continuation_b"]
    assert "No change" in (out / "report.html").read_text()


# -------------------------------------------------------------------- int8: the analysis functions' numbers


@pytest.fixture(scope="module")
def int8_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "int8"
    args = ["report", "--model", "tiny-llama", "--text", TEXT, "--compare", "int8", "--sections", "compare"]
    assert main([*args, "--out", str(out)]) == 0
    return _metrics(out)["compare"], (out / "report.html").read_text()


def _same(reported, direct) -> bool:
    """JSON's value (None for nan) against the analysis function's float."""
    return (reported is None and not np.isfinite(direct)) or reported == direct


def test_int8_matrix_numbers_are_compare_py_s(int8_report):
    compare, _html = int8_report
    _documented_keys(compare, causal=True)
    loaded = get_model("tiny-llama")
    variant = V.build_variant(loaded, "int8")
    rows = {row["name"]: row for row in compare["matrices"]}
    changed = [name for name, row in rows.items() if row["changed"]]
    assert set(changed) == set(variant.replaced)  # every attention and MLP matrix, no embedding
    for name in changed:
        row = rows[name]
        W_A, W_B = V.matrix_pair(loaded, variant, name)
        d = delta_spectrum(W_A, W_B)
        assert row["delta_frobenius"] == d.frobenius and row["delta_numerical_rank"] == d.numerical_rank
        assert row["delta_effective_rank"] == d.effective_rank and row["delta_stable_rank"] == d.stable_rank
        for r in SUBSPACE_RANKS:
            k = str(r)
            if r <= d.energy_share.size:
                assert row["energy_share"][k] == d.energy_share[r - 1]
                assert row["amplification"][k] == d.amplification[r - 1]
            else:
                assert row["energy_share"][k] is None and row["amplification"][k] is None
        # Against numpy, not through the report: ||W_B - W_A||_F / ||W_A||_F (float64 of float32 inputs:
        # a sum of squares, relative error ~ mn eps64), and the theorem that a square W_A's full singular
        # bases hold all of dW's energy (share 1 at r = n, to the orthogonality of LAPACK's U and V).
        m, n = W_A.shape
        relative = np.linalg.norm(W_B - W_A) / np.linalg.norm(W_A)
        assert row["relative_change"] == pytest.approx(
            relative, rel=tolerances.SAFETY * m * n * tolerances.eps()
        )
        if m == n and n in SUBSPACE_RANKS:
            bound = tolerances.SAFETY * n * tolerances.eps()
            assert row["energy_share"][str(n)] == pytest.approx(1.0, abs=bound)
        shares = [
            row["energy_share"][str(r)] for r in SUBSPACE_RANKS if row["energy_share"][str(r)] is not None
        ]
        assert np.all(np.diff(shares) >= -tolerances.SAFETY * n * tolerances.eps())  # nested blocks
    # A's and B's metrics: compare_metric over A's and B's weight spectra computed here from scratch (B's
    # matrices all decomposed, not A's rows reused as the report does).
    spectra_a = weight_spectra(loaded.model)
    spectra_b = compute_weight_spectra(loaded.model, mats=variant.matrices(loaded.model))
    for metric in MATRIX_METRICS:
        c = compare_metric(spectra_a.metric(metric), spectra_b.metric(metric), metric)
        for i, name in enumerate(spectra_a.names):
            assert _same(rows[name][f"{metric}_a"], c.a[i]) and _same(rows[name][f"{metric}_b"], c.b[i]), (
                metric,
                name,
            )
    # The summary: the mean of the rows' alphas (finite in both), per kind and over all.
    for s in compare["summary"]:
        chosen = [
            r
            for r in compare["matrices"]
            if (s["kind"] == "all" or r["kind"] == s["kind"]) and None not in (r["alpha_a"], r["alpha_b"])
        ]
        assert s["n_matrices"] == len(chosen)
        mean_a, mean_b = np.mean([r["alpha_a"] for r in chosen]), np.mean([r["alpha_b"] for r in chosen])
        assert s["mean_alpha_a"] == pytest.approx(mean_a, rel=1e-14)
        assert s["relative_change"] == pytest.approx((mean_b - mean_a) / abs(mean_a), rel=1e-12, abs=1e-15)


def test_int8_outputs_are_compare_outputs(int8_report):
    compare, html = int8_report
    loaded = get_model("tiny-llama")
    variant = V.build_variant(loaded, "int8")
    outputs = compare["outputs"]
    direct = V.compare_outputs_of(loaded, variant, TEXT, outputs["n_tokens"], n_new=outputs["n_new"])
    t = direct.tokens
    assert outputs["n_tokens"] == direct.n_tokens == len(loaded.tokenizer(TEXT)["input_ids"])
    assert outputs["kl"] == t.kl and outputs["top1_agreement"] == t.top1_agreement
    assert outputs["perplexity_a"] == t.perplexity_a and outputs["perplexity_b"] == t.perplexity_b
    assert outputs["continuation_a"] == direct.continuation_a
    assert outputs["continuation_b"] == direct.continuation_b
    assert outputs["kl"] >= 0.0 and 0.0 <= outputs["top1_agreement"] <= 1.0
    assert outputs["n_positions"] == outputs["n_tokens"] - 1
    assert "mean KL(A ‖ B)" in html and "int8" in html and "No change" not in html


# ---------------------------------------------------------------------------------- encoder, LoRA


def test_encoder_compares_hidden_states(tmp_path):
    code, out = _report(tmp_path, "tiny-bert", "int8", "--sections", "compare")
    assert code == 0
    compare = _metrics(out)["compare"]
    _documented_keys(compare, causal=False)
    assert -1.0 <= compare["outputs"]["mean_cosine"] <= 1.0 and compare["outputs"]["relative_change"] > 0


def test_lora_update_has_at_most_its_rank(tmp_path):
    """LoRA of rank 2 on W_q and W_v: only those change, and dW = B A has rank <= 2, so at most 2 singular
    values of the stored dW exceed the float32 rounding floor (Weyl: rounding W_B moves each sigma by at most
    that floor)."""
    code, out = _report(tmp_path, "tiny-llama", "lora:r2:s3", "--sections", "compare")
    assert code == 0
    compare = _metrics(out)["compare"]
    changed = [row for row in compare["matrices"] if row["changed"]]
    assert changed and {row["kind"] for row in changed} == {"attn_q", "attn_v"}
    assert all(1 <= row["delta_numerical_rank"] <= 2 for row in changed)
    assert compare["notes"] and "Loss" in compare["notes"][0]
