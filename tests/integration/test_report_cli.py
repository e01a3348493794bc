"""The headless report: metrics.json with the documented keys, a standalone report.html."""

import json

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
