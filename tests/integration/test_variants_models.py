"""Variants of real and tiny models: built through the task layer on copies, compared with explorer.analysis.compare."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer import tasks
from explorer.analysis import variants as V
from explorer.analysis.compare import delta_spectrum
from explorer.analysis.matrices import weights_checksum
from explorer.analysis.weights import model_fingerprint
from explorer.errors import InputError
from explorer.models.tiny import build_tiny_model, byte_tokenizer, tiny_config
from tests.conftest import SAMPLE_TEXT


def _saved(arch: str, path, config=None):
    model = build_tiny_model(arch) if config is None else type(build_tiny_model(arch))(config)
    model.save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    return path


def test_same_model_from_a_folder_changes_nothing(tiny_model, tmp_path):
    """A variant equal to A: KL 0, top-1 agreement 1, Delta W = 0 for every matrix."""
    arch = tiny_model.id.split("-")[1]
    folder = _saved(arch, tmp_path / "same")
    variant = V.build_variant(tiny_model, f"dir:{folder}")
    assert np.all(V.relative_change(tiny_model, variant) == 0.0)
    name = next(iter(variant.replaced))
    assert delta_spectrum(*V.matrix_pair(tiny_model, variant, name)).zero
    out = V.compare_outputs_of(tiny_model, variant, SAMPLE_TEXT, None, n_new=3 if tiny_model.causal else 0)
    if tiny_model.causal:
        assert out.tokens.kl == 0.0 and out.tokens.top1_agreement == 1.0
        assert out.continuation_a == out.continuation_b
    else:
        assert out.hidden.relative_change == 0.0


def test_folder_of_another_shape_is_refused(load, tmp_path):
    llama = load("tiny-llama")
    with pytest.raises(InputError, match="same architecture"):
        V.build_variant(llama, f"dir:{_saved('gpt2', tmp_path / 'gpt2')}")
    config = tiny_config("llama")
    config.intermediate_size = 3 * config.hidden_size
    with pytest.raises(InputError, match="mlp"):
        V.build_variant(llama, f"dir:{_saved('llama', tmp_path / 'wider', config)}")
    with pytest.raises(InputError, match="dir:"):
        V.build_variant(llama, f"dir:{tmp_path / 'missing'}")


@pytest.mark.parametrize("key", ["int8", "int4-g32-asym", "lora:r2:s2", "rank:0.5+int8"])
def test_variants_through_the_task_layer_leave_the_cached_model(tiny_model, key, cache_home):
    before = weights_checksum(tiny_model.model)
    spec = V.variant_spec(model_fingerprint(tiny_model.model), key, SAMPLE_TEXT)
    seen = []
    variant = tasks.run(
        spec, V.variant_work(tiny_model, spec, SAMPLE_TEXT), progress=lambda f, m: seen.append(f)
    )
    assert weights_checksum(tiny_model.model) == before
    assert variant.key == key and variant.replaced and seen
    change = V.relative_change(tiny_model, variant)
    assert np.all(change >= 0) and change.max() > 0
    B = V.variant_spectra_spec(tiny_model, variant)
    spectra = tasks.run(B, V.variant_spectra_work(tiny_model, variant, B))
    assert len(spectra.names) == len(change)


def test_smollm2_int8_outputs_close(smollm2):
    """int8 per row moves each weight by at most half a step (|W|_max / 127 / 2): the next-token distributions
    stay close (mean KL well under 0.01 nats, the same top token at most positions)."""
    variant = V.build_variant(smollm2, "int8")
    out = V.compare_outputs_of(smollm2, variant, SAMPLE_TEXT, None)
    assert 0 < out.tokens.kl < 1e-2
    assert out.tokens.top1_agreement >= 0.9
    assert out.tokens.perplexity_b == pytest.approx(out.tokens.perplexity_a, rel=0.05)


def test_smollm2_lora_delta_has_rank_at_most_r(smollm2):
    """W_B = fl32(W_A + B A): sigma_{r+1}(W_B - W_A) <= eps32/2 ||W_B||_F (compare.rounding_floor), so the
    numerical rank of the stored update is at most r; and the cached weights stay bit-identical."""
    before = weights_checksum(smollm2.model)
    r = 2
    variant = V.build_variant(smollm2, f"lora:r{r}:s2", SAMPLE_TEXT)
    assert weights_checksum(smollm2.model) == before
    assert variant.losses[-1] < variant.losses[0]
    for name in list(variant.replaced)[:4]:
        W_A, W_B = V.matrix_pair(smollm2, variant, name)
        d = delta_spectrum(W_A, W_B)
        assert not d.zero and d.numerical_rank <= r and d.sigma[r] <= d.noise
    assert all(t.device == next(smollm2.model.parameters()).device for t in variant.replaced.values())
    assert isinstance(variant.module, torch.nn.Module)


def test_b_spectra_from_the_changed_matrices_equal_a_full_pass(load, cache_home):
    """Decomposing only the replaced matrices and taking A's rows for the rest gives B's full spectra: each
    matrix's metrics depend on that matrix alone."""
    from explorer.analysis.weights import compute_weight_spectra

    loaded = load("tiny-llama")
    variant = V.build_variant(loaded, "lora:r2:s2", SAMPLE_TEXT)
    A = compute_weight_spectra(loaded.model)
    spec = V.variant_spectra_spec(loaded, variant)
    merged = V.variant_spectra_work(loaded, variant, spec, A)(tasks.Task("t"))
    full = compute_weight_spectra(loaded.model, mats=variant.matrices(loaded.model))
    assert merged.names == full.names and len(variant.replaced) < len(full.names)
    for s_merged, s_full in zip(merged.sigma, full.sigma, strict=True):
        np.testing.assert_array_equal(s_merged, s_full)
    for field in ("alpha", "stable_rank", "spectral_norm", "n_spikes"):
        np.testing.assert_array_equal(getattr(merged, field), getattr(full, field))
