"""Shared fixtures: models are loaded once per test session (loading is the slow part)."""

from __future__ import annotations

import os

import pytest

# No test may reach the hub: fail fast instead of waiting on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_IDS = ["tiny-gpt2", "tiny-bert", "tiny-llama"]
EMBEDDED_IDS = ["minilm-l6", "smollm2-135m"]
SAMPLE_TEXT = "The quick brown fox jumps over the lazy dog. Then the fox sleeps."

_loaded: dict = {}


def get_model(model_id: str):
    """A LoadedModel shared by all tests in the session. Tests must not mutate it."""
    from explorer.models import load_model

    if model_id not in _loaded:
        _loaded[model_id] = load_model(model_id, device="cpu")
    return _loaded[model_id]


@pytest.fixture(scope="session")
def load():
    return get_model


@pytest.fixture(scope="session", params=TINY_IDS)
def tiny_model(request):
    return get_model(request.param)


@pytest.fixture(scope="session", params=EMBEDDED_IDS)
def embedded_model(request):
    return get_model(request.param)


@pytest.fixture(scope="session")
def minilm():
    return get_model("minilm-l6")


@pytest.fixture(scope="session")
def smollm2():
    return get_model("smollm2-135m")


@pytest.fixture()
def cache_home(tmp_path, monkeypatch):
    """An empty user cache dir for this test (XDG_CACHE_HOME = tmp_path) at the default caps, and an empty task
    board (as in a new process: results come from the disk store or are computed)."""
    from explorer import store, tasks

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(store.CAP_ENV, raising=False)
    monkeypatch.setattr(tasks, "BOARD", tasks.Board())
    return tmp_path


def restart_tasks(monkeypatch) -> None:
    """Forget every task in memory, as a restarted server would (the disk store stays)."""
    from explorer import tasks

    monkeypatch.setattr(tasks, "BOARD", tasks.Board())


@pytest.fixture()
def refuse_model_loads(monkeypatch) -> None:
    """Any call of load_model (from explorer.models or explorer.models.loading) fails the test: for work that
    must read checkpoint files without building a model."""
    import explorer.models
    import explorer.models.loading

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(explorer.models, "load_model", refuse)
    monkeypatch.setattr(explorer.models.loading, "load_model", refuse)


def write_doubled_series(root) -> None:
    """A two-step checkpoint series of the tiny Llama under ``root`` (a pathlib.Path): step_0 as built, step_1
    with layer 0's MLP down-projection doubled (so its spectral norm doubles and its stable rank and alpha do
    not), each written with save_pretrained as a training run would."""
    import torch

    from explorer.models import tiny

    model = tiny.build_tiny_model("llama")
    model.save_pretrained(root / "step_0", safe_serialization=True)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(2.0)
    model.save_pretrained(root / "step_1", safe_serialization=True)
