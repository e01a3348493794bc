"""The report's curvature section: documented keys, a normalised density, and the per-block grid."""

import json

import numpy as np

from explorer.cli import main


def test_report_curvature_section_with_grid(tmp_path):
    out = tmp_path / "report"
    code = main(
        ["report", "--model", "tiny-llama", "--text", "Curvature of a tiny loss.", "--out", str(out),
         "--curvature-grid"]
    )  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    curv = metrics["curvature"]
    assert set(curv) >= {
        "loss", "n_tokens", "block", "n_params", "top_eigenvalues", "trace", "trace_stderr", "density", "by_block",
    }  # fmt: skip
    assert curv["block"] == "all" and curv["n_params"] == metrics["model"]["n_params"]
    assert curv["n_tokens"] == len(metrics["tokens"])
    # Same text, same tokens: the capture's loss (float32 forward) and ours agree to float32 rounding.
    assert abs(curv["loss"] - metrics["loss"]) < 1e-5 * metrics["loss"]
    top = curv["top_eigenvalues"]
    assert len(top) == 3 and top == sorted(top, reverse=True) and top[0] > 0
    assert curv["trace_stderr"] > 0
    grid, density = np.array(curv["density"]["grid"]), np.array(curv["density"]["density"])
    assert grid.shape == density.shape and np.all(density >= 0)
    assert abs(np.trapezoid(density, grid) - 1) < 1e-9  # normalised on its grid (JSON keeps 17 digits)
    masses = np.array(list(curv["top_eigenvector_mass"].values()))
    # shares of their own sum, through JSON's 17 digits: c n eps
    assert np.all(masses >= 0) and abs(masses.sum() - 1) < 1e-9
    names = [row["name"] for row in curv["by_block"]]
    assert names == ["layer 0 attention", "layer 0 mlp", "layer 1 attention", "layer 1 mlp"]
    if curv["converged"]:
        # Cauchy interlacing: a principal block's lambda_max cannot exceed the whole Hessian's (Lanczos
        # values are lower bounds of the block's; the whole model's converged to 1e-4 relative residual).
        assert max(row["lambda_max"] for row in curv["by_block"]) <= top[0] * (1 + 1e-3)
    assert "Loss curvature" in (out / "report.html").read_text()


def test_report_curvature_without_grid_on_an_encoder(tmp_path):
    out = tmp_path / "report"
    assert main(["report", "--model", "tiny-bert", "--text", "Short.", "--out", str(out)]) == 0
    curv = json.loads((out / "metrics.json").read_text())["curvature"]
    assert "by_block" not in curv and curv["loss_kind"] == "contrastive"
    assert np.isfinite(curv["loss"]) and curv["n_tokens"] > 16  # the shipped sentence pairs, not the text
