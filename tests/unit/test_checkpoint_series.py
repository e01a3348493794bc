"""A checkpoint series (explorer/analysis/checkpoint_series.py) on a real series: the tiny Llama saved with
save_pretrained at four "steps", one matrix scaled between steps. Each step equals the loaded model's weight
spectra; the scaled matrix follows the theorems (sigma_1(cW) = c sigma_1(W), alpha and stable rank scale
invariant); steps are ordered by the integer in the folder name; unreadable checkpoints are named in ``failed``
and the rest still run; cancelling keeps the finished steps for the re-run; the report CLI writes the series
section without loading a model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from explorer import tasks
from explorer.analysis.checkpoint_series import (
    SERIES_METRICS,
    checkpoint_series,
    find_checkpoints,
)
from explorer.analysis.weights import compute_weight_spectra
from explorer.cli import main
from explorer.errors import InputError
from explorer.models.tiny import build_tiny_model, tiny_config
from tests.conftest import restart_tasks
from tests.tolerances import SAFETY, eps

# What each step does to the weights of the step before: matrix (module name) -> factor.
DOWN, QUERY = "model.layers.0.mlp.down_proj", "model.layers.1.self_attn.q_proj"
STEPS = {
    "checkpoint-1": {},
    "checkpoint-9": {DOWN: 2.0},
    "checkpoint-10": {DOWN: 2.0, QUERY: 3.0},
    "step_20": {},
}


def _scale(model, factors: dict[str, float]) -> None:
    with torch.no_grad():
        for name, factor in factors.items():
            model.get_submodule(name).weight.mul_(factor)


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory):
    """A training run's folder: the four steps (written in a shuffled order), plus folders and a file that are
    not checkpoints (no integer, two integers, a file)."""
    root = tmp_path_factory.mktemp("run")
    model = build_tiny_model("llama")  # a fresh copy: it is scaled in place below
    for name, factors in STEPS.items():
        _scale(model, factors)
        model.save_pretrained(root / name, safe_serialization=True)
    (root / "runs").mkdir()
    (root / "logs-1-2").mkdir()
    (root / "trainer_state_3.json").write_text("{}")
    return root


def _loaded_spectra(folder):
    return compute_weight_spectra(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32))


def test_checkpoints_are_found_and_ordered_by_step(series_dir):
    found = find_checkpoints(series_dir)
    assert [(c.name, c.step) for c in found] == [
        ("checkpoint-1", 1),
        ("checkpoint-9", 9),
        ("checkpoint-10", 10),  # after checkpoint-9: by the integer, not by the name's characters
        ("step_20", 20),
    ]


def test_each_step_equals_the_loaded_models_spectra(series_dir, cache_home):
    """The streamed matrices are bit-equal to the loaded model's and decomposed in the same stacks, so every
    metric is the same number (alpha NaN where neither fits)."""
    series = checkpoint_series(series_dir)
    assert series.checkpoints == tuple(STEPS) and list(series.steps) == [1, 9, 10, 20]
    assert series.failed == {} and not series.from_cache.any()
    for s, name in enumerate(series.checkpoints):
        loaded = _loaded_spectra(series_dir / name)
        assert series.names == loaded.names and series.kinds == loaded.kinds
        assert np.array_equal(series.layers, loaded.layers)
        for metric in SERIES_METRICS:
            assert np.array_equal(series.metric(metric)[s], loaded.metric(metric), equal_nan=True), metric


def _gram_error(shape) -> float:
    """The Gram route's error on each sigma_i^2, relative to sigma_1^2: 2 c n eps64 (see
    ``gram_singular_value_tolerance``), for a matrix of ``shape``."""
    return 2 * SAFETY * max(shape) * eps()


def test_the_scaled_matrices_follow_the_theorems(series_dir, cache_home):
    """sigma_i(cW) = |c| sigma_i(W): the spectral norm scales by c; the stable rank sum sigma_i^2 / sigma_1^2 and
    the power-law alpha (fitted to ratios lambda_i / x_min of the ESD) are scale invariant; alpha-hat = alpha
    log10 sigma_1^2 moves by alpha log10 c^2 (checked at 2x and 4x of one matrix, 3x of another). What the
    computed numbers may carry besides, per run:
    - the Gram route: each sigma_i^2 off by at most g sigma_1^2 (``_gram_error``), so sigma_1 by g sigma_1 / 2,
      the stable rank by (k + sr) g (k = min(m, n) terms), and alpha (MLE (alpha - 1) = n_tail / sum log(lambda_i
      / x_min), same x_min) by 2 (alpha - 1)^2 r, r = g sigma_1^2 / (N x_min) the largest relative error of a
      tail eigenvalue lambda_i = sigma_i^2 / N >= x_min;
    - the float32 storage of 3W (2W is exact): each entry off by u = eps32 / 2 relative, E with ||E||_2 <=
      ||E||_F <= u ||3W||_F, so sigma_1 moves by u ||3W||_F (Weyl) and the stable rank by (2u + 2u sqrt(sr)) sr."""
    series = checkpoint_series(series_dir)
    base = _loaded_spectra(series_dir / "checkpoint-1")
    norm, rank, alpha, alpha_hat = series.spectral_norm, series.stable_rank, series.alpha, series.alpha_hat
    down, query = series.names.index(DOWN), series.names.index(QUERY)
    g = _gram_error(base.shapes[down])
    k, N = int(base.shapes[down].min()), int(base.shapes[down].max())
    r = g * norm[0, down] ** 2 / (N * base.alpha_xmin[down])
    assert np.isfinite(alpha[0, down])
    for step, c in ((1, 2.0), (2, 4.0)):
        assert abs(norm[step, down] - c * norm[0, down]) <= g * c * norm[0, down]  # g/2 on each side
        assert abs(rank[step, down] - rank[0, down]) <= 2 * (k + rank[0, down]) * g
        assert abs(alpha[step, down] - alpha[0, down]) <= 4 * (alpha[0, down] - 1) ** 2 * r
        # alpha-hat = alpha L, L = log10 sigma_1^2: off by |d alpha| L + alpha |dL|, |dL| <= 2 g / ln 10.
        expected = alpha_hat[0, down] + alpha[0, down] * np.log10(c**2)
        allowed = 4 * (alpha[0, down] - 1) ** 2 * r * abs(np.log10(norm[step, down] ** 2))
        assert abs(alpha_hat[step, down] - expected) <= allowed + alpha[0, down] * 2 * g / np.log(10)

    u = eps(np.float32) / 2
    g, sr = _gram_error(base.shapes[query]), rank[1, query]
    frobenius = 3 * base.frobenius_norm[query]
    assert abs(norm[2, query] - 3 * norm[1, query]) <= u * frobenius + 2 * g * norm[2, query]
    k = int(base.shapes[query].min())
    assert abs(rank[2, query] - sr) <= (2 * u + 2 * u * np.sqrt(sr)) * sr + 2 * (k + sr) * g
    others = [i for i in range(len(series.names)) if i not in (down, query)]
    for metric in (norm, rank, alpha):  # untouched matrices: the same bytes, the same numbers
        assert np.array_equal(metric[0, others], metric[3, others], equal_nan=True)


def test_median_over_layers_is_numpys(series_dir, cache_home):
    series = checkpoint_series(series_dir)
    for kind in series.kinds_in_blocks:
        idx = [i for i, k in enumerate(series.kinds) if k == kind and series.layers[i] >= 0]
        assert len(idx) == 2  # the tiny Llama's two layers
        expected = np.median(series.stable_rank[:, idx], axis=1)
        assert np.array_equal(series.median_over_layers("stable_rank", kind), expected)
    with pytest.raises(KeyError, match="choose one of"):
        series.metric("k90")


# ------------------------------------------------------------------------------------ broken checkpoints


@pytest.fixture()
def broken_dir(series_dir, tmp_path):
    """The four good steps and three that cannot be read: a truncated safetensors file, no config.json, and a
    model of other shapes (a wider MLP)."""
    root = tmp_path / "broken"
    for name in STEPS:
        shutil.copytree(series_dir / name, root / name)
    shutil.copytree(series_dir / "checkpoint-1", root / "checkpoint-3")
    weights = root / "checkpoint-3" / "model.safetensors"
    with open(weights, "r+b") as handle:
        handle.truncate(weights.stat().st_size // 2)
    shutil.copytree(series_dir / "checkpoint-1", root / "checkpoint-4")
    (root / "checkpoint-4" / "config.json").unlink()
    config = tiny_config("llama")
    config.intermediate_size *= 2
    LlamaForCausalLM(config).save_pretrained(root / "checkpoint-5", safe_serialization=True)
    return root


def test_broken_checkpoints_are_named_and_the_rest_still_run(broken_dir, series_dir, cache_home):
    series = checkpoint_series(broken_dir)
    assert list(series.failed) == ["checkpoint-3", "checkpoint-4", "checkpoint-5"]
    assert "not a readable safetensors file" in series.failed["checkpoint-3"]
    assert "no config.json" in series.failed["checkpoint-4"]
    assert "mlp.gate_proj is 256×64, 128×64 in the other checkpoints" in series.failed["checkpoint-5"]
    assert series.checkpoints == tuple(STEPS)
    good = checkpoint_series(series_dir)
    for metric in SERIES_METRICS:
        assert np.array_equal(series.metric(metric), good.metric(metric), equal_nan=True)


def test_folders_without_checkpoints_are_refused_with_the_expected_names(series_dir, tmp_path):
    with pytest.raises(InputError, match="expected sub-folders named checkpoint-N"):
        find_checkpoints(tmp_path)
    with pytest.raises(InputError, match="one checkpoint itself: analyse it with --model FOLDER"):
        find_checkpoints(series_dir / "checkpoint-1")
    with pytest.raises(InputError, match="not a folder"):
        find_checkpoints(tmp_path / "missing")
    (tmp_path / "step-7").mkdir()
    (tmp_path / "ckpt_7").mkdir()
    with pytest.raises(InputError, match="same step: ckpt_7, step-7"):
        find_checkpoints(tmp_path)


def test_a_series_with_no_readable_checkpoint_says_why(tmp_path, cache_home):
    (tmp_path / "checkpoint-1").mkdir()
    with pytest.raises(InputError, match="None of the 1 checkpoints .* checkpoint-1: .* no config.json"):
        checkpoint_series(tmp_path)


# ------------------------------------------------------------------------------------ task layer


def test_cancelling_keeps_the_finished_steps_for_the_rerun(series_dir, cache_home, monkeypatch):
    """Progress raising Cancelled (as Task.report does once a task is cancelled) stops the series inside the
    third checkpoint; a re-run in a new process (empty task board, same disk store) reads the two finished steps
    back and computes the other two."""
    messages = []

    def cancel_at_the_third(fraction: float, message: str) -> None:
        messages.append((fraction, message))
        if message.startswith("checkpoint-10"):
            raise tasks.Cancelled("series")

    with pytest.raises(tasks.Cancelled):
        checkpoint_series(series_dir, progress=cancel_at_the_third)
    assert messages[0] == (0.0, "checkpoint-1 (step 1, 1 of 4): reading the headers")
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 0.5
    restart_tasks(monkeypatch)
    again = checkpoint_series(series_dir)
    assert list(again.from_cache) == [True, True, False, False]


# ------------------------------------------------------------------------------------ report CLI


def test_report_cli_writes_the_series_section_without_loading_a_model(
    broken_dir, tmp_path, cache_home, refuse_model_loads
):
    out = tmp_path / "report"
    assert main(["report", "--checkpoints", str(broken_dir), "--out", str(out), "--device", "cpu"]) == 0
    section = json.loads((out / "metrics.json").read_text())["series"]
    series = checkpoint_series(broken_dir)
    assert section["metrics"] == list(SERIES_METRICS)
    assert list(section["failed"]) == ["checkpoint-3", "checkpoint-4", "checkpoint-5"]
    assert [(s["step"], s["checkpoint"]) for s in section["steps"]] == list(
        zip(series.steps.tolist(), series.checkpoints, strict=True)
    )
    for s, step in enumerate(section["steps"]):
        assert [row["name"] for row in step["matrices"]] == list(series.names)
        for i, row in enumerate(step["matrices"]):
            assert row["kind"] == series.kinds[i]
            for metric in SERIES_METRICS:
                value = series.metric(metric)[s, i]
                assert row[metric] == (float(value) if np.isfinite(value) else None)
    html = (out / "report.html").read_text()
    assert "Checkpoint series" in html and "checkpoint-5" in html
    assert html.count("against the training step") == len(SERIES_METRICS)


def test_report_cli_refuses_what_a_series_does_not_use(series_dir, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["report", "--checkpoints", str(series_dir), "--text", "hello", "--out", str(out)])
    assert code == 2 and "leave out --text" in capsys.readouterr().err
    assert main(["report", "--checkpoints", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert not out.exists()
