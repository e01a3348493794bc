"""The report's logit_lens section: per layer and position, against a direct computation in the test; marked
generated tokens with --generate; a stated reason for an encoder."""

from __future__ import annotations

import json

import numpy as np
import torch

from explorer.analysis.generation import GenerationSettings, generate
from explorer.cli import main
from explorer.models import capture
from explorer.report.build import model_section, write_report
from explorer.report.logit_lens import logit_lens_section
from tests.conftest import get_model

EPS32 = float(np.finfo(np.float32).eps)
TEXT = "Hello lens report"


def _report(tmp_path, *args) -> dict:
    out = tmp_path / "report"
    assert main(["report", *args, "--out", str(out), "--device", "cpu"]) == 0
    assert "Logit lens" in (out / "report.html").read_text()
    return json.loads((out / "metrics.json").read_text())


def _direct_logps(loaded, ids: np.ndarray) -> list[torch.Tensor]:
    """log-softmax(lm_head(ln_f(residual after block l))) per layer, float64, computed here."""
    model = loaded.model
    grabbed = []
    handle = model.transformer.ln_f.register_forward_pre_hook(lambda _m, args: grabbed.append(args[0][0]))
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids)[None], output_hidden_states=True)
        handle.remove()
        residuals = [h[0] for h in out.hidden_states[1:-1]] + [grabbed[0]]
        return [
            torch.log_softmax((model.transformer.ln_f(r) @ model.lm_head.weight.T).double(), -1)
            for r in residuals
        ]


def test_logit_lens_section_with_generate_on_tiny_gpt2(tmp_path):
    """One whole report (every section runs: slow), so the section's numbers and the marking are checked on it."""
    metrics = _report(tmp_path, "--model", "tiny-gpt2", "--text", TEXT, "--generate", "5")
    section = metrics["logit_lens"]
    loaded = get_model("tiny-gpt2")
    prompt = np.asarray(loaded.tokenizer(TEXT)["input_ids"])
    n = len(prompt)
    ids = np.asarray(section["token_ids"])
    assert section["available"] is True and ids[:n].tolist() == prompt.tolist()
    assert section["n_layers"] == loaded.card.n_layers == len(section["layers"])
    # The continuation is marked: the prompt's tokens are not, every later one is.
    assert section["generated"][:n] == [False] * n and all(section["generated"][n:])
    assert section["n_generated"] == len(ids) - n >= 1
    expected = generate(loaded, prompt, GenerationSettings(n_new=5))
    if section["n_generated"] == expected.n_generated:  # re-tokenized to the same tokens: exactly those
        assert ids.tolist() == expected.token_ids.tolist()
    logps = _direct_logps(loaded, ids)
    final = logps[-1]
    assert section["final_ids"] == final.argmax(-1).tolist()
    for row, logp in zip(section["layers"], logps, strict=True):
        probs = logp.exp().numpy()
        tol = 64 * EPS32 * (1 + float(logp.abs().max()))
        np.testing.assert_allclose(row["top1_prob"], probs.max(-1), atol=tol)
        target = probs[np.arange(len(ids)), final.argmax(-1).numpy()]
        np.testing.assert_allclose(row["final_prob"], target, atol=tol)
        assert row["final_rank"] == (1 + (probs > target[:, None] * (1 + 1e-5)).sum(-1)).tolist()
        kl = (final.exp() * (final - logp)).sum(-1).numpy()
        np.testing.assert_allclose(row["kl"], kl, atol=8 * tol, rtol=1e-5)
    assert section["layers"][-1]["final_rank"] == [1] * len(ids)


def test_encoder_states_why_there_is_no_lens(tmp_path):
    loaded = get_model("tiny-bert")
    cap = capture(loaded, TEXT)
    metrics_path, report_path = write_report(
        loaded, cap, tmp_path, sections=[model_section, logit_lens_section]
    )
    section = json.loads(metrics_path.read_text())["logit_lens"]
    assert section["available"] is False and "encoder" in section["reason"]
    assert "no logit lens" in report_path.read_text()
