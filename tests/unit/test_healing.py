"""Healing on the tiny models: the objective on the calibration text goes down, only the copy's own factors
change, the cached model is untouched, and cancel stops it."""

import numpy as np
import pytest
import torch

from explorer.analysis import compression as comp
from explorer.analysis import healing
from explorer.analysis.lowrank import factorize
from explorer.analysis.matrices import weights_checksum
from tests.conftest import SAMPLE_TEXT, TINY_IDS


def _setup(load, model_id, kinds=("mlp_up", "mlp_down")):
    loaded = load(model_id)
    kinds = tuple(k for k in kinds if k in comp.available_kinds(loaded.model))
    fact = factorize(loaded.model, "svd", kinds)
    ranks = {f.name: max(1, f.max_rank // 4) for f in fact.matrices}  # heavy compression: much to give back
    evalset = comp.make_eval_set(loaded, SAMPLE_TEXT, 64)
    return loaded, fact, ranks, evalset, comp.reference(loaded, evalset)


@pytest.mark.parametrize("model_id", TINY_IDS)
def test_healing_lowers_its_objective_and_touches_only_the_copy(load, model_id):
    loaded, fact, ranks, evalset, ref = _setup(load, model_id)
    before = weights_checksum(loaded.model)
    factors_before = {f.name: [t.clone() for t in f.factors(ranks[f.name])] for f in fact.matrices}
    run, healed = healing.heal(
        loaded, fact, ranks, comp.shipped_calibration_text(), evalset, ref, steps=15, lr=1e-3
    )
    assert weights_checksum(loaded.model) == before  # the cached model
    for f in fact.matrices:  # and the stored factors (the page's cache) are unchanged
        for old, new in zip(factors_before[f.name], f.factors(ranks[f.name]), strict=True):
            assert torch.equal(old, new)
    assert run.calibration_after < run.calibration_before
    assert run.losses.shape == (15,)
    assert run.n_params == sum(ranks[f.name] * sum(f.shape) for f in fact.matrices)
    # The healed copy's other weights are the cached model's own tensors (shared, not copied, not written).
    shared = {id(p) for p in loaded.model.parameters()}
    own = [p for p in healed.parameters() if id(p) not in shared]
    assert sum(p.numel() for p in own) == run.n_params
    # Quality is measured as every what-if is: zero steps give the compressed model's quality twice.
    zero, _ = healing.heal(loaded, fact, ranks, comp.shipped_calibration_text(), evalset, ref, steps=0)
    assert zero.before.headline == pytest.approx(zero.after.headline, rel=1e-6)


def test_healing_can_be_cancelled_and_checks_its_inputs(load):
    loaded, fact, ranks, evalset, ref = _setup(load, "tiny-llama")
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(healing.Cancelled):
        healing.heal(
            loaded, fact, ranks, comp.shipped_calibration_text(), evalset, ref, steps=50, cancel=cancel
        )
    assert len(calls) == 4
    for bad in (dict(steps=-1), dict(steps=10_000), dict(lr=0.0)):
        with pytest.raises(healing.InputError):
            healing.heal(loaded, fact, ranks, comp.shipped_calibration_text(), evalset, ref, **bad)


def test_validation_chunks_are_held_out_of_training():
    chunks = [torch.tensor([[i, i]]) for i in range(12)]
    train, validation = healing.split_chunks(chunks)
    assert [int(c[0, 0]) for c in validation] == [3, 7, 11]
    assert [int(c[0, 0]) for c in train] == [0, 1, 2, 4, 5, 6, 8, 9, 10]
    train, validation = healing.split_chunks(chunks[:3])  # fewer than 4: the last one validates
    assert len(train) == 2 and int(validation[0][0, 0]) == 2
    assert healing.split_chunks(chunks[:1]) == (chunks[:1], chunks[:1])


def test_at_a_minimum_healing_backs_off_and_leaves_the_factors_as_they_were(load):
    """An encoder factored at full rank is the original: its distillation objective (1 - cosine to the original)
    is at its minimum, 0 up to rounding, so every step makes the validation chunks worse. The run backs off
    tenfold MAX_BACKOFFS times and keeps the compressed factors, bit for bit (same quality)."""
    loaded, fact, _ranks, evalset, ref = _setup(load, "tiny-bert")
    full = {f.name: f.max_rank for f in fact.matrices}
    run, healed = healing.heal(
        loaded, fact, full, comp.shipped_calibration_text(), evalset, ref, steps=10, lr=1e-2
    )
    assert run.lr_asked == 1e-2
    assert run.lr == pytest.approx(1e-2 / healing.LR_BACKOFF**healing.MAX_BACKOFFS)
    assert not run.improved and run.best_step == 0
    assert run.validation_steps[0] == 0 and run.validation_steps[-1] == 10
    assert run.validation_losses[1:].min() >= run.validation_losses[0]
    assert (run.after.headline, run.after.kl) == (
        run.before.headline,
        run.before.kl,
    )  # same model, same numbers
    factors = {name: buf for name, buf in healed.named_parameters() if name.endswith((".A", ".B"))}
    assert factors
    compressed = dict(comp.compressed_model(loaded, fact, full).named_buffers())
    for name, value in factors.items():
        assert torch.equal(value, compressed[name])


def test_healing_keeps_the_factors_of_its_best_validation_check(load):
    loaded, fact, ranks, evalset, ref = _setup(load, "tiny-llama")
    run, _ = healing.heal(
        loaded, fact, ranks, comp.shipped_calibration_text(), evalset, ref, steps=12, lr=1e-3
    )
    assert list(run.validation_steps) == [0, 5, 10, 12]
    assert run.best_step == run.validation_steps[int(np.argmin(run.validation_losses))]
