"""Export a compression decision as its compressed weights, and load it back on top of its base model.

What is written (a folder, or the same two files in one .zip):

- ``compressed.safetensors``: only the matrices the decision changed, in the form the page measured them:
  low-rank factors A (out, k) and B (k, in) in the dtype the measured copy computed with; integer codes with
  their fp16 scales (and fp16 offsets for grids with an offset), exactly the values
  explorer.spectra.quantization stores (its scales and offsets are fp16 values already); low-rank factors whose
  factors are quantized; the top singular directions (float64, as the split computes with them) plus a
  quantized residual. Keys are ``<matrix name>.<part>`` (matrix names as explorer.analysis.matrices names
  them, e.g. ``model.layers.3.mlp.up_proj`` or ``transformer.h.0.attn.c_attn:q``).
- ``eigen-explorer-export.json`` (explorer.models.loading.EXPORT_MANIFEST): format and version, the base
  model's id, dtype and weight fingerprint (explorer.analysis.weights.model_fingerprint), the setting (method,
  groups, rank per matrix, bits, group size, offset), the bytes stored, and the measured quality with how it was
  measured (passage, tokens, metric definitions).

Codes (PACKING): each integer code q becomes an unsigned u = q + 2^(bits-1) on a symmetric grid (q in
[-qmax, qmax]) and u = q with an offset (q in [0, 2^bits - 1]); the u of the real (out, in) entries (a group's
padding past ``in`` is not stored: its code is 0) are written row-major as a little-endian bit stream of
``bits`` bits each, in a uint8 tensor of ceil(out * in * bits / 8) bytes: int8 is one code per byte, 4-bit
two per byte, the first code in the low nibble. Scales and offsets are (out, groups) fp16.

So the stored tensors of a quantized matrix take exactly ``QuantScheme.nbytes`` bytes, the page's count, and
low-rank factors itemsize * k(m + n) bytes against the page's fp16 count 2 k(m + n) (equal for an fp16 model,
twice it for a float32 one: the factors are kept as they were measured).

Loading: ``load_compressed`` loads the base model through explorer.models.loading (or takes one already
loaded), checks its fingerprint against the manifest, and builds a new model: a structural copy that shares
every untouched tensor with that base and holds the changed matrices as dense weights (A B, or the de-quantized
codes) in ordinary modules, so every page can analyse it. ``factored_copy`` builds instead the modules the
compression page measured (A (B x) for factors), whose outputs equal the page's copy bit for bit.
"""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from transformers.pytorch_utils import Conv1D

from explorer.analysis import quantize as qz
from explorer.analysis import surgery
from explorer.analysis.compression import BYTES_PER_PARAM, EvalSet, Quality, modules_holding, text_hash
from explorer.analysis.lowrank import Factorization
from explorer.analysis.matrices import WeightMatrix, weight_matrices
from explorer.analysis.quality import METRICS, metrics_for
from explorer.analysis.weights import model_fingerprint
from explorer.errors import InputError, ModelLoadError
from explorer.models import loading
from explorer.models.anatomy import anatomy_of
from explorer.models.loading import EXPORT_MANIFEST, LoadedModel, load_model, make_card
from explorer.spectra.quantization import (
    FactorQuantization,
    Quantized,
    QuantScheme,
    SpectralSplit,
    quantize,
    quantize_factors,
    spectral_split,
)

FORMAT = "eigen-explorer-compressed"
FORMAT_VERSION = 1
MANIFEST = EXPORT_MANIFEST
WEIGHTS = "compressed.safetensors"
PACKING = (
    "codes as unsigned u = q + 2^(bits-1) on a symmetric grid, u = q with an offset; the real (out, in) "
    "entries row-major (group padding not stored), little-endian bit stream of `bits` bits per code in uint8 "
    "(int8: one per byte; 4-bit: two per byte, first code in the low nibble); scale and offset (out, groups) "
    "fp16"
)
# Metric definitions written with every measured quality (docs/ARCHITECTURE.md section 2).
METRIC_DEFINITIONS = {
    **{m.field: m.definition for m in METRICS.values()},
    "latency_ms": "wall-clock milliseconds of the forward pass that gave these numbers (varies run to run)",
}


# ------------------------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Factors:
    """Low-rank factors of one matrix: W ≈ A B with A (out, k) and B (k, in), CPU tensors in the dtype the
    compressed copy computes with."""

    A: torch.Tensor
    B: torch.Tensor

    @property
    def rank(self) -> int:
        return int(self.A.shape[1])


# A changed matrix as stored: factors, codes, quantized factors, or top directions plus a quantized residual.
STORED_FORMS = (Factors, Quantized, FactorQuantization, SpectralSplit)


@dataclass(frozen=True)
class Compression:
    """A compressed variant of a base model: ``entries`` maps each changed matrix (WeightMatrix.name) to its
    stored form (Factors, Quantized, FactorQuantization or SpectralSplit). ``method``: the page's name of it
    ("svdllm", "int4-g32-asym", "svdllm+int8", "svd-residual-int4-g32", "svdllm, healed"). ``tied_output``:
    a healed copy's own factors of an output layer tied to a factored embedding (healing trains the two
    modules' factors separately), else None."""

    method: str
    entries: Mapping[str, object]
    tied_output: Factors | None = None
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self):
        for name, entry in self.entries.items():
            if not isinstance(entry, STORED_FORMS):
                raise InputError(f"Cannot export '{name}': unknown stored form {type(entry).__name__}.")

    def dense_weight(self, name: str, dtype: torch.dtype) -> torch.Tensor:
        """(out, in): the matrix ``name`` as the compressed copy uses it, in ``dtype``; what quantize.py hands
        to ``with_weights_replaced`` for a quantized entry (so the bits match the page's copy)."""
        entry = self.entries[name]
        if isinstance(entry, Factors):
            return (entry.A.double() @ entry.B.double()).to(dtype)
        if isinstance(entry, FactorQuantization):
            return entry.dequantize(torch.float32).to(dtype)  # as quantize_factored_weights builds it
        return entry.dequantize(dtype)

    @property
    def factored(self) -> bool:
        """Every entry is a pair of plain factors (the copy computes A (B x))."""
        return all(isinstance(e, Factors) for e in self.entries.values())


def _mats(loaded: LoadedModel) -> dict[str, WeightMatrix]:
    return {m.name: m for m in weight_matrices(loaded.model)}


def _model_dtype(loaded: LoadedModel) -> torch.dtype:
    return next(loaded.model.parameters()).dtype


def lowrank(loaded: LoadedModel, factorization: Factorization, ranks: dict[str, int]) -> Compression:
    """The factors ``compressed_model(loaded, factorization, ranks)`` computes with (name -> k)."""
    dtype = _model_dtype(loaded)
    entries = {}
    for f in factorization.matrices:
        if f.name in ranks:
            A, B = f.factors(ranks[f.name])
            entries[f.name] = Factors(A.to("cpu", dtype).contiguous(), B.to("cpu", dtype).contiguous())
    if not entries:
        raise InputError("Nothing to export: no matrix is factored at these settings.")
    return Compression(factorization.method, entries)


def from_factored_model(loaded: LoadedModel, model: torch.nn.Module, method: str) -> Compression:
    """The factors a factored copy of ``loaded`` holds: ``compressed_model``'s copy, or the copy that healing
    returns (its factors are its own). Every other module must be the base's (shared weights); a copy whose
    matrices were replaced by dense de-quantized weights cannot be read back into codes: build those with
    ``quantized``, ``quantized_factors`` or ``residual_split``."""
    by_module = modules_holding(loaded.model)
    anatomy = loaded.anatomy
    entries: dict[str, Factors] = {}
    tied_output = None

    def factors_of(module) -> Factors:
        return Factors(_cpu(module.A), _cpu(module.B))

    for module_name, mats in by_module.items():
        new = model.get_submodule(module_name)
        if isinstance(new, (surgery.LowRankLinear, surgery.LowRankEmbedding)):
            entries[mats[0].name] = factors_of(new)
            if isinstance(new, surgery.LowRankEmbedding) and anatomy.tied_output is not None:
                out = model.get_submodule(anatomy.tied_output)
                if isinstance(out, surgery.LowRankLinear) and not (out.A is new.A and out.B is new.B):
                    if not (torch.equal(out.A, new.A) and torch.equal(out.B, new.B)):
                        tied_output = factors_of(out)
        elif isinstance(new, surgery.ConcatLinear):
            for mat, part in zip(mats, new.parts, strict=True):
                if isinstance(part, surgery.LowRankLinear):
                    entries[mat.name] = factors_of(part)
                elif not (
                    isinstance(part, surgery.DenseLinear)
                    and part.W is mat.weight
                    or _same(part.W, mat.weight)
                ):
                    raise InputError(_dense_refusal(mat.name))
        elif isinstance(new, surgery.DenseLinear):
            raise InputError(_dense_refusal(mats[0].name))
    if not entries:
        raise InputError("Nothing to export: this copy factors no matrix.")
    return Compression(method, entries, tied_output)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b))


def _dense_refusal(name: str) -> str:
    return (
        f"'{name}' holds a dense replaced weight, whose codes cannot be read back from it. Export a quantized "
        "setting with explorer.analysis.export.quantized (or quantized_factors / residual_split)."
    )


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous().clone()


def _chosen(loaded: LoadedModel, kinds: tuple[str, ...]) -> list[WeightMatrix]:
    mats = [m for m in weight_matrices(loaded.model) if m.kind in kinds]
    if not mats:
        raise InputError(f"The model has no matrices of the groups {', '.join(kinds)}.")
    return mats


@torch.no_grad()
def quantized(loaded: LoadedModel, kinds: tuple[str, ...], scheme: QuantScheme) -> Compression:
    """Every matrix of ``kinds`` quantized with ``scheme``: what ``quantize.quantize_weights`` measures."""
    entries = {m.name: _cpu_quantized(quantize(m.weight.detach(), scheme)) for m in _chosen(loaded, kinds)}
    return Compression(scheme.name, entries)


@torch.no_grad()
def quantized_factors(
    loaded: LoadedModel, factorization: Factorization, ranks: dict[str, int], scheme: QuantScheme
) -> Compression:
    """Low-rank factors with each factor quantized: what ``quantize.quantize_factored_weights`` measures."""
    entries = {}
    for f in factorization.matrices:
        if f.name in ranks:
            A, B = f.factors(ranks[f.name])
            fq = quantize_factors(A, B, scheme)
            entries[f.name] = FactorQuantization(_cpu_quantized(fq.U), _cpu_quantized(fq.B))
    if not entries:
        raise InputError("Nothing to export: no matrix is factored at these settings.")
    return Compression(f"{factorization.method}+{scheme.name}", entries)


@torch.no_grad()
def residual_split(
    loaded: LoadedModel,
    kinds: tuple[str, ...],
    scheme: QuantScheme,
    energy: float = qz.RESIDUAL_ENERGY,
    share: float | None = None,
) -> Compression:
    """Top singular directions at full precision plus a quantized residual, ranks chosen as
    ``quantize.residual_split_weights`` chooses them (``energy``, or ``share`` of the fp16 parameters)."""
    entries = {}
    for mat in _chosen(loaded, kinds):
        w = mat.weight.detach()
        split = spectral_split(w, qz.residual_rank(w, energy, share), scheme)
        entries[mat.name] = SpectralSplit(
            split.rank, _cpu(split.left), _cpu(split.right), _cpu_quantized(split.residual)
        )
    return Compression(f"svd-residual-{scheme.name}", entries)


def _cpu_quantized(q: Quantized) -> Quantized:
    return Quantized(q.scheme, _cpu(q.codes), _cpu(q.scale), _cpu(q.offset), q.shape)


# --------------------------------------------------------------------------------------- the copies


def factored_copy(loaded: LoadedModel, compression: Compression) -> torch.nn.Module:
    """The copy the compression page measured: factors as LowRankLinear / LowRankEmbedding (A (B x)), exactly as
    ``compression.compressed_model`` builds them; quantized forms through ``quantize.with_weights_replaced``.
    Shares every untouched tensor with ``loaded``, which is only read."""
    ref = next(loaded.model.parameters())
    if not compression.factored:
        return qz.with_weights_replaced(
            loaded, {n: compression.dense_weight(n, ref.dtype) for n in compression.entries}
        )
    model = loaded.model
    clone = surgery.structural_copy(model)
    dev = {"device": ref.device, "dtype": ref.dtype}

    def pair(f: Factors):
        return f.A.to(**dev), f.B.to(**dev)

    for module_name, mats in modules_holding(model, compression.entries).items():
        original = model.get_submodule(module_name)
        bias = getattr(original, "bias", None)
        if isinstance(original, torch.nn.Embedding):
            A, B = pair(compression.entries[mats[0].name])
            surgery.set_submodule(clone, module_name, surgery.LowRankEmbedding(A, B, original.padding_idx))
            tied = loaded.anatomy.tied_output
            if tied is not None:
                if compression.tied_output is not None:
                    A, B = pair(compression.tied_output)
                out_bias = getattr(model.get_submodule(tied), "bias", None)
                surgery.set_submodule(clone, tied, surgery.LowRankLinear(A, B, out_bias))
        elif len(mats) == 1:
            surgery.set_submodule(
                clone, module_name, surgery.LowRankLinear(*pair(compression.entries[mats[0].name]), bias)
            )
        else:  # GPT-2's fused c_attn: factored parts and untouched dense parts, concatenated
            parts = [
                surgery.LowRankLinear(*pair(compression.entries[m.name]), None)
                if m.name in compression.entries
                else surgery.DenseLinear(m.weight)
                for m in mats
            ]
            surgery.set_submodule(clone, module_name, surgery.ConcatLinear(parts, bias))
    return clone.eval()


@torch.no_grad()
def dense_copy(loaded: LoadedModel, compression: Compression) -> torch.nn.Module:
    """A copy with the same module types as ``loaded`` (so its anatomy, spectra and every page work on it)
    whose changed matrices are new dense parameters (``Compression.dense_weight``); every other tensor is
    shared with ``loaded``, which is only read. A tied output layer stays tied to a changed embedding (a healed
    copy's own output factors untie it)."""
    model = loaded.model
    clone = surgery.structural_copy(model)
    ref = next(model.parameters())
    for module_name, mats in modules_holding(model, compression.entries).items():
        target = clone.get_submodule(module_name)
        new = [
            compression.dense_weight(m.name, ref.dtype).to(ref.device)
            if m.name in compression.entries
            else m.weight
            for m in mats
        ]
        weight = torch.cat(new, dim=0) if len(new) > 1 else new[0]  # (out, in); fused parts stack on out
        if isinstance(target, Conv1D):
            weight = weight.T  # Conv1D stores (in, out)
        param = torch.nn.Parameter(weight.contiguous(), requires_grad=False)
        target.weight = param
        tied = loaded.anatomy.tied_output
        if isinstance(target, torch.nn.Embedding) and tied is not None:
            out = clone.get_submodule(tied)
            if compression.tied_output is None:
                out.weight = param
            else:
                w = compression.tied_output.A.double() @ compression.tied_output.B.double()
                out.weight = torch.nn.Parameter(w.to(ref.device, ref.dtype), requires_grad=False)
    return clone.eval()


# -------------------------------------------------------------------------------------------- storage


def pack_codes(q: Quantized) -> torch.Tensor:
    """The (out, in) codes of ``q`` as the PACKING bit stream: uint8, ceil(out * in * bits / 8) bytes."""
    m, n = q.shape
    bits = q.scheme.bits
    shift = q.scheme.levels // 2 if q.scheme.symmetric else 0
    u = (q.codes.reshape(m, -1)[:, :n].to(torch.int32) + shift).reshape(-1).numpy().astype(np.uint8)
    if bits == 8:
        packed = u
    elif bits == 4:
        if u.size % 2:
            u = np.append(u, np.uint8(0))
        packed = u[0::2] | (u[1::2] << 4)
    else:
        planes = ((u[:, None] >> np.arange(bits, dtype=np.uint8)) & 1).astype(np.uint8)
        packed = np.packbits(planes.reshape(-1), bitorder="little")
    return torch.from_numpy(np.ascontiguousarray(packed))


def unpack_codes(packed: torch.Tensor, scheme: QuantScheme, shape: tuple[int, int]) -> torch.Tensor:
    """The inverse of ``pack_codes``: int16 codes (out, groups, g), zero past ``in`` (as ``quantize`` leaves
    a group's padding)."""
    m, n = shape
    count = m * n
    bits = scheme.bits
    raw = packed.numpy()
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size != math.ceil(count * bits / 8):
        raise ValueError(
            f"expected {math.ceil(count * bits / 8)} uint8 bytes of codes, got {tuple(packed.shape)}"
        )
    if bits == 8:
        u = raw
    elif bits == 4:
        u = np.empty(raw.size * 2, dtype=np.uint8)
        u[0::2], u[1::2] = raw & 0x0F, raw >> 4
        u = u[:count]
    else:
        planes = np.unpackbits(raw, bitorder="little", count=count * bits).reshape(count, bits)
        u = (planes.astype(np.uint16) << np.arange(bits, dtype=np.uint16)).sum(1)
    shift = scheme.levels // 2 if scheme.symmetric else 0
    codes = torch.from_numpy(u.astype(np.int16)).reshape(m, n) - shift
    g = n if scheme.group_size is None else scheme.group_size
    groups = math.ceil(n / g)
    full = torch.zeros(m, groups * g, dtype=torch.int16)
    full[:, :n] = codes
    return full.reshape(m, groups, g)


def _fp16_exact(x: torch.Tensor, what: str) -> torch.Tensor:
    half = x.to(torch.float16)
    if not torch.equal(half.to(x.dtype), x):
        raise InputError(f"{what} is not an fp16 value; it cannot be stored as the quantizer defines it.")
    return half


def _quantized_tensors(prefix: str, q: Quantized) -> dict[str, torch.Tensor]:
    out = {
        f"{prefix}.codes": pack_codes(q),
        f"{prefix}.scale": _fp16_exact(q.scale[..., 0], prefix + " scale"),
    }
    if not q.scheme.symmetric:
        out[f"{prefix}.offset"] = _fp16_exact(q.offset[..., 0], prefix + " offset")
    return {k: v.contiguous() for k, v in out.items()}


def _scheme_record(s: QuantScheme) -> dict:
    return {"bits": s.bits, "group_size": s.group_size, "offset": not s.symmetric, "name": s.name}


def _tensors_and_records(compression: Compression, mats: dict[str, WeightMatrix]):
    tensors: dict[str, torch.Tensor] = {}
    records: dict[str, dict] = {}
    for name, entry in compression.entries.items():
        if name not in mats:
            raise InputError(f"The base model has no matrix '{name}'.")
        mat = mats[name]
        rec = {"kind": mat.kind, "layer": mat.layer, "shape": list(mat.shape)}
        if isinstance(entry, Factors):
            rec |= {"form": "lowrank", "rank": entry.rank, "dtype": str(entry.A.dtype).removeprefix("torch.")}
            tensors[f"{name}.A"], tensors[f"{name}.B"] = entry.A.contiguous(), entry.B.contiguous()
        elif isinstance(entry, Quantized):
            rec |= {"form": "quantized", "scheme": _scheme_record(entry.scheme)}
            tensors |= _quantized_tensors(name, entry)
        elif isinstance(entry, FactorQuantization):
            rec |= {
                "form": "quantized_factors",
                "rank": entry.U.shape[1],
                "scheme": _scheme_record(entry.U.scheme),
            }
            tensors |= _quantized_tensors(f"{name}.A", entry.U) | _quantized_tensors(f"{name}.B", entry.B)
        elif isinstance(entry, SpectralSplit):
            rec |= {"form": "residual", "rank": entry.rank, "scheme": _scheme_record(entry.residual.scheme)}
            tensors[f"{name}.left"], tensors[f"{name}.right"] = (
                entry.left.contiguous(),
                entry.right.contiguous(),
            )
            tensors |= _quantized_tensors(f"{name}.residual", entry.residual)
        else:
            raise InputError(f"Cannot export '{name}': unknown stored form {type(entry).__name__}.")
        records[name] = rec
    return tensors, records


def page_bytes(compression: Compression) -> int:
    """The changed matrices' storage as the page counts it: factors at fp16 (2 k(m + n)), codes with their
    fp16 scales and offsets (``QuantScheme.nbytes``), top directions at fp16 plus the quantized residual."""
    total = 0
    for entry in compression.entries.values():
        if isinstance(entry, Factors):
            total += BYTES_PER_PARAM * (entry.A.numel() + entry.B.numel())
        elif isinstance(entry, (Quantized, FactorQuantization, SpectralSplit)):
            total += entry.nbytes
    if compression.tied_output is not None:
        total += BYTES_PER_PARAM * (compression.tied_output.A.numel() + compression.tied_output.B.numel())
    return int(total)


# ----------------------------------------------------------------------------------------- quality record


def quality_record(
    before: Quality,
    after: Quality,
    evalset: EvalSet,
    passage: str,
    passage_name: str,
    *,
    timed: bool = True,
) -> dict:
    """How the decision was measured, for the manifest and the decision report: the passage (name, SHA-256
    prefix, characters), tokens, items embedded (encoders), each metric of the original and the compressed
    model with its definition. ``timed`` False leaves the forward pass's wall-clock time out: rounded weights
    run de-quantized in floats here, so their timing says nothing about a 4- or 8-bit kernel (the page says so
    too)."""
    names = tuple(m.field for m in metrics_for(after.causal))
    metrics = {
        n: {
            "original": getattr(before, n),
            "compressed": getattr(after, n),
            "definition": METRIC_DEFINITIONS[n],
        }
        for n in (*names, *(("latency_ms",) if timed else ()))
    }
    record = {
        "passage": passage_name,
        "passage_sha256_16": text_hash(passage),
        "passage_chars": len(passage),
        "tokens": evalset.n_tokens,
        "causal": after.causal,
        "metrics": metrics,
    }
    if not after.causal:
        record["items"] = evalset.items
    return record


# ------------------------------------------------------------------------------------------------ writing


def _manifest(
    compression: Compression, base: LoadedModel, setting: dict, quality: dict, records, nbytes
) -> dict:
    scheme = next((r["scheme"] for r in records.values() if "scheme" in r), None)
    derived = {
        "method": compression.method,
        "groups": list(dict.fromkeys(r["kind"] for r in records.values())),
        "ranks": {n: r["rank"] for n, r in records.items() if "rank" in r},
        "bits": None if scheme is None else scheme["bits"],
        "group_size": None if scheme is None else scheme["group_size"],
        "offset": None if scheme is None else scheme["offset"],
    }
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "base": {
            "id": base.id,
            "fingerprint": model_fingerprint(base.model),
            "dtype": base.dtype,
            "n_params": base.card.n_params,
            "architecture": base.card.architecture,
        },
        "setting": {**_jsonable(setting), **derived},
        "matrices": records,
        "tied_output": None
        if compression.tied_output is None
        else {"module": base.anatomy.tied_output, "rank": compression.tied_output.rank},
        "packing": PACKING,
        "storage": {
            "tensor_bytes": nbytes,
            "page_bytes": page_bytes(compression),
            "relation": "tensor_bytes = page_bytes for codes, scales and offsets; factors are stored in the "
            "dtype they were measured in, itemsize/2 times the page's fp16 count (top directions: float64, 4x)",
        },
        "quality": _jsonable(quality),
        "notes": list(compression.notes),
    }
    return manifest


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def export_files(
    compression: Compression, *, base: LoadedModel, setting: dict, quality: dict
) -> dict[str, bytes]:
    """{file name: bytes} of an export (MANIFEST and WEIGHTS); see the module docstring for what they hold."""
    tensors, records = _tensors_and_records(compression, _mats(base))
    if compression.tied_output is not None:
        tensors[f"{base.anatomy.tied_output}.A"] = compression.tied_output.A.contiguous()
        tensors[f"{base.anatomy.tied_output}.B"] = compression.tied_output.B.contiguous()
    nbytes = int(sum(t.numel() * t.element_size() for t in tensors.values()))
    weights = save_safetensors_bytes(
        tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)}
    )
    manifest = _manifest(compression, base, setting, quality, records, nbytes)
    manifest["storage"]["weights_file_bytes"] = len(weights)
    text = json.dumps(manifest, indent=2, allow_nan=False)
    return {MANIFEST: text.encode("utf-8"), WEIGHTS: weights}


def export_folder(
    folder: str | Path, compression: Compression, *, base: LoadedModel, setting: dict, quality: dict
) -> Path:
    """Write the export into ``folder`` (created; existing export files replaced); return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in export_files(compression, base=base, setting=setting, quality=quality).items():
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(folder / name)
    return folder


def export_zip(compression: Compression, *, base: LoadedModel, setting: dict, quality: dict) -> bytes:
    """The export as the bytes of one .zip (stored, not deflated: codes and factors do not shrink), for a
    download button."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in export_files(compression, base=base, setting=setting, quality=quality).items():
            archive.writestr(name, data)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Exported:
    """An export as read: its manifest (dict) and the Compression it stores."""

    manifest: dict
    compression: Compression
    source: str


def _read_files(source: str | Path | bytes) -> tuple[bytes, bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        return (*_read_zip(io.BytesIO(source), "the uploaded file"), "uploaded .zip")
    path = Path(source).expanduser()
    if path.is_dir():
        manifest, weights = path / MANIFEST, path / WEIGHTS
        for needed in (manifest, weights):
            if not needed.is_file():
                raise ModelLoadError(
                    f"'{path}' is not a complete exported decision: {needed.name} is missing. Export it again "
                    "from the compression page, or copy the whole folder."
                )
        return manifest.read_bytes(), weights.read_bytes(), str(path)
    if path.is_file():
        with open(path, "rb") as handle:
            return (*_read_zip(handle, f"'{path}'"), str(path))
    raise ModelLoadError(f"'{path}' does not exist: give the exported folder or its .zip.")


def _read_zip(handle, label: str) -> tuple[bytes, bytes]:
    try:
        with zipfile.ZipFile(handle) as archive:
            names = set(archive.namelist())
            if not {MANIFEST, WEIGHTS} <= names:
                raise ModelLoadError(
                    f"{label} is not an exported decision: it must hold {MANIFEST} and {WEIGHTS}. Download it "
                    "again from the compression page."
                )
            return archive.read(MANIFEST), archive.read(WEIGHTS)
    except zipfile.BadZipFile as err:
        raise ModelLoadError(f"{label} is not a readable .zip ({err}). Download it again.") from err


def _scheme_from(rec: dict, name: str) -> QuantScheme:
    try:
        s = rec["scheme"]
        return QuantScheme(
            int(s["bits"]), None if s["group_size"] is None else int(s["group_size"]), not s["offset"]
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ModelLoadError(
            f"The manifest's grid for '{name}' is unreadable ({err}). Export it again."
        ) from err


def _quantized_from(tensors: dict, prefix: str, scheme: QuantScheme, shape: tuple[int, int]) -> Quantized:
    m, n = shape
    groups = scheme.groups_per_row(n)
    codes = unpack_codes(tensors[f"{prefix}.codes"], scheme, shape)
    scale = tensors[f"{prefix}.scale"]
    if scale.dtype != torch.float16 or tuple(scale.shape) != (m, groups):
        raise ValueError(
            f"{prefix}.scale: expected fp16 ({m}, {groups}), got {scale.dtype} {tuple(scale.shape)}"
        )
    scale = scale.to(torch.float64)[..., None]
    if scheme.symmetric:
        offset = torch.zeros_like(scale)
    else:
        offset = tensors[f"{prefix}.offset"]
        if offset.dtype != torch.float16 or tuple(offset.shape) != (m, groups):
            raise ValueError(f"{prefix}.offset: expected fp16 ({m}, {groups})")
        offset = offset.to(torch.float64)[..., None]
    return Quantized(scheme, codes, scale, offset, (int(m), int(n)))


def _entry_from(tensors: dict, name: str, rec: dict):
    m, n = (int(x) for x in rec["shape"])
    form = rec.get("form")
    if form == "lowrank":
        A, B = tensors[f"{name}.A"], tensors[f"{name}.B"]
        if A.ndim != 2 or B.ndim != 2 or A.shape[0] != m or B.shape[1] != n or A.shape[1] != B.shape[0]:
            raise ValueError(
                f"{name}: factors of shapes {tuple(A.shape)} and {tuple(B.shape)} for ({m}, {n})"
            )
        return Factors(A, B)
    scheme = _scheme_from(rec, name)
    if form == "quantized":
        return _quantized_from(tensors, name, scheme, (m, n))
    k = int(rec["rank"])
    if form == "quantized_factors":
        return FactorQuantization(
            _quantized_from(tensors, f"{name}.A", scheme, (m, k)),
            _quantized_from(tensors, f"{name}.B", scheme, (k, n)),
        )
    if form == "residual":
        left, right = tensors[f"{name}.left"], tensors[f"{name}.right"]
        if tuple(left.shape) != (m, k) or tuple(right.shape) != (k, n):
            raise ValueError(f"{name}: top directions of shapes {tuple(left.shape)}, {tuple(right.shape)}")
        return SpectralSplit(k, left, right, _quantized_from(tensors, f"{name}.residual", scheme, (m, n)))
    raise ValueError(f"{name}: unknown form {form!r}")


def read_export(source: str | Path | bytes) -> Exported:
    """Read and check an export (a folder, a .zip path, or a .zip's bytes). Raises ModelLoadError, saying
    what to do, for a file that is not an export, a newer or older format, or damaged contents."""
    manifest_bytes, weights_bytes, label = _read_files(source)
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"The manifest of {label} is not valid JSON ({err}). Export it again.") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelLoadError(f"{label} is not an eigen-explorer compression export (its manifest names no "
                             f"'{FORMAT}' format). Export the decision again from the compression page.")  # fmt: skip
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelLoadError(
            f"{label} was written in export format version {version}; this eigen-explorer reads version "
            f"{FORMAT_VERSION}. Open it with the eigen-explorer version that wrote it, or export it again here."
        )
    try:
        tensors = load_safetensors_bytes(weights_bytes)
    except Exception as err:  # safetensors raises its own error types for damaged headers
        raise ModelLoadError(f"The weights of {label} cannot be read ({str(err)[:200]}): the file is damaged or "
                             "incompletely copied. Download or copy it again.") from err  # fmt: skip
    try:
        records = manifest["matrices"]
        entries = {name: _entry_from(tensors, name, rec) for name, rec in records.items()}
        tied = manifest.get("tied_output")
        tied_factors = None
        if tied is not None:
            tied_factors = Factors(tensors[f"{tied['module']}.A"], tensors[f"{tied['module']}.B"])
        method = str(manifest["setting"]["method"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelLoadError(
            f"{label} does not hold what its manifest lists ({err}). Export it again."
        ) from err
    return Exported(manifest, Compression(method, entries, tied_factors), label)


def check_base(exported: Exported, base: LoadedModel) -> None:
    """Raise ModelLoadError unless ``base`` is the model the export was made from (id, dtype, fingerprint)."""
    want = exported.manifest.get("base", {})
    if base.id != want.get("id"):
        raise ModelLoadError(
            f"{exported.source} was exported from '{want.get('id')}', not from '{base.id}'. Load it on top of "
            f"'{want.get('id')}'."
        )
    if base.dtype != want.get("dtype"):
        raise ModelLoadError(
            f"{exported.source} was measured on '{want.get('id')}' in {want.get('dtype')}; this base is in "
            f"{base.dtype}. Load the base in {want.get('dtype')}."
        )
    fingerprint = model_fingerprint(base.model)
    if fingerprint != want.get("fingerprint"):
        raise ModelLoadError(
            f"The weights of '{base.id}' here (fingerprint {fingerprint}) are not the ones {exported.source} was "
            f"exported from (fingerprint {want.get('fingerprint')}): another version of the model package, or a "
            "changed folder. Install the version it was made with, or export the decision again from this one."
        )
    mats = _mats(base)
    for name, rec in exported.manifest["matrices"].items():
        if name not in mats or list(mats[name].shape) != list(rec["shape"]):
            raise ModelLoadError(
                f"'{base.id}' has no matrix '{name}' of shape {rec['shape']}. Export it again."
            )


def load_compressed(
    source: str | Path | bytes,
    *,
    device: str = "auto",
    dtype: str | None = None,
    base: LoadedModel | None = None,
) -> LoadedModel:
    """The exported decision as a new LoadedModel: the base (``base``, or loaded through
    explorer.models.loading in the dtype it was measured in) checked against the manifest, then
    ``dense_copy`` of it. Never writes to ``base``. ``dtype``: what the caller asked for; the export opens in
    the dtype it was measured in, and a note says so when they differ."""
    start = time.perf_counter()
    exported = read_export(source)
    want = exported.manifest["base"]
    if base is None:
        base = load_model(str(want["id"]), device=device, dtype=str(want["dtype"]))
    check_base(exported, base)
    model = dense_copy(base, exported.compression)
    name = exported.source
    notes = _notes(exported, dtype)
    return LoadedModel(
        id=name,
        model=model,
        tokenizer=base.tokenizer,
        card=make_card(name, model),
        anatomy=anatomy_of(model, base.anatomy.quantization),
        device=base.device,
        dtype=base.dtype,
        load_seconds=time.perf_counter() - start,
        notes=notes,
    )


def _notes(exported: Exported, dtype: str | None) -> list[str]:
    m = exported.manifest
    setting = m["setting"]
    notes = [
        f"Compressed from '{m['base']['id']}' ({setting['method']}): {len(m['matrices'])} matrices of the groups "
        f"{', '.join(setting['groups'])} replaced by what the export stores (dense here: A B, or the "
        "de-quantized codes)."
    ]
    quality = m.get("quality") or {}
    for metric, values in (quality.get("metrics") or {}).items():
        if metric != "latency_ms" and isinstance(values, dict) and values.get("compressed") is not None:
            notes.append(f"Measured {metric}: {values['compressed']:.6g} (original {values['original']:.6g}) on "
                         f"{quality.get('passage')}, {quality.get('tokens')} tokens.")  # fmt: skip
    if dtype is not None and dtype != m["base"]["dtype"]:
        notes.append(f"Opened in {m['base']['dtype']}, the dtype it was measured in (asked: {dtype}).")
    return notes


def _registered_loader(path: Path, *, device: str, dtype: str) -> LoadedModel:
    return load_compressed(path, device=device, dtype=dtype)


loading.register_export_loader(_registered_loader)
