"""The per-layer lazy path gives exactly the attention of a full capture, for the layers asked, and leaves the
model without hooks."""

import numpy as np
import pytest

from explorer.models import capture
from explorer.models.lazy import attention_for_layers, attention_modules
from tests.conftest import SAMPLE_TEXT


@pytest.mark.parametrize("model_id", ["tiny-gpt2", "tiny-bert", "tiny-llama"])
def test_lazy_layers_equal_full_capture_on_tiny_models(load, model_id):
    loaded = load(model_id)
    full = capture(loaded, SAMPLE_TEXT).attentions
    lazy = attention_for_layers(loaded, SAMPLE_TEXT, [1])
    assert list(lazy) == [1]
    np.testing.assert_allclose(lazy[1], full[1], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_lazy_layers_on_smollm2(smollm2):
    full = capture(smollm2, SAMPLE_TEXT).attentions
    hooks_before = [len(m._forward_hooks) for m in attention_modules(smollm2.model).values()]
    lazy = attention_for_layers(smollm2, SAMPLE_TEXT, [0, 17, 29])
    assert sorted(lazy) == [0, 17, 29]
    for layer, weights in lazy.items():
        assert weights.shape == full[layer].shape == (9, full.shape[2], full.shape[3])
        np.testing.assert_allclose(weights, full[layer], rtol=0, atol=1e-6)
    assert len(attention_modules(smollm2.model)) == 30
    hooks_after = [len(m._forward_hooks) for m in attention_modules(smollm2.model).values()]
    assert hooks_after == hooks_before  # our hooks removed: the shared model is unchanged


def test_unknown_layer_is_a_clear_error(load):
    with pytest.raises(ValueError, match="layers 0..1"):
        attention_for_layers(load("tiny-llama"), "hello", [5])
