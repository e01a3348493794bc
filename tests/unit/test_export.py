"""Exported compression decisions on the tiny models: what is written is what the page measured (factors and codes
bit for bit, the bytes the page counts), it loads back into the same model, and a wrong export is refused with a
message that says what to do."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import zipfile
from html.parser import HTMLParser

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from explorer.analysis import compression as comp
from explorer.analysis import export as ex
from explorer.analysis import quantize as qz
from explorer.analysis.lowrank import factorize
from explorer.analysis.matrices import weight_matrices, weights_checksum
from explorer.errors import ExplorerError, ModelLoadError
from explorer.models.loading import load_model
from explorer.report import decision
from explorer.spectra.quantization import INT8, QuantScheme, quantize
from tests.conftest import SAMPLE_TEXT, TINY_IDS
from tests.tolerances import SAFETY, eps

SCHEMES = [INT8, QuantScheme(4, 32), QuantScheme(4, 16, symmetric=False), QuantScheme(3, 7, symmetric=False)]


def _setup(load, model_id):
    loaded = load(model_id)
    evalset = comp.make_eval_set(loaded, SAMPLE_TEXT, 64)
    return loaded, evalset, comp.reference(loaded, evalset)


def _lowrank(loaded, share=0.5):
    fact = factorize(loaded.model, "svd", comp.available_kinds(loaded.model), None)
    return fact, comp.choose_ranks(fact, comp.RankSetting(mode="share", share=share))


def _outputs(loaded, model, evalset):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([evalset.ids]))
    return out.logits if loaded.causal else out.last_hidden_state


def _float64_twin(loaded):
    """The same base in float64 (a private deep copy): the reference the float32 forwards are rounded from."""
    return dataclasses.replace(loaded, model=copy.deepcopy(loaded.model).double(), dtype="float64")


@pytest.mark.parametrize("model_id", TINY_IDS)
def test_lowrank_export_loads_back_into_the_measured_model(load, model_id, tmp_path):
    loaded, evalset, ref = _setup(load, model_id)
    before = weights_checksum(loaded.model)
    fact, ranks = _lowrank(loaded)
    outcome = comp.evaluate_ranks(loaded, fact, ranks, evalset, ref)  # what the page measures
    compression = ex.lowrank(loaded, fact, ranks)
    folder = ex.export_folder(tmp_path / "out", compression, base=loaded, setting={"allocation": "uniform"},
                              quality=ex.quality_record(ref.quality, outcome.after, evalset, SAMPLE_TEXT, "sample"))  # fmt: skip
    back = ex.read_export(folder)

    # Factors bit for bit: the SVD's own factors at each rank.
    for f in fact.matrices:
        A, B = f.factors(ranks[f.name])
        assert torch.equal(back.compression.entries[f.name].A, A)
        assert torch.equal(back.compression.entries[f.name].B, B)
    # The page's module form, rebuilt from the files, computes the very same numbers.
    page_copy = comp.compressed_model(loaded, fact, ranks)
    rebuilt = ex.factored_copy(loaded, back.compression)
    assert torch.equal(_outputs(loaded, rebuilt, evalset), _outputs(loaded, page_copy, evalset))
    assert comp.evaluate(loaded, rebuilt, evalset, ref).headline == outcome.after.headline

    # The app's dense form: each changed weight is A B (float64 product of the stored factors, rounded once).
    dense = ex.load_compressed(folder, base=loaded)
    for mat in weight_matrices(dense.model):
        if mat.name in ranks:
            A, B = (t.double().numpy() for t in fact.matrices[[f.name for f in fact.matrices].index(mat.name)]
                    .factors(ranks[mat.name]))  # fmt: skip
            assert np.array_equal(mat.weight.numpy(), (A @ B).astype(np.float32))
    # Its outputs differ from the factored form's only by float32 rounding: the float64 evaluation of the same
    # compressed function is the truth both round from; the dense form may be at most SAFETY times further from
    # it than the measured (factored) form is, or a few float32 ulps of the output's scale when that is smaller.
    truth = _outputs(loaded, ex.factored_copy(_float64_twin(loaded), back.compression), evalset)
    measured_err = float((_outputs(loaded, page_copy, evalset).double() - truth).abs().max())
    dense_err = float((_outputs(dense, dense.model, evalset).double() - truth).abs().max())
    assert dense_err <= SAFETY * max(measured_err, eps(np.float32) * float(truth.abs().max()))
    assert weights_checksum(loaded.model) == before  # the base is only read


@pytest.mark.parametrize("model_id", TINY_IDS)
def test_storage_is_what_the_page_counts(load, model_id, tmp_path):
    loaded, evalset, ref = _setup(load, model_id)
    fact, ranks = _lowrank(loaded)
    outcome = comp.evaluate_ranks(loaded, fact, ranks, evalset, ref)
    compression = ex.lowrank(loaded, fact, ranks)
    manifest = json.loads(ex.export_files(compression, base=loaded, setting={}, quality={})[ex.MANIFEST])
    factor_entries = sum(r.rank * (r.shape[0] + r.shape[1]) for r in outcome.rows)
    # Page: every parameter at fp16, the factored matrices as k(m + n) entries. The export holds only the
    # factors (float32 here, 4 bytes an entry); page_bytes is their fp16 count, the page's total minus the
    # fp16 bytes of everything the export leaves to the base.
    untouched = outcome.params_model_before - sum(r.shape[0] * r.shape[1] for r in outcome.rows)
    assert manifest["storage"]["tensor_bytes"] == 4 * factor_entries
    assert manifest["storage"]["page_bytes"] == comp.model_bytes(outcome.params_model_after) - 2 * untouched

    kinds = ("attn_q", "mlp_up")
    for scheme in SCHEMES:
        q_outcome = qz.quantize_weights(loaded, kinds, scheme, evalset, ref)
        files = ex.export_files(ex.quantized(loaded, kinds, scheme), base=loaded, setting={}, quality={})
        storage = json.loads(files[ex.MANIFEST])["storage"]
        assert storage["tensor_bytes"] == storage["page_bytes"] == q_outcome.bytes_chosen
        n_tensors = len(json.loads(files[ex.MANIFEST])["matrices"]) * (2 if scheme.symmetric else 3)
        # A safetensors file is an 8-byte length, a JSON header (name, dtype, shape, offsets per tensor), data.
        header = len(files[ex.WEIGHTS]) - storage["tensor_bytes"]
        assert 8 < header <= 8 + 256 * n_tensors + 256


def _numpy_pack(codes: np.ndarray, bits: int, symmetric: bool) -> np.ndarray:
    """The PACKING bit stream by a second route: each code's bits written one by one."""
    u = (codes.astype(np.int64) + (2 ** (bits - 1) if symmetric else 0)).ravel()
    stream = np.zeros(math.ceil(u.size * bits / 8), dtype=np.uint8)
    for i, value in enumerate(u):
        for b in range(bits):
            if (value >> b) & 1:
                pos = i * bits + b
                stream[pos // 8] |= np.uint8(1 << (pos % 8))
    return stream


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_codes_are_packed_as_stated_and_come_back_bit_for_bit(scheme):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(5, 37, generator=gen)  # 37 columns: the last group is padded for every group size here
    q = quantize(w, scheme)
    packed = ex.pack_codes(q)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(5 * 37 * scheme.bits / 8)
    assert np.array_equal(packed.numpy(), _numpy_pack(q.codes.reshape(5, -1)[:, :37].numpy(), scheme.bits,
                                                      scheme.symmetric))  # fmt: skip
    assert torch.equal(ex.unpack_codes(packed, scheme, (5, 37)), q.codes)


@pytest.mark.parametrize("model_id", TINY_IDS)
@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_quantized_export_round_trips(load, model_id, scheme):
    loaded, evalset, ref = _setup(load, model_id)
    kinds = ("attn_v", "mlp_down")
    outcome = qz.quantize_weights(loaded, kinds, scheme, evalset, ref)
    compression = ex.quantized(loaded, kinds, scheme)
    back = ex.read_export(ex.export_zip(compression, base=loaded, setting={}, quality={}))
    for mat in weight_matrices(loaded.model):
        if mat.kind not in kinds:
            continue
        expected = quantize(mat.weight, scheme)  # spectra's quantizer on the base weight
        got = back.compression.entries[mat.name]
        assert torch.equal(got.codes, expected.codes)
        assert torch.equal(got.scale, expected.scale) and torch.equal(got.offset, expected.offset)
    rebuilt = ex.factored_copy(loaded, back.compression)  # with_weights_replaced, as the page builds it
    assert comp.evaluate(loaded, rebuilt, evalset, ref).headline == outcome.after.headline
    dense = ex.load_compressed(ex.export_zip(compression, base=loaded, setting={}, quality={}), base=loaded)
    page_copy = qz.with_weights_replaced(
        loaded, {n: compression.dense_weight(n, torch.float32) for n in compression.entries}
    )
    changed = {m.name: m.weight for m in weight_matrices(dense.model) if m.kind in kinds}
    for name, weight in changed.items():
        module, _, part = name.partition(":")
        new = page_copy.get_submodule(module)
        W = new.parts["qkv".index(part)].W if part else new.W
        assert torch.equal(weight, W)  # the dense weights are the page copy's, bit for bit


def test_combined_and_healed_forms_round_trip(load, tmp_path):
    loaded, evalset, ref = _setup(load, "tiny-llama")
    fact, ranks = _lowrank(loaded, share=0.75)
    scheme = QuantScheme(8)
    fq_outcome = qz.quantize_factored_weights(loaded, fact, ranks, scheme, evalset, ref)
    back = ex.read_export(ex.export_zip(ex.quantized_factors(loaded, fact, ranks, scheme), base=loaded,
                                        setting={}, quality={}))  # fmt: skip
    assert comp.evaluate(loaded, ex.factored_copy(loaded, back.compression), evalset, ref).headline == (
        fq_outcome.after.headline
    )
    kinds = ("mlp_up",)
    split_scheme = QuantScheme(4, 32)
    rs_outcome = qz.residual_split_weights(loaded, kinds, split_scheme, evalset, ref, share=0.25)
    back = ex.read_export(ex.export_zip(ex.residual_split(loaded, kinds, split_scheme, share=0.25),
                                        base=loaded, setting={}, quality={}))  # fmt: skip
    assert comp.evaluate(loaded, ex.factored_copy(loaded, back.compression), evalset, ref).headline == (
        rs_outcome.after.headline
    )
    # A healed copy's factors are its own, the tied output's apart from the embedding's: all exported.
    from explorer.analysis import healing

    run, healed = healing.heal(loaded, fact, ranks, SAMPLE_TEXT * 8, evalset, ref, steps=5, lr=1e-3)
    compression = ex.from_factored_model(loaded, healed, "svd, healed")
    back = ex.read_export(ex.export_zip(compression, base=loaded, setting={}, quality={}))
    rebuilt = ex.factored_copy(loaded, back.compression)
    assert torch.equal(_outputs(loaded, rebuilt, evalset), _outputs(loaded, healed, evalset))
    assert comp.evaluate(loaded, rebuilt, evalset, ref).headline == run.after.headline


def test_the_app_loads_an_export_by_path(load, tmp_path):
    loaded = load("tiny-llama")
    fact, ranks = _lowrank(loaded)
    compression = ex.lowrank(loaded, fact, ranks)
    folder = ex.export_folder(tmp_path / "decision", compression, base=loaded, setting={}, quality={})
    zip_path = tmp_path / "decision.zip"
    zip_path.write_bytes(ex.export_zip(compression, base=loaded, setting={}, quality={}))
    for source in (folder, zip_path):
        opened = load_model(str(source), device="cpu")  # the sidebar's local-path loading
        assert opened.id == str(source.resolve())
        assert opened.card.n_layers == loaded.card.n_layers and opened.causal
        assert any("Compressed from 'tiny-llama'" in n for n in opened.notes)
        direct = ex.load_compressed(source, base=loaded)
        for a, b in zip(weight_matrices(opened.model), weight_matrices(direct.model), strict=True):
            assert torch.equal(a.weight, b.weight)
    with pytest.raises(ModelLoadError, match="only allows the catalogue"):
        load_model(str(folder), device="cpu", allow_external=False)


def _rewrite_manifest(zip_bytes: bytes, change) -> bytes:
    import io

    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        manifest = json.loads(archive.read(ex.MANIFEST))
        weights = archive.read(ex.WEIGHTS)
    change(manifest)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(ex.MANIFEST, json.dumps(manifest))
        archive.writestr(ex.WEIGHTS, weights)
    return out.getvalue()


def test_wrong_exports_are_refused_with_what_to_do(load):
    loaded = load("tiny-llama")
    good = ex.export_zip(ex.quantized(loaded, ("mlp_up",), INT8), base=loaded, setting={}, quality={})

    def bump(m):
        m["format_version"] = ex.FORMAT_VERSION + 1

    def fingerprint(m):
        m["base"]["fingerprint"] = "0" * 32

    def other_base(m):
        m["base"]["id"] = "tiny-gpt2"

    def missing_matrix(m):
        m["matrices"]["model.layers.0.mlp.up_proj"]["shape"] = [1, 1]

    cases = [
        (bump, "format version"),
        (fingerprint, "export the decision again"),
        (other_base, "not from 'tiny-llama'"),
        (missing_matrix, "Export it again"),
    ]
    for change, words in cases:
        with pytest.raises(ModelLoadError, match=words):
            ex.load_compressed(_rewrite_manifest(good, change), base=loaded)
    # The fingerprint also catches a base loaded in another dtype or with other weights.
    with pytest.raises(ModelLoadError, match="Load the base in float32"):
        ex.load_compressed(good, base=_float64_twin(loaded))
    with pytest.raises(ModelLoadError, match="not a readable .zip"):
        ex.load_compressed(b"not a zip", base=loaded)
    with pytest.raises(ModelLoadError, match="damaged"):
        ex.load_compressed(_corrupt_weights(good), base=loaded)
    with pytest.raises(ExplorerError, match="dense replaced weight"):
        ex.from_factored_model(loaded, _dense_copy(loaded), "x")


def _dense_copy(loaded):
    name = next(m.name for m in weight_matrices(loaded.model) if m.kind == "mlp_up")
    return qz.with_weights_replaced(loaded, {name: torch.zeros_like(loaded.model.get_submodule(name).weight)})


def _corrupt_weights(zip_bytes: bytes) -> bytes:
    import io

    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        manifest, weights = archive.read(ex.MANIFEST), archive.read(ex.WEIGHTS)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(ex.MANIFEST, manifest)
        archive.writestr(ex.WEIGHTS, weights[:20])
    return out.getvalue()


# ------------------------------------------------------------------------------------------ decision report


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.text = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.srcs.append(dict(attrs).get("src"))

    def handle_data(self, data):
        self.text.append(data)


def _decision_inputs():
    rows = [
        {"method": "svdllm", "bytes": 123456789, "perplexity": 12.3456789, "kl": 0.0123},
        {"method": "int4-g32", "bytes": 98765432, "perplexity": 13.5, "kl": None},
    ]
    fig = go.Figure(
        go.Scatter(x=[r["bytes"] for r in rows], y=[r["perplexity"] for r in rows], name="points")
    )
    quality = {
        "passage": "held-out passage",
        "tokens": 256,
        "metrics": {
            "perplexity": {"original": 11.0, "compressed": 12.3456789, "definition": "exp(mean NLL)"}
        },
    }
    return fig, rows, quality


def test_decision_html_is_standalone_and_holds_the_numbers():
    fig, rows, quality = _decision_inputs()
    page = decision.decision_html(fig, rows, title="Decision <SmolLM2>", setting={"method": "svdllm",
                                  "groups": ["mlp_up"]}, quality=quality)  # fmt: skip
    parser = _Scripts()
    parser.feed(page)
    assert all(src is None for src in parser.srcs)  # plotly.js inlined, nothing fetched
    assert parser.srcs  # the inlined plotly.js and the chart's own script
    assert "Decision &lt;SmolLM2&gt;" in page
    text = " ".join(parser.text)
    for value in ("12.3457", "123456789", "98765432", "0.0123", "exp(mean NLL)", "held-out passage", "256"):
        assert value in text, value
    # the chart's data is the rows' data
    assert "[123456789,98765432]" in page.replace(" ", "")


def test_decision_csv_has_the_same_rows():
    import csv
    import io

    _fig, rows, _quality = _decision_inputs()
    parsed = list(csv.DictReader(io.StringIO(decision.decision_csv(rows))))
    assert [r["method"] for r in parsed] == ["svdllm", "int4-g32"]
    # 6 significant digits: off by at most half a unit of the 6th
    assert float(parsed[0]["perplexity"]) == pytest.approx(12.3456789, rel=5e-6)
    assert parsed[1]["kl"] == ""


def test_quality_record_leaves_timing_out_for_rounded_weights(load):
    """Rounded weights run de-quantized in floats: their wall-clock time is not a latency, so the record of a
    fewer-bits decision has no latency_ms (the page says 'not measured' beside it); low rank keeps it."""
    loaded, evalset, ref = _setup(load, "tiny-llama")
    timed = ex.quality_record(ref.quality, ref.quality, evalset, SAMPLE_TEXT, "sample")
    untimed = ex.quality_record(ref.quality, ref.quality, evalset, SAMPLE_TEXT, "sample", timed=False)
    assert "latency_ms" in timed["metrics"] and "latency_ms" not in untimed["metrics"]
    assert {k: v for k, v in timed["metrics"].items() if k != "latency_ms"} == untimed["metrics"]
