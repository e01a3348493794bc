"""A checkpoint series on SmolLM2: two "steps", its de-quantized folder and a copy with one matrix scaled by 3.
The scaled matrix's spectral norm ratio is 3 to float32 rounding, its stable rank unchanged to the same
rounding, and every other matrix's numbers are the same."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from explorer.analysis.checkpoint_series import checkpoint_series
from explorer.models.catalogue import CATALOGUE
from explorer.models.checkpoint import Checkpoint
from explorer.models.loading import embedded_model_dir
from tests.tolerances import SAFETY, eps

pytestmark = pytest.mark.slow

SCALED, FACTOR = "model.layers.15.self_attn.o_proj", 3.0


@pytest.fixture(scope="module")
def smollm2_series(tmp_path_factory):
    """checkpoint-0: SmolLM2's de-quantized folder (a link to it); checkpoint-100: its config and its weights
    with SCALED multiplied by FACTOR (in float32, as a training step stores them)."""
    source = embedded_model_dir(CATALOGUE["smollm2-135m"])  # before any test moves the cache dir
    root = tmp_path_factory.mktemp("smollm2-run")
    (root / "checkpoint-0").symlink_to(source, target_is_directory=True)
    step = root / "checkpoint-100"
    step.mkdir()
    shutil.copy(source / "config.json", step / "config.json")
    with safe_open(source / "model.safetensors", framework="pt") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}
        metadata = handle.metadata()
    state[f"{SCALED}.weight"] = state[f"{SCALED}.weight"] * FACTOR
    save_file(state, step / "model.safetensors", metadata=metadata)
    del state
    return root


def test_the_scaled_matrix_spectral_norm_ratio_is_the_scale(smollm2_series, cache_home):
    """sigma_1(cW) = c sigma_1(W). Storing 3W in float32 rounds each entry by at most u = eps32 / 2 relative: E
    with ||E||_2 <= ||E||_F <= u ||3W||_F, which moves sigma_1 by at most that (Weyl); the Gram route adds at
    most g sigma_1 / 2 to each sigma_1, g = 2 c n eps64 (tests/tolerances.py). The stable rank ||W||_F^2 /
    sigma_1^2 is scale invariant: the storage moves ||W||_F by u and sigma_1 by u sqrt(sr) relative, so sr by at
    most (2u + 2u sqrt(sr)) sr, plus the Gram route's (k + sr) g on each side (k = min(m, n) terms)."""
    series = checkpoint_series(smollm2_series)
    assert series.checkpoints == ("checkpoint-0", "checkpoint-100") and series.failed == {}
    i = series.names.index(SCALED)
    W = Checkpoint.open(smollm2_series / "checkpoint-0").read(i).double().numpy()
    u, g = eps(np.float32) / 2, 2 * SAFETY * max(W.shape) * eps()
    norm, sr = series.spectral_norm[:, i], series.stable_rank[0, i]
    ratio = norm[1] / norm[0]
    allowed = (u * FACTOR * np.linalg.norm(W) + g * norm[1]) / norm[0]
    print(
        f"\n{SCALED}: spectral norm ratio {float(ratio)!r}, |ratio - {FACTOR}| = {abs(ratio - FACTOR):.2e} <= {allowed:.2e}"
    )
    assert abs(ratio - FACTOR) <= allowed
    assert (
        abs(series.stable_rank[1, i] - sr) <= (2 * u + 2 * u * np.sqrt(sr)) * sr + 2 * (min(W.shape) + sr) * g
    )
    others = [j for j in range(len(series.names)) if j != i]
    for metric in (series.spectral_norm, series.stable_rank, series.alpha):
        assert np.array_equal(metric[0, others], metric[1, others], equal_nan=True)
