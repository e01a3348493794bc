"""Weight spectra streamed from a safetensors checkpoint (explorer/models/checkpoint.py) on the tiny models:
the same matrices (names, layers, kinds, orientation, order) and the same numbers as the loaded model, one
file or sharded; the task-layer spec; every bad folder refused with a message that says what to do."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from explorer.analysis.matrices import weight_matrices
from explorer.analysis.weights import (
    ARRAY_FIELDS,
    CheckpointSpectraSpec,
    checkpoint_spec,
    checkpoint_spectra,
    compute_checkpoint_spectra,
    compute_randomized_spectra,
    compute_weight_spectra,
    randomized_spectra,
)
from explorer.models.anatomy import checkpoint_slots, matrix_slots
from explorer.models.checkpoint import Checkpoint, CheckpointError
from explorer.models.tiny import build_tiny_model
from tests.conftest import restart_tasks
from tests.tolerances import SAFETY, eps, gram_singular_value_tolerance

ARCHS = ["gpt2", "bert", "llama"]


@pytest.fixture(scope="module")
def tiny_models():
    return {arch: build_tiny_model(arch) for arch in ARCHS}


def _save(model, folder, sharded: bool):
    # 20 kB shards: every tiny model is split over several files and an index (GPT-2's embedding alone is 66 kB).
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="20KB" if sharded else "5GB")
    return folder


@pytest.fixture(
    scope="module",
    params=[(arch, sharded) for arch in ARCHS for sharded in (False, True)],
    ids=lambda p: f"{p[0]}-{'sharded' if p[1] else 'single'}",
)
def saved(request, tiny_models, tmp_path_factory):
    arch, sharded = request.param
    model = tiny_models[arch]
    folder = _save(model, tmp_path_factory.mktemp(f"{arch}-{sharded}"), sharded)
    return model, Checkpoint.open(folder), sharded


def test_the_saved_folder_is_what_was_asked(saved):
    _, checkpoint, sharded = saved
    assert (len(checkpoint.files) > 1) == sharded
    assert (checkpoint.folder / "model.safetensors.index.json").is_file() == sharded


def test_matrices_are_the_loaded_models_in_its_order(saved):
    """Names, layers, kinds, (out, in) shapes and order equal ``weight_matrices`` of the loaded model: GPT-2's
    fused c_attn split into q, k, v and transposed from Conv1D's (in, out), its tied lm_head once; the tiny
    Llama's untied lm_head kept."""
    model, checkpoint, _ = saved
    loaded = [(m.name, m.layer, m.kind, m.shape) for m in weight_matrices(model)]
    streamed = [(m.name, m.layer, m.kind, m.shape) for m in checkpoint.matrices]
    assert streamed == loaded
    assert [s.transposed for s in matrix_slots(model)] == [m.slot.transposed for m in checkpoint.matrices]


def test_every_matrix_reads_bit_for_bit_as_the_loaded_weight(saved):
    model, checkpoint, _ = saved
    for i, m in enumerate(weight_matrices(model)):
        assert torch.equal(checkpoint.read(i), m.weight.float()), m.name


def test_spectra_equal_the_loaded_models(saved):
    """The streamed stacks are bit-equal to the loaded ones (previous test) and batched by the same shapes and
    chunks, so the deterministic decomposition gives the same numbers exactly; and they are the singular values
    numpy finds, within the Gram route's bound plus float64 SVD's Weyl bound."""
    model, checkpoint, _ = saved
    loaded = compute_weight_spectra(model)
    streamed = compute_checkpoint_spectra(checkpoint)
    assert streamed.names == loaded.names and streamed.kinds == loaded.kinds
    assert np.array_equal(streamed.layers, loaded.layers) and np.array_equal(streamed.shapes, loaded.shapes)
    for a, b in zip(streamed.sigma, loaded.sigma, strict=True):
        assert np.array_equal(a, b)
    for field in ARRAY_FIELDS:
        assert np.array_equal(getattr(streamed, field), getattr(loaded, field), equal_nan=True), field
    for i in range(len(streamed)):
        W = checkpoint.read(i).double().numpy()
        expected = np.linalg.svd(W, compute_uv=False)
        allowed = gram_singular_value_tolerance(W, expected) + SAFETY * max(W.shape) * eps() * expected[0]
        assert np.all(np.abs(streamed.sigma[i] - expected) <= allowed), streamed.names[i]


def test_svd_route_equals_the_loaded_models(tiny_models, tmp_path):
    model = tiny_models["llama"]
    checkpoint = Checkpoint.open(_save(model, tmp_path, sharded=True))
    loaded = compute_weight_spectra(model, method="svd")
    streamed = compute_checkpoint_spectra(checkpoint, method="svd")
    for a, b in zip(streamed.sigma, loaded.sigma, strict=True):
        assert np.array_equal(a, b)


def test_randomized_comparison_equals_the_loaded_models(tiny_models, tmp_path, cache_home):
    model = tiny_models["gpt2"]
    checkpoint = Checkpoint.open(_save(model, tmp_path / "ckpt", sharded=True))
    spectra = checkpoint_spectra(checkpoint)
    streamed = randomized_spectra(checkpoint, spectra)
    loaded = compute_randomized_spectra(model, compute_weight_spectra(model))
    for a, b in zip(streamed.sigma, loaded.sigma, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(streamed.n_traps, loaded.n_traps)
    assert np.array_equal(streamed.rand_distance, loaded.rand_distance)


def test_bfloat16_loading_dtype_rounds_as_the_loader_does(tiny_models, tmp_path):
    model = tiny_models["llama"]
    checkpoint = Checkpoint.open(_save(model, tmp_path, sharded=False), dtype="bfloat16")
    for i, m in enumerate(weight_matrices(model)):
        assert torch.equal(checkpoint.read(i), m.weight.to(torch.bfloat16).float()), m.name


# ---------------------------------------------------------------------------------------------- task layer


def test_spec_is_kept_on_disk_and_read_back(tiny_models, tmp_path, cache_home, monkeypatch):
    checkpoint = Checkpoint.open(_save(tiny_models["bert"], tmp_path / "ckpt", sharded=False))
    spec = checkpoint_spec(checkpoint)
    assert isinstance(spec, CheckpointSpectraSpec) and spec.KIND == "weight-spectra-checkpoint"
    assert spec.n_entries == sum(m.shape[0] * m.shape[1] for m in checkpoint.matrices)
    first = checkpoint_spectra(checkpoint)
    assert not first.from_cache and first.fingerprint == spec.fingerprint
    restart_tasks(monkeypatch)
    again = checkpoint_spectra(Checkpoint.open(checkpoint.folder))
    assert again.from_cache
    assert all(np.array_equal(a, b) for a, b in zip(again.sigma, first.sigma, strict=True))


def test_fingerprint_follows_the_files_and_the_dtype(tiny_models, tmp_path):
    folder = _save(tiny_models["llama"], tmp_path, sharded=True)
    checkpoint = Checkpoint.open(folder)
    before = checkpoint.fingerprint()
    assert before == Checkpoint.open(folder).fingerprint()
    assert before != Checkpoint.open(folder, dtype="bfloat16").fingerprint()
    shard = checkpoint.files[0]
    stat = shard.stat()
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten in place: a new step
    assert Checkpoint.open(folder).fingerprint() != before


# ------------------------------------------------------------------------------------------ name rules


def test_a_saved_copy_of_a_tied_output_layer_is_skipped(tiny_models, tmp_path):
    """Some checkpoints store lm_head although the config ties it: the loaded model's lm_head is then the
    embedding, listed once, and so is the checkpoint's."""
    model = tiny_models["gpt2"]
    _save(model, tmp_path, sharded=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["lm_head.weight"] = state["transformer.wte.weight"].clone()
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    checkpoint = Checkpoint.open(tmp_path)
    assert [m.name for m in checkpoint.matrices] == [m.name for m in weight_matrices(model)]
    config = json.loads((tmp_path / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (tmp_path / "config.json").write_text(json.dumps(config))
    untied = Checkpoint.open(tmp_path)
    assert untied.matrices[-1].name == "lm_head" and untied.matrices[-1].kind == "lm_head"


def test_an_unknown_layout_is_every_matrix_as_other_in_name_order():
    slots = checkpoint_slots(["net.10.proj", "net.2.proj", "head"], tied_output=True)
    assert [(s.name, s.layer, s.kind) for s in slots] == [
        ("head", None, "other"),
        ("net.2.proj", None, "other"),
        ("net.10.proj", None, "other"),
    ]


# ------------------------------------------------------------------------------------------ bad folders


def test_bad_folders_are_refused_with_what_to_do(tiny_models, tmp_path):
    with pytest.raises(CheckpointError, match="not a folder"):
        Checkpoint.open(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="no config.json"):
        Checkpoint.open(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no \\*.safetensors"):
        Checkpoint.open(tmp_path)

    sharded = _save(tiny_models["llama"], tmp_path / "sharded", sharded=True)
    victim = sorted(sharded.glob("model-*.safetensors"))[0]
    victim.unlink()
    with pytest.raises(CheckpointError, match=f"lacks shard\\(s\\) {victim.name}"):
        Checkpoint.open(sharded)

    damaged = _save(tiny_models["bert"], tmp_path / "damaged", sharded=False)
    (damaged / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        Checkpoint.open(damaged)

    quantized = tmp_path / "quantized"
    quantized.mkdir()
    (quantized / "config.json").write_text("{}")
    save_file({"layer.weight": torch.zeros(4, 4, dtype=torch.int8)}, quantized / "model.safetensors")
    with pytest.raises(CheckpointError, match="stored as I8, not as floats"):
        Checkpoint.open(quantized)

    with pytest.raises(CheckpointError, match="Unknown dtype"):
        Checkpoint.open(_save(tiny_models["bert"], tmp_path / "ok", sharded=False), dtype="int4")
