"""A safetensors checkpoint read tensor by tensor, without building its model.

A checkpoint folder holds ``config.json`` and either one ``model.safetensors`` or shards listed by
``model.safetensors.index.json`` (what ``save_pretrained`` writes). ``Checkpoint.open(folder)`` reads the
headers only (names, shapes, dtypes); ``Checkpoint.stack`` reads the tensors a caller asks for, each file
opened with ``safetensors.safe_open`` for that call and closed after it, so what stays resident is the
requested tensors, never the model.

The matrices are those of the model loaded from the folder (``anatomy.checkpoint_slots``: same names,
layers, kinds, (out, in) orientation and order as ``matrix_slots``), and their values are the loaded
model's: each tensor is rounded to the loading dtype (float32 by default, as ``load_model``) before use.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from explorer.errors import ModelLoadError
from explorer.models.anatomy import MatrixSlot, checkpoint_slots

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
_FLOAT_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class CheckpointError(ModelLoadError):
    """The folder is not a safetensors checkpoint that can be read without loading its model."""


@dataclass(frozen=True)
class CheckpointMatrix:
    """One 2-D weight of a checkpoint, described by its header. name, layer, kind: as ``WeightMatrix``'s (the
    loaded model's). shape: (out, in). slot: where it is in its tensor (transposed for a Conv1D, one third of
    a fused q/k/v). key, file: the tensor's name and the file holding it. stored: its stored dtype ("F32", ...)."""

    name: str
    layer: int | None
    kind: str
    shape: tuple[int, int]
    slot: MatrixSlot
    key: str
    file: Path
    stored: str

    @property
    def n_params(self) -> int:
        return self.shape[0] * self.shape[1]


@dataclass(frozen=True)
class Checkpoint:
    """The headers of a safetensors checkpoint folder. folder: resolved path. files: its weight files.
    config: config.json as a dict. matrices: every 2-D weight (see ``CheckpointMatrix``). dtype: the dtype
    every tensor is rounded to when read (the loading dtype)."""

    folder: Path
    files: tuple[Path, ...]
    config: dict
    matrices: tuple[CheckpointMatrix, ...]
    dtype: torch.dtype = torch.float32

    @classmethod
    def open(cls, folder: str | Path, dtype: str | torch.dtype = "float32") -> Checkpoint:
        """Read ``folder``'s config and tensor headers (no tensor data). CheckpointError, saying what to do,
        when it is not a readable safetensors checkpoint."""
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            raise CheckpointError(
                f"'{folder}' is not a folder. Give the folder holding config.json and *.safetensors."
            )
        if isinstance(dtype, str):
            if dtype in ("", "auto"):
                dtype = "float32"
            if dtype not in _DTYPES:
                raise CheckpointError(f"Unknown dtype '{dtype}'; choose one of {list(_DTYPES)}.")
            dtype = _DTYPES[dtype]
        config_path = folder / "config.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"'{folder}' has no config.json: it is not a saved model folder.") from None
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{config_path} cannot be read as JSON ({err}).") from err
        files = _weight_files(folder)
        headers: dict[str, tuple[Path, tuple[int, ...], str]] = {}
        for path in files:
            try:
                with safe_open(path, framework="pt") as handle:
                    for key in handle.keys():
                        view = handle.get_slice(key)
                        headers[key] = (path, tuple(view.get_shape()), view.get_dtype())
            except Exception as err:  # safetensors raises its own error types for a damaged file
                raise CheckpointError(
                    f"{path.name} in '{folder}' is not a readable safetensors file ({err})."
                ) from err
        weights = {}
        for key, (path, shape, stored) in headers.items():
            if not key.endswith(".weight") or len(shape) != 2:
                continue
            if stored not in _FLOAT_DTYPES:
                raise CheckpointError(
                    f"'{key}' is stored as {stored}, not as floats: a quantized checkpoint cannot be read "
                    "without its model. Load the model instead (run the report with more sections than weights)."
                )
            weights[key.removesuffix(".weight")] = (key, path, shape, stored)
        slots = checkpoint_slots(weights, tied_output=_ties_output(folder, config))
        matrices = []
        for slot in slots:
            key, path, shape, stored = weights[slot.module]
            out, inn = (shape[1], shape[0]) if slot.transposed else shape
            matrices.append(
                CheckpointMatrix(
                    slot.name, slot.layer, slot.kind, (out // slot.n_parts, inn), slot, key, path, stored
                )
            )
        return cls(folder, files, config, tuple(matrices), dtype)

    @property
    def n_entries(self) -> int:
        """Total number of matrix entries (sizes the task layer's estimate)."""
        return sum(m.n_params for m in self.matrices)

    def fingerprint(self) -> str:
        """What a result read from these files depends on: config.json, every weight file's name, size,
        modification time and header (tensor names, dtypes, shapes, offsets), and the loading dtype. A file
        rewritten in place (a new training step) changes its time; a copied folder gets new times, so it is
        read again (never a stale result)."""
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(f"checkpoint:{self.dtype}".encode())
        digest.update((self.folder / "config.json").read_bytes())
        for path in self.files:
            stat = path.stat()
            digest.update(f"|{path.name}|{stat.st_size}|{stat.st_mtime_ns}|".encode())
            digest.update(_header_bytes(path))
        return "ckpt-" + digest.hexdigest()[:27]

    def stack(self, indices: list[int]) -> torch.Tensor:
        """(batch, out, in) float32 stack of matrices ``indices`` (all of one shape), each rounded to the
        loading dtype first, exactly the loaded model's values. Each file is opened for this call only."""
        mats = [self.matrices[i] for i in indices]
        shapes = {m.shape for m in mats}
        if len(shapes) != 1:
            raise ValueError(f"stack needs matrices of one shape, got {sorted(shapes)}")
        if len(mats) == 1:  # one matrix (the embedding, say): no second copy of it
            with safe_open(mats[0].file, framework="pt") as handle:
                return self._oriented(handle, mats[0]).to(torch.float32).unsqueeze(0)
        out = torch.empty((len(mats), *mats[0].shape), dtype=torch.float32)
        by_file: dict[Path, list[int]] = {}
        for row, m in enumerate(mats):
            by_file.setdefault(m.file, []).append(row)
        for path, rows in by_file.items():
            with safe_open(path, framework="pt") as handle:
                for row in rows:
                    out[row] = self._oriented(handle, mats[row])
        return out

    def read(self, index: int) -> torch.Tensor:
        """(out, in) float32 values of matrix ``index`` (see ``stack``)."""
        return self.stack([index])[0]

    def _oriented(self, handle, m: CheckpointMatrix) -> torch.Tensor:
        """Matrix ``m`` from an open file as (out, in), rounded to the loading dtype (a fused q/k/v part reads
        only its rows when stored (out, in), its columns when stored (in, out))."""
        slot = m.slot
        if slot.fused:
            view = handle.get_slice(m.key)
            rows, cols = view.get_shape()
            if slot.transposed:  # stored (in, 3 out): the part is a block of columns
                width = cols // slot.n_parts
                W = view[:, slot.part * width : (slot.part + 1) * width]
            else:
                height = rows // slot.n_parts
                W = view[slot.part * height : (slot.part + 1) * height]
        else:
            W = handle.get_tensor(m.key)
        W = W.to(self.dtype)
        return W.T if slot.transposed else W


def _weight_files(folder: Path) -> tuple[Path, ...]:
    """The folder's weight files: the shards its index lists, else model.safetensors, else its one
    *.safetensors file. CheckpointError for a missing shard or no (or several unindexed) files."""
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{index} is not a valid shard index ({err}).") from err
        files = tuple(folder / name for name in sorted(set(weight_map.values())))
        missing = [path.name for path in files if not path.is_file()]
        if missing:
            raise CheckpointError(
                f"'{folder}' lacks shard(s) {', '.join(missing)} listed in {INDEX_FILE}: copy the whole checkpoint."
            )
        return files
    if (folder / SINGLE_FILE).is_file():
        return (folder / SINGLE_FILE,)
    found = sorted(folder.glob("*.safetensors"))
    if len(found) == 1:
        return (found[0],)
    if not found:
        raise CheckpointError(
            f"'{folder}' has no *.safetensors weights: weights can only be streamed from safetensors. Load the "
            "model instead, or convert it with save_pretrained(safe_serialization=True)."
        )
    raise CheckpointError(
        f"'{folder}' has {len(found)} *.safetensors files but no {INDEX_FILE} saying which tensor is where."
    )


def _ties_output(folder: Path, config: dict) -> bool:
    """Whether the loader ties the output layer to the token embedding: the config class's reading of
    config.json (a key left out means the class's default, which save_pretrained omits), else the raw key."""
    from transformers import AutoConfig

    try:
        return bool(AutoConfig.from_pretrained(folder).tie_word_embeddings)
    except Exception:  # an unknown model_type: the raw key, with PretrainedConfig's default
        return bool(config.get("tie_word_embeddings", True))


def _header_bytes(path: Path) -> bytes:
    """The safetensors header of ``path``: 8-byte little-endian length, then that many bytes of JSON."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return handle.read(length)


def checkpoint_folder(model_id: str) -> Path | None:
    """The safetensors folder ``model_id`` loads from, when there is one to read without loading: a local
    folder, or an embedded model's folder (SmolLM2's de-quantized copy once it exists); None otherwise (hub
    ids, tiny models, folders without safetensors)."""
    from explorer.models.catalogue import CATALOGUE, classify
    from explorer.models.loading import dequantized_cache_path, embedded_model_dir

    try:
        kind = classify(model_id)
    except ValueError:
        return None
    if kind == "local":
        folder = Path(model_id.strip()).expanduser().resolve()
    elif kind == "embedded":
        spec = CATALOGUE[model_id]
        try:
            if spec.quantization is not None and not (dequantized_cache_path(spec) / "config.json").is_file():
                return None  # its copy is written by the first load
            folder = embedded_model_dir(spec)
        except ModelLoadError:
            return None
    else:
        return None
    has_weights = (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))
    return folder if has_weights else None
