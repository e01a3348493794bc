"""The demo series (explorer/analysis/series_demo.py) on the tiny models: a folder of N + 1 checkpoints that
checkpoint_series reads, the loss at step 0 equal to the original model's, the loss lowered by a small Adam step
as first-order theory says, the cached model untouched bit for bit, older demos removed, a cancel leaves
nothing half-written."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from explorer import tasks
from explorer.analysis.checkpoint_series import checkpoint_series, find_checkpoints
from explorer.analysis.curvature import loss_value, make_loss, scores_and_targets
from explorer.analysis.series_demo import (
    LOSS_FILE,
    DemoSettings,
    demo_folder,
    demo_root,
    read_series_loss,
    write_demo_series,
)
from explorer.analysis.weights import model_fingerprint
from explorer.errors import InputError
from tests.conftest import get_model
from tests.tolerances import eps

TEXT = "The quick brown fox jumps over the lazy dog. Then the fox sleeps under the old oak tree."


def _state(model) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def _demo(model_id: str, settings: DemoSettings, text: str = TEXT):
    loaded = get_model(model_id)
    folder = demo_folder(model_fingerprint(loaded.model), text, settings)
    return loaded, write_demo_series(loaded, text, folder, settings)


@pytest.mark.parametrize(("model_id", "steps"), [("tiny-llama", 3), ("tiny-bert", 1)])
def test_a_demo_is_a_series_of_steps_plus_one_checkpoints(model_id, steps, cache_home):
    loaded = get_model(model_id)
    before = _state(loaded.model)
    _, folder = _demo(model_id, DemoSettings(steps=steps, lr=1e-4))
    assert [(c.name, c.step) for c in find_checkpoints(folder)] == [
        (f"step_{t}", t) for t in range(steps + 1)
    ]
    series = checkpoint_series(folder)
    assert series.failed == {} and list(series.steps) == list(range(steps + 1))
    # The cached model is the one every page shares: the demo trained a copy.
    after = loaded.model.state_dict()
    assert set(after) == set(before)
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), name
    # Step 0 is the model itself: its loss is loss_value's, the same float64 cross-entropy of the same
    # float32 scores (a deepcopy computes them in the same order, so equal to float64 rounding).
    loss = read_series_loss(folder)
    assert loss is not None and list(loss.steps) == list(range(steps + 1)) and loss.loss.shape == (steps + 1,)
    original = loss_value(loaded.model, make_loss(loaded, TEXT))
    assert abs(loss.loss[0] - original) <= 4 * eps() * abs(original)
    assert json.loads((folder / LOSS_FILE).read_text())["unit"] == "nats"


def test_a_small_adam_step_lowers_the_loss_as_first_order_theory_says(cache_home):
    """Adam's first step moves every weight by -lr g_i / (|g_i| + eps_adam) (bias-corrected moments of one
    gradient), so to first order the loss changes by d = -lr sum g_i^2 / (|g_i| + eps_adam) < 0; the rest is
    second order, O(lr^2), so relative to d it shrinks like lr (measured 0.28 % at lr 1e-4, hence ~0.003 % at the
    1e-6 used here). Each recorded loss is the float64 cross-entropy of float32 scores, off by about eps32 max|z|
    (< 1e-6 nats here), i.e. < 0.4 % of d = 3e-4 for the two losses together: a 1 % band holds both."""
    loaded = get_model("tiny-llama")
    spec = make_loss(loaded, TEXT)
    model = copy.deepcopy(loaded.model)  # the shared model's parameters need no gradient
    params = [p.requires_grad_(True) for p in model.parameters()]
    z, y = scores_and_targets(model, spec)
    grads = torch.autograd.grad(torch.nn.functional.cross_entropy(z.double(), y), params)
    lr = 1e-6
    predicted = -lr * sum(float((g.double() ** 2 / (g.double().abs() + 1e-8)).sum()) for g in grads)
    _, folder = _demo("tiny-llama", DemoSettings(steps=1, lr=lr))
    loss = read_series_loss(folder).loss
    assert predicted < -1e-4  # far above rounding: the test can see the decrease
    assert loss[1] < loss[0]
    assert abs((loss[1] - loss[0]) - predicted) <= 0.01 * abs(predicted)


def test_a_larger_lr_lowers_the_loss_over_the_run(cache_home):
    _, folder = _demo("tiny-llama", DemoSettings(steps=4, lr=1e-4))
    loss = read_series_loss(folder).loss
    assert np.all(np.diff(loss) < 0), loss  # measured: every step lower on this text at lr 1e-4


def test_only_the_latest_demo_is_kept(cache_home):
    _, first = _demo("tiny-llama", DemoSettings(steps=1, lr=1e-4))
    stray = demo_root() / "something-else"
    stray.mkdir()
    _, second = _demo("tiny-llama", DemoSettings(steps=2, lr=1e-4))
    assert second != first and not first.exists() and not stray.exists()
    assert sorted(p.name for p in demo_root().iterdir()) == [second.name]


def test_a_cancelled_demo_leaves_nothing_behind(cache_home):
    loaded = get_model("tiny-llama")
    settings = DemoSettings(steps=3, lr=1e-4)
    folder = demo_folder(model_fingerprint(loaded.model), TEXT, settings)

    def cancel_at_the_second_step(fraction: float, message: str) -> None:
        if "Adam step 2" in message:
            raise tasks.Cancelled()

    with pytest.raises(tasks.Cancelled):
        write_demo_series(loaded, TEXT, folder, settings, progress=cancel_at_the_second_step)
    assert list(demo_root().iterdir()) == []


def test_bad_settings_and_texts_are_refused(cache_home):
    loaded = get_model("tiny-llama")
    with pytest.raises(InputError, match="1 to 8 steps"):
        write_demo_series(loaded, TEXT, demo_root() / "x", DemoSettings(steps=9))
    with pytest.raises(InputError, match="text is empty"):
        write_demo_series(loaded, "", demo_root() / "x", DemoSettings(steps=1))
    assert list(demo_root().iterdir()) == []
