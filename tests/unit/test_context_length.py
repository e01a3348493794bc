"""The context length read from a model's config without loading it (the sidebar's offered lengths)."""

import json

import pytest

from explorer.models.catalogue import CATALOGUE
from explorer.models.loading import context_length, embedded_model_dir, load_model
from explorer.models.tiny import MAX_POSITIONS


@pytest.mark.parametrize("model_id", ["tiny-gpt2", "tiny-bert", "tiny-llama"])
def test_tiny_models_context_without_loading_equals_the_loaded_card(model_id):
    assert context_length(model_id) == MAX_POSITIONS == load_model(model_id).card.max_positions


def test_a_folder_without_a_config_and_a_missing_path_give_none(tmp_path):
    assert context_length(str(tmp_path)) is None
    assert context_length(str(tmp_path / "missing")) is None


def test_a_folder_reads_its_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": 1000}))
    assert context_length(str(tmp_path)) == 1000


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model_id", "key"),
    [("smollm2-135m", "max_position_embeddings"), ("minilm-l6", "max_position_embeddings")],
)
def test_embedded_models_context_is_their_config_files(model_id, key):
    folder = embedded_model_dir(CATALOGUE[model_id])
    expected = json.loads((folder / "config.json").read_text())[key]
    assert context_length(model_id) == expected == {"smollm2-135m": 8192, "minilm-l6": 512}[model_id]
