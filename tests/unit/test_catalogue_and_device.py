"""Model ids resolve to the right source, or to a message that says what to do."""

import pytest

from explorer.models.catalogue import classify
from explorer.models.device import available_devices, resolve_device, resolve_dtype


def test_catalogue_ids():
    assert classify("smollm2-135m") == "embedded"
    assert classify("minilm-l6") == "embedded"
    assert classify("tiny-llama") == "tiny"


def test_local_dir_and_hub_id(tmp_path):
    assert classify(str(tmp_path)) == "local"
    assert classify("HuggingFaceTB/SmolLM2-135M") == "hub"


@pytest.mark.parametrize("bad", ["", "   ", "/no/such/dir", "./missing", "not a model!", "gpt2"])
def test_bad_ids_have_readable_messages(bad):
    with pytest.raises(ValueError) as err:
        classify(bad)
    assert len(str(err.value)) > 20


def test_device_resolution():
    assert resolve_device("auto") == available_devices()[0]
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="not available"):
        resolve_device("tpu")


def test_dtype_resolution():
    import torch

    assert resolve_dtype("float32", "cpu") == torch.float32
    assert resolve_dtype(None, "cpu") == torch.float32
    with pytest.raises(ValueError):
        resolve_dtype("float16", "cpu")
    with pytest.raises(ValueError):
        resolve_dtype("int3", "cpu")
