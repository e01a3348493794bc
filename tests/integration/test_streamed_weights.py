"""Weight spectra streamed from the embedded models' safetensors folders equal the loaded models' (SmolLM2,
MiniLM); the streamed route's peak memory follows its largest matrix, not the model (ru_maxrss in a
subprocess); ``report --sections weights`` on a folder never loads the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from explorer.analysis.weights import ARRAY_FIELDS, compute_checkpoint_spectra, compute_weight_spectra
from explorer.cli import main
from explorer.models.checkpoint import Checkpoint, checkpoint_folder
from tests.tolerances import SAFETY, eps, gram_singular_value_tolerance

pytestmark = pytest.mark.slow

MB = 2**20


@pytest.fixture(scope="module")
def smollm2_folder(smollm2):
    """SmolLM2's de-quantized safetensors folder (written by its first load; the session fixture loads it)."""
    folder = checkpoint_folder("smollm2-135m")
    assert folder is not None
    return folder


@pytest.mark.parametrize("model_id", ["minilm-l6", "smollm2-135m"])
def test_streamed_spectra_equal_the_loaded_models(model_id, load):
    """Each streamed matrix is bit-equal to the loaded model's weight (the embedded SmolLM2 folder holds the
    float32 de-quantization the loader reads, MiniLM ships float32), batched by the same shapes and chunks, so
    the numbers are the same exactly; and sigma_1 is numpy's within the Gram route's and float64 SVD's bounds."""
    loaded = load(model_id)
    checkpoint = Checkpoint.open(checkpoint_folder(model_id))
    assert {m.stored for m in checkpoint.matrices} == {"F32"}
    reference = compute_weight_spectra(loaded.model)
    streamed = compute_checkpoint_spectra(checkpoint)
    assert streamed.names == reference.names and streamed.kinds == reference.kinds
    assert np.array_equal(streamed.layers, reference.layers)
    for a, b in zip(streamed.sigma, reference.sigma, strict=True):
        assert np.array_equal(a, b)
    for field in ARRAY_FIELDS:
        assert np.array_equal(getattr(streamed, field), getattr(reference, field), equal_nan=True), field
    for i in (0, len(streamed) // 2, len(streamed) - 1):  # the embedding, a block matrix, the last one
        W = checkpoint.read(i).double().numpy()
        expected = np.linalg.svd(W, compute_uv=False)
        allowed = (
            gram_singular_value_tolerance(W, expected, norm=expected[0])
            + SAFETY * max(W.shape) * eps() * expected[0]
        )
        assert np.all(np.abs(streamed.sigma[i] - expected) <= allowed), streamed.names[i]


# ----------------------------------------------------------------------------------------------- memory

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from explorer.analysis.weights import compute_checkpoint_spectra, compute_weight_spectra
    from explorer.models import load_model
    from explorer.models.checkpoint import Checkpoint

    def peak():
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a child of a large test process would
        # report its parent's peak; the high-water mark belongs to this process's own address space.
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024  # kB

    mode, source = sys.argv[1:3]
    baseline, start = peak(), time.perf_counter()
    if mode == "streamed":
        spectra = compute_checkpoint_spectra(Checkpoint.open(source))
    else:
        spectra = compute_weight_spectra(load_model(source, device="cpu").model)
    print(json.dumps({"baseline": baseline, "peak": peak(), "seconds": time.perf_counter() - start,
                      "matrices": len(spectra)}))
    """
)


def _measure(mode: str, source: str) -> dict:
    """Peak resident memory (bytes, after the imports and at the end) and time of one route in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, source], capture_output=True, text=True, timeout=3600, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_streamed_peak_memory_is_below_the_loaded_routes_by_the_model(smollm2_folder):
    """Both routes decompose the same chunks (same-shape stacks of at most _CHUNK_BYTES in float64), so their
    transient memory is the same; the loaded route also holds every weight (float32, 4 bytes each) throughout.
    So the loaded peak exceeds the imports by at least the model's bytes, and the streamed peak stays below the
    loaded one by at least half of them (the other half allowed for the file pages the streamed route maps while
    it reads a chunk, and allocator slack). Measured here (load average ~30): imports 303 MB, streamed peak
    890 MB; the loaded route passed 1.5 GB."""
    checkpoint = Checkpoint.open(smollm2_folder)
    model_bytes = 4 * checkpoint.n_entries
    streamed = _measure("streamed", str(smollm2_folder))
    loaded = _measure("loaded", "smollm2-135m")
    assert streamed["matrices"] == loaded["matrices"] == len(checkpoint.matrices)
    print(
        f"\nSmolLM2 weight spectra: streamed peak {streamed['peak'] / MB:.0f} MB in {streamed['seconds']:.1f} s; "
        f"loaded peak {loaded['peak'] / MB:.0f} MB in {loaded['seconds']:.1f} s; imports "
        f"{streamed['baseline'] / MB:.0f} MB"
    )
    assert loaded["peak"] - loaded["baseline"] >= model_bytes
    assert streamed["peak"] + model_bytes // 2 <= loaded["peak"]


def test_report_sections_weights_on_a_folder_never_loads_the_model(
    smollm2_folder, smollm2, tmp_path, monkeypatch, refuse_model_loads
):
    """The loader is never called (it raises if it is), and the rows are the loaded model's spectra."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # computed here, not read from a store
    out = tmp_path / "report"
    assert main(["report", "--model", str(smollm2_folder), "--sections", "weights", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"weights"}
    reference = compute_weight_spectra(smollm2.model)
    assert [row["name"] for row in metrics["weights"]] == list(reference.names)
    for row, norm, rank in zip(
        metrics["weights"], reference.spectral_norm, reference.stable_rank, strict=True
    ):
        assert row["spectral_norm"] == norm and row["stable_rank"] == rank  # same route, same inputs: exact
        assert row["rand_distance"] is not None
    assert "without loading the model" in (out / "report.html").read_text()


def test_report_sections_weights_builds_no_model_in_a_fresh_process(smollm2_folder, tmp_path):
    """The whole CLI run (spectra, the shuffled comparison, figures, HTML) in a fresh process: no Llama model
    module is ever imported (so no model was built), and its peak memory is printed."""
    script = textwrap.dedent(
        """
        import resource, sys
        from explorer.cli import main
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        code = main(["report", "--model", sys.argv[1], "--sections", "weights", "--out", sys.argv[2]])
        built = [m for m in sys.modules if m.startswith("transformers.models.") and ".modeling_" in m]
        print(code, baseline, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, ",".join(built) or "-")
        """
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", script, str(smollm2_folder), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
        env=env,
    )
    code, baseline, peak, built = done.stdout.strip().splitlines()[-1].split()
    print(
        f"\nreport --sections weights on SmolLM2's folder: peak {int(peak) / MB:.0f} MB, imports {int(baseline) / MB:.0f} MB"
    )
    assert code == "0"
    assert "modeling_llama" not in built, built
