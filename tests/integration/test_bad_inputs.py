"""Bad texts and bad models give one clear, actionable message (an ExplorerError), never a traceback."""

import json
import shutil

import pytest

from explorer.errors import InputError, ModelLoadError
from explorer.models import capture, load_model
from explorer.models.tiny import build_tiny_model, byte_tokenizer


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny-bert"
    build_tiny_model("bert").save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    return path


@pytest.mark.parametrize("text", ["", "   \n\t  ", None])
def test_empty_text(load, text):
    with pytest.raises(InputError, match="empty"):
        capture(load("tiny-gpt2"), text)


def test_long_text_is_truncated_and_says_so(load):
    loaded = load("tiny-gpt2")  # max 128 positions
    cap = capture(loaded, "word " * 20_000)
    assert cap.truncated and cap.n_tokens == 128
    assert cap.n_tokens_original > 128
    assert any("only the first 128" in m for m in cap.messages)


def test_max_tokens_setting_truncates(load):
    cap = capture(load("tiny-bert"), "abcdefghij" * 10, max_tokens=16)
    assert cap.n_tokens == 16 and "max-tokens" in cap.messages[-1]


@pytest.mark.parametrize(
    "text", ["emoji 🙂🚀 and RTL שלום עולם", "zero\u200bwidth\u200d", "ctrl\x00\x07\x1b chars"]
)
def test_unusual_characters(load, text):
    cap = capture(load("tiny-llama"), text)
    assert cap.n_tokens > 0 and all(t for t in cap.token_texts)


def test_local_model_loads(saved_tiny):
    loaded = load_model(str(saved_tiny))
    assert loaded.card.architecture == "BertModel" and not loaded.card.causal


def test_missing_path():
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_model("/definitely/not/here")


def test_directory_without_model(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_corrupt_weights(saved_tiny, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(saved_tiny, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file" * 50)
    with pytest.raises(ModelLoadError, match="damaged"):
        load_model(str(broken))


def test_pickle_weights_refused_unless_allowed(saved_tiny, tmp_path):
    pickled = tmp_path / "pickled"
    shutil.copytree(saved_tiny, pickled)
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(str(pickled))


def test_remote_code_refused(tmp_path):
    config = {
        "model_type": "my_custom_arch",
        "architectures": ["XModel"],
        "auto_map": {"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel"},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="custom code"):
        load_model(str(tmp_path))


def test_too_big_refused_before_loading(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(
        hidden_size=16384, num_hidden_layers=120, intermediate_size=53248, num_attention_heads=128
    ).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"x")  # never read: refused from the config alone
    with pytest.raises(ModelLoadError, match="GiB"):
        load_model(str(tmp_path))


def test_model_without_attention_outputs(tmp_path):
    from transformers import MambaConfig, MambaForCausalLM

    MambaForCausalLM(
        MambaConfig(vocab_size=259, hidden_size=32, num_hidden_layers=1, state_size=4)
    ).save_pretrained(tmp_path)
    byte_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="no attention weights"):
        load_model(str(tmp_path))


def test_hub_id_offline_fails_with_what_to_do():
    # Speed is not asserted here (no timed assertions in tests): a hang would stall this test visibly.
    with pytest.raises(ModelLoadError, match="hub cannot be reached"):
        load_model("some-org/some-model")


def test_external_models_can_be_disabled(saved_tiny):
    with pytest.raises(ModelLoadError, match="only allows the catalogue"):
        load_model(str(saved_tiny), allow_external=False)


def test_unknown_id_and_device():
    with pytest.raises(ModelLoadError, match="Unknown model"):
        load_model("gpt-17")
    with pytest.raises(ModelLoadError, match="not available"):
        load_model("tiny-gpt2", device="tpu")


def test_nan_activations_are_reported(load, monkeypatch):
    """Simulate a half-precision overflow: the forward pass yields NaN; capture must say so, not crash."""
    import torch

    loaded = load("tiny-gpt2")
    original_forward = loaded.model.forward

    def nan_forward(*args, **kwargs):
        out = original_forward(*args, **kwargs)
        out.hidden_states = tuple(h * float("nan") for h in out.hidden_states)
        return out

    monkeypatch.setattr(loaded.model, "forward", nan_forward)
    with pytest.raises(InputError, match="NaN"):
        capture(loaded, "hello")
    assert torch.isfinite(next(loaded.model.parameters())).all()
