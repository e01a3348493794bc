"""The headless report: metrics.json with the documented keys, a standalone report.html."""

import json

import numpy as np
import pytest

from explorer.cli import main


def _run(tmp_path, *args):
    out = tmp_path / "report"
    code = main(["report", *args, "--out", str(out)])
    return code, out


def test_report_on_tiny_model(tmp_path):
    code, out = _run(tmp_path, "--model", "tiny-gpt2", "--text", "Hello report")
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["model"]) >= {
        "id",
        "architecture",
        "n_layers",
        "n_heads",
        "n_kv_heads",
        "d_model",
        "n_params",
        "causal",
    }
    assert metrics["model"]["n_layers"] == 2 and metrics["model"]["causal"] is True
    assert len(metrics["tokens"]) == len("Hello report")  # byte-level tokens
    assert metrics["device"] == "cpu"
    html = (out / "report.html").read_text()
    assert "<html" in html and "Plotly" in html and "cdn" not in html.lower().split("<body>")[0][-2000:]


@pytest.mark.slow
def test_report_on_minilm_from_file(tmp_path):
    text_file = tmp_path / "t.txt"
    text_file.write_text("Eigenvalues of attention matrices.")
    code, out = _run(tmp_path, "--model", "minilm-l6", "--text-file", str(text_file))
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["id"] == "minilm-l6" and metrics["model"]["causal"] is False
    assert metrics["tokens"][0] == "[CLS]" and metrics["tokens"][-1] == "[SEP]"


def test_report_bad_input_exits_with_message(tmp_path, capsys):
    code, _ = _run(tmp_path, "--model", "tiny-gpt2", "--text", "   ")
    assert code == 2 and "empty" in capsys.readouterr().err
    code, _ = _run(tmp_path, "--model", "/not/a/model", "--text", "x")
    assert code == 2 and "not a directory" in capsys.readouterr().err


# ------------------------------------------------- every section's keys, and values recomputed independently

TEXT = "The fox saw the dog. The dog saw the fox."


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "tiny"
    assert main(["report", "--model", "tiny-gpt2", "--text", TEXT, "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def hf_outputs():
    """The tiny GPT-2 run directly through transformers (not through explorer's capture)."""
    import torch

    from tests.conftest import get_model

    loaded = get_model("tiny-gpt2")
    ids = torch.tensor([loaded.tokenizer(TEXT)["input_ids"]])
    with torch.no_grad():
        out = loaded.model(input_ids=ids, labels=ids, output_attentions=True)
    return loaded, ids, out


def test_every_section_has_its_documented_keys(tiny_report):
    assert set(tiny_report) >= {
        "model",
        "tokens",
        "device",
        "dtype",
        "loss",
        "perplexity",
        "attention",
        "weights",
        "circuits",
        "gershgorin",
        "directions",
        "compression",
    }
    attention = tiny_report["attention"]
    per_head = {
        "eigvals_real",
        "eigvals_imag",
        "lambda2_abs",
        "spectral_gap",
        "entropy",
        "entropy_nats",
        "effective_rank",
        "stable_rank",
        "numerical_rank",
        "sink_mass",
        "laplacian_eigvals",
        "laplacian_eigvals_imag",
        "collapsed",
        "sink",
    }
    assert per_head <= set(attention) and per_head <= set(attention["definitions"])
    for row in tiny_report["weights"]:
        assert {
            "name",
            "layer",
            "kind",
            "shape",
            "spectral_norm",
            "stable_rank",
            "effective_rank",
            "condition_number",
            "k90",
            "k99",
            "alpha",
            "alpha_xmin",
            "alpha_ks",
            "alpha_hat",
            "log_norm",
            "log_spectral_norm",
            "rand_distance",
            "n_traps",
            "trap_edge",
            "traps",
        } <= set(row)
    assert {"layer", "head", "all_inside", "groups"} <= set(tiny_report["gershgorin"])
    assert {
        "layer",
        "explained_variance_ratio",
        "pairs",
        "direction_explained",
        "bias_scores",
        "control",
    } <= set(tiny_report["directions"])
    lowrank = [entry for entry in tiny_report["compression"] if "allocation" in entry]
    assert lowrank and all(
        {"method", "groups", "bytes", "perplexity", "kl"} <= set(e) for e in tiny_report["compression"]
    )
    for entry in lowrank:
        assert {
            "method",
            "groups",
            "share_of_break_even",
            "mean_rank",
            "params_total",
            "params_kept",
            "perplexity",
            "kl",
        } <= set(entry)


def test_model_card_loss_and_perplexity_match_transformers(tiny_report, hf_outputs):
    import math

    loaded, ids, out = hf_outputs
    assert tiny_report["model"]["n_params"] == sum(p.numel() for p in loaded.model.parameters())
    assert tiny_report["tokens"] == loaded.tokenizer.convert_ids_to_tokens(ids[0].tolist())
    # Mean cross-entropy over n-1 next tokens in float32: a sum of n terms, relative error ~ n eps(float32).
    assert tiny_report["loss"] == pytest.approx(float(out.loss), rel=1e-5)
    assert tiny_report["perplexity"] == pytest.approx(math.exp(float(out.loss)), rel=1e-5)


def test_attention_numbers_match_numpy(tiny_report, hf_outputs):
    from tests.tolerances import assert_eigvals_close, symmetric_tolerance

    _, _, out = hf_outputs
    att = tiny_report["attention"]
    eig = np.array(att["eigvals_real"]) + 1j * np.array(att["eigvals_imag"])
    for layer, layer_att in enumerate(out.attentions):
        for head in range(layer_att.shape[1]):
            A = layer_att[0, head].double().numpy()
            assert_eigvals_close(eig[layer, head], A)
            lam = np.sort(np.abs(np.linalg.eigvals(A)))[::-1]
            # Causal heads are triangular: their eigenvalues are the diagonal entries, exactly.
            assert att["lambda2_abs"][layer][head] == pytest.approx(lam[1], abs=1e-12)
            assert att["spectral_gap"][layer][head] == pytest.approx(1 - lam[1], abs=1e-12)
            sigma = np.linalg.svd(A, compute_uv=False)
            stable = (sigma**2).sum() / sigma[0] ** 2
            # float32 input, float64 SVD: sigma_1 carries c n eps ||A|| (Weyl), a ratio of sums twice that.
            tol = 4 * symmetric_tolerance(A) / sigma[0]
            assert att["stable_rank"][layer][head] == pytest.approx(stable, rel=tol)
            p = A[A > 0]
            # Row entropy: a sum of n terms in float64 (n eps); the attention itself is the float32 input.
            assert att["entropy_nats"][layer][head] == pytest.approx(
                -(p * np.log(p)).sum() / A.shape[0], rel=1e-6
            )
            assert att["sink_mass"][layer][head] == pytest.approx(A[:, 0].mean(), rel=1e-6)


def test_weight_and_circuit_numbers_match_numpy(tiny_report, hf_outputs):
    loaded, _, _ = hf_outputs
    params = dict(loaded.model.named_parameters())
    for row in tiny_report["weights"]:
        name = row["name"]
        module, _, part = name.partition(":")
        W = params[f"{module}.weight"].detach().double().numpy()
        if part:  # GPT-2's fused c_attn stores (in, 3 out): q, k, v are its column blocks
            W = np.split(W, 3, axis=1)["qkv".index(part)]
        sigma = np.linalg.svd(W, compute_uv=False)
        # Singular values of a float32 matrix in float32 torch: Weyl, c n eps(float32) ||W||.
        assert row["spectral_norm"] == pytest.approx(sigma[0], rel=5e-5)
        assert row["stable_rank"] == pytest.approx((sigma**2).sum() / sigma[0] ** 2, rel=1e-4)
        assert sorted(row["shape"]) == sorted(W.shape)
    card = tiny_report["model"]
    d, n_heads = card["d_model"], card["n_heads"]
    d_head = d // n_heads
    for layer in range(card["n_layers"]):
        c_attn = params[f"transformer.h.{layer}.attn.c_attn.weight"].detach().double().numpy()
        c_proj = params[f"transformer.h.{layer}.attn.c_proj.weight"].detach().double().numpy()
        for head in range(n_heads):
            cols = slice(2 * d + head * d_head, 2 * d + (head + 1) * d_head)
            W_V, W_O = c_attn[:, cols], c_proj[head * d_head : (head + 1) * d_head, :]
            lam = np.linalg.eigvals(
                W_V @ W_O
            )  # d x d, rank <= d_head: the nonzero eigenvalues are the core's
            lam = lam[np.argsort(-np.abs(lam))[:d_head]]
            expected = lam.real.sum() / np.abs(lam).sum()
            # A ratio of sums of d_head eigenvalues of a product of float32 weights: float32 rounding.
            assert tiny_report["circuits"]["copying_score"][layer][head] == pytest.approx(expected, abs=1e-4)


def test_gershgorin_and_direction_numbers_are_consistent(tiny_report, hf_outputs):
    _, _, out = hf_outputs
    g = tiny_report["gershgorin"]
    A = out.attentions[g["layer"]][0, g["head"]].double().numpy()
    lam = np.linalg.eigvals(A)
    centres, radii = np.diag(A), np.abs(A).sum(1) - np.abs(np.diag(A))
    # Causal: the eigenvalues are the diagonal entries (the centres) exactly; 1e-12 absorbs the radii's rounding.
    inside = np.abs(lam[:, None] - centres[None, :]) <= radii[None, :] + 1e-12
    assert g["all_inside"] == bool(inside.any(axis=1).all())
    assert sum(group["n_eigenvalues"] for group in g["groups"]) == A.shape[0]
    assert sum(group["n_discs"] for group in g["groups"]) == A.shape[0]
    ratio = np.array(tiny_report["directions"]["explained_variance_ratio"])
    # Sorted variances over one total stay sorted (rounding is monotone); the ratios sum to 1 within c n eps.
    assert np.all(np.diff(ratio) <= 1e-12) and ratio.sum() <= 1 + 1e-9 and np.all(ratio >= 0)
    for entry in tiny_report["compression"]:
        if "allocation" not in entry:  # quantization rows: bytes instead of parameter counts
            assert 0 < entry["bytes"] and np.isfinite(entry["perplexity"])
            continue
        assert 0 < entry["params_kept"] <= entry["params_total"]
        assert np.isfinite(entry["perplexity"])


# ----------------------------------------------------------------------------------------------- --sections


def test_unknown_section_names_the_valid_ones(tmp_path, capsys):
    code, out = _run(tmp_path, "--model", "tiny-gpt2", "--text", "x", "--sections", "weights,atention")
    err = capsys.readouterr().err
    assert code == 2 and "'atention'" in err
    assert all(name in err for name in ("model", "attention", "logit_lens", "weights", "curvature"))
    assert not out.exists()


def test_sections_that_need_the_model_need_a_text(tmp_path, capsys):
    code, _ = _run(tmp_path, "--model", "tiny-gpt2", "--sections", "attention")
    assert code == 2 and "--text" in capsys.readouterr().err


def test_only_the_named_sections_run(tmp_path, capsys):
    code, out = _run(tmp_path, "--model", "tiny-llama", "--text", TEXT, "--sections", "attention,model")
    assert code == 0
    keys = set(json.loads((out / "metrics.json").read_text()))
    assert {"model", "tokens", "attention"} <= keys
    assert not keys & {"weights", "circuits", "gershgorin", "directions", "compression", "curvature"}
    assert capsys.readouterr().err.count("computing ") == 2


def test_sections_weights_on_a_saved_folder_reads_the_files_only(tiny_report, tmp_path, monkeypatch, capsys):
    """The tiny GPT-2 saved sharded: the loader is never called, and the rows are the full report's exactly
    (the same float32 weights, decomposed by the same route in the same batches)."""
    import explorer.models
    import explorer.models.loading
    from explorer.models.tiny import build_tiny_model

    folder = tmp_path / "tiny-gpt2"
    build_tiny_model("gpt2").save_pretrained(folder, safe_serialization=True, max_shard_size="20KB")

    def refuse(*args, **kwargs):
        raise AssertionError("report --sections weights on a folder loaded the model")

    monkeypatch.setattr(explorer.models, "load_model", refuse)
    monkeypatch.setattr(explorer.models.loading, "load_model", refuse)
    code, out = _run(tmp_path, "--model", str(folder), "--sections", "weights")
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"weights"}
    assert metrics["weights"] == tiny_report["weights"]


def test_sections_weights_on_a_folder_without_safetensors_says_why(tmp_path, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    code, _ = _run(tmp_path, "--model", str(folder), "--sections", "weights")
    # Not a safetensors folder: it goes to the loader, which needs a text first.
    assert code == 2 and "--text" in capsys.readouterr().err
