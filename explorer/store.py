"""The one disk store: every result worth keeping across a restart, in one schema-versioned layout, under one cap.

An entry is one safetensors file (no pickle): its arrays and tensors as safetensors tensors, everything else as
JSON in the file's metadata. It is named by one rule::

    $XDG_CACHE_HOME/eigen-explorer/store/<kind>/<kind>-s<LAYOUT_VERSION>-v<version>-<digest>.safetensors

``kind`` names what is stored (``weight-spectra``, ``budget-sweep``...), ``version`` is that kind's schema
version (bump it when what is measured or how it is laid out changes: old files then read as missing), and
``digest`` hashes the identity (a dict of plain values: everything the result depends on, the weights'
fingerprint, the text's digest, device, dtype and settings).

Values are frozen dataclasses, lists, tuples, dicts, numbers, strings, None, numpy arrays and torch tensors, nested
freely. Reading is guided by the declared result type (its type hints), so a file of another layout (a field
added, removed or of another type) reads as missing rather than as a wrong value. Arrays come back read-only:
a result is shared by every session.

Writes are atomic (a temporary name, then a rename: a reader sees a whole file or none). The whole cache
directory, this store and anything else under it (factors, texts kept for links), is held under one cap,
``EIGEN_EXPLORER_CACHE_MB`` megabytes (default 8192), least recently used first (a read refreshes a file's
time); the de-quantized model files (``models/``) are not counted: they make a model load in a second.
``EIGEN_EXPLORER_CACHE_MB=0`` keeps nothing on disk. ``make clean-cache`` removes the directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import threading
import types
import typing
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from explorer.paths import cache_dir

LAYOUT_VERSION = 1
CAP_ENV = "EIGEN_EXPLORER_CACHE_MB"
DEFAULT_CAP_MB = 8192
UNCOUNTED = ("models",)  # top-level folders of the cache dir outside the cap
SUFFIX = ".safetensors"
_CAP_LOCK = threading.Lock()


class LayoutError(ValueError):
    """A stored value does not fit the declared type: the entry reads as missing."""


# ------------------------------------------------------------------------------------------------ entries


def digest(identity: Any) -> str:
    """A stable hex digest of a plain value (dicts in key order; floats by their shortest exact repr)."""
    return hashlib.sha256(json.dumps(_plain(identity), sort_keys=True).encode()).hexdigest()[:32]


def _plain(value: Any) -> Any:
    """``value`` as JSON-able plain values, for identities (dataclasses as dicts, tuples as lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, frozenset | set) else items
    if isinstance(value, float):
        return repr(value) if not math.isfinite(value) else value
    if isinstance(value, np.generic):
        return _plain(value.item())
    if value is None or isinstance(value, bool | int | str):
        return value
    return repr(value)


@dataclass(frozen=True)
class Entry:
    """Where one result lives: ``kind`` and its schema ``version``, and the ``identity`` it depends on."""

    kind: str
    version: int
    identity: Any

    @property
    def path(self) -> Path:
        return (
            store_root()
            / self.kind
            / f"{self.kind}-s{LAYOUT_VERSION}-v{self.version}-{digest(self.identity)}{SUFFIX}"
        )


def store_root() -> Path:
    return cache_dir("store")


def cap_bytes() -> int:
    """The cap in bytes from EIGEN_EXPLORER_CACHE_MB (default DEFAULT_CAP_MB; 0 keeps nothing on disk)."""
    raw = os.environ.get(CAP_ENV, "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_CAP_MB
    except ValueError:
        mb = DEFAULT_CAP_MB
    if not math.isfinite(mb):  # "nan" or "inf" parse as floats but name no size
        mb = DEFAULT_CAP_MB
    return max(int(mb * 1024 * 1024), 0)


def enabled() -> bool:
    return cap_bytes() > 0


# ---------------------------------------------------------------------------------------------- read/write


def save(entry: Entry, value: Any) -> Path | None:
    """Write ``value`` for ``entry`` atomically, then hold the cache under its cap. None when the store is off
    or the disk refuses (a read-only or full cache dir costs the next visit a recomputation, nothing more)."""
    return write(entry.path, value, kind=entry.kind)


def load(entry: Entry, result_type: Any) -> Any | None:
    """The value stored for ``entry`` read as ``result_type``, or None (missing, unreadable, another layout)."""
    return read(entry.path, result_type)


def write(path: Path, value: Any, *, kind: str = "") -> Path | None:
    """``save`` at a path of the caller's naming (inside the cache dir, so the cap covers it)."""
    if not enabled():
        return None
    tensors: dict[str, np.ndarray] = {}
    tree = _encode(value, tensors)  # a value the store cannot keep is a programming error: it raises
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata={"json": json.dumps(tree), "kind": kind})
        os.replace(tmp, path)
    except (OSError, SafetensorError):  # safetensors reports a full or read-only disk as its own error
        try:
            tmp.unlink(missing_ok=True)  # a half-written temporary would sit outside the cap for good
        except OSError:
            pass
        return None
    enforce_cap(keep=path)
    return path


def read(path: Path, result_type: Any) -> Any | None:
    """``load`` from a path of the caller's naming."""
    if not enabled():
        return None
    try:
        with safe_open(str(path), "np") as handle:
            tree = json.loads(handle.metadata()["json"])
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (no iterator)
        value = _decode(tree, result_type, tensors)
    except (OSError, KeyError, ValueError, TypeError, AttributeError, json.JSONDecodeError, LayoutError):
        return None
    except Exception:  # safetensors' own errors (a truncated or foreign file) are not OSErrors
        return None
    try:
        os.utime(path)  # least recently used goes first
    except OSError:
        pass
    return value


def enforce_cap(*, keep: Path | None = None, root: Path | None = None) -> int:
    """Delete the least recently used files under the cache dir (model files aside) until it is within the cap;
    ``keep`` (the file just written) is never deleted. Returns the bytes left. Files that vanish meanwhile (another
    process evicting) are skipped."""
    root = root or cache_dir()
    cap = cap_bytes()
    with _CAP_LOCK:
        files = []
        for path in _counted_files(root):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= cap:
                break
            if keep is not None and path == keep:
                continue
            try:
                path.unlink()
                total -= size
            except OSError:
                continue
        return total


def cache_bytes(root: Path | None = None) -> int:
    """Bytes under the cache dir that count towards the cap."""
    total = 0
    for path in _counted_files(root or cache_dir()):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


def _counted_files(root: Path):
    for top in root.iterdir() if root.exists() else ():
        if top.name in UNCOUNTED:
            continue
        paths = [top] if top.is_file() else top.rglob("*")
        for path in paths:
            # Temporary files being written by someone are theirs until renamed.
            if path.is_file() and not (path.name.startswith(".") and path.name.endswith(".tmp")):
                yield path


# ---------------------------------------------------------------------------------------------- the codec

_TENSOR, _FLOAT, _COMPLEX, _ITEMS = "__tensor__", "__float__", "__complex__", "__items__"


def _encode(value: Any, tensors: dict[str, np.ndarray]) -> Any:
    """A JSON tree for ``value``, with its arrays moved into ``tensors`` (named by position)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name), tensors) for f in dataclasses.fields(value)}
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu()
        return _encode_array(
            array.numpy() if not array.is_complex() else array.resolve_conj().numpy(), tensors, "torch"
        )
    if isinstance(value, np.ndarray):
        return _encode_array(value, tensors, "numpy")
    if isinstance(value, np.generic):
        return _encode(value.item(), tensors)
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {_FLOAT: repr(value)}
    if isinstance(value, complex):
        return {_COMPLEX: [_encode(value.real, tensors), _encode(value.imag, tensors)]}
    if isinstance(value, list | tuple):
        return [_encode(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not any(k.startswith("__") for k in value):
            return {k: _encode(v, tensors) for k, v in value.items()}
        return {_ITEMS: [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    raise TypeError(f"the store cannot keep a {type(value).__name__}")


def _encode_array(array: np.ndarray, tensors: dict[str, np.ndarray], library: str) -> dict:
    name = str(len(tensors))
    record = {_TENSOR: name, "library": library, "dtype": str(array.dtype)}
    if array.dtype.kind in "US":  # strings: JSON, not tensors
        return {**record, _TENSOR: None, "strings": array.tolist(), "shape": list(array.shape)}
    if (
        array.dtype.kind == "c"
    ):  # complex: real and imaginary parts side by side (safetensors lacks complex128)
        array = np.stack([array.real, array.imag], axis=-1)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"the store cannot keep arrays of dtype {array.dtype}")
    tensors[name] = np.ascontiguousarray(array)
    return record


def _decode_array(record: dict, tensors: dict[str, np.ndarray]) -> Any:
    dtype = np.dtype(record["dtype"])
    if record[_TENSOR] is None:
        array = np.array(record["strings"], dtype=dtype).reshape(record["shape"])
    else:
        array = tensors[record[_TENSOR]]
        if dtype.kind == "c":
            array = (array[..., 0] + 1j * array[..., 1]).astype(dtype)
        elif array.dtype != dtype:
            raise LayoutError(f"stored {array.dtype}, declared {dtype}")
    if record.get("library") == "torch":
        return torch.from_numpy(np.array(array))  # a tensor of its own (writable, like any tensor)
    array = np.array(array)
    array.setflags(write=False)
    return array


def _decode(tree: Any, hint: Any, tensors: dict[str, np.ndarray]) -> Any:
    """``tree`` read as type ``hint`` (Any: as stored)."""
    if isinstance(tree, dict) and _TENSOR in tree:
        return _decode_array(tree, tensors)
    if isinstance(tree, dict) and _FLOAT in tree:
        return float(tree[_FLOAT])
    if isinstance(tree, dict) and _COMPLEX in tree:
        return complex(*(_decode(part, float, tensors) for part in tree[_COMPLEX]))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if tree is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _decode(tree, arg, tensors)
            except (LayoutError, TypeError, KeyError, ValueError):
                continue
        raise LayoutError(f"{tree!r:.80} fits none of {hint}")
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(tree, dict):
            raise LayoutError(f"{hint.__name__}: stored {type(tree).__name__}")
        hints = typing.get_type_hints(hint)
        fields = {f.name: f for f in dataclasses.fields(hint)}
        if set(tree) - set(fields):
            raise LayoutError(f"{hint.__name__} has no field(s) {sorted(set(tree) - set(fields))}")
        values, later = {}, {}
        for name, f in fields.items():
            if name not in tree:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise LayoutError(f"{hint.__name__}.{name} is missing")
                continue
            value = _decode(tree[name], hints.get(name, Any), tensors)
            (values if f.init else later)[name] = value
        obj = hint(**values)
        for name, value in later.items():  # init=False fields: set as stored (frozen: through object)
            object.__setattr__(obj, name, value)
        return obj
    if isinstance(tree, dict) and _ITEMS in tree:
        key_hint, value_hint = args if origin is dict and len(args) == 2 else (Any, Any)
        return {
            _freeze_key(_decode(k, key_hint, tensors)): _decode(v, value_hint, tensors)
            for k, v in tree[_ITEMS]
        }
    if origin is dict or hint is dict or (hint is Any and isinstance(tree, dict)):
        if not isinstance(tree, dict):
            raise LayoutError(f"expected a dict, stored {type(tree).__name__}")
        value_hint = args[1] if len(args) == 2 else Any
        return {k: _decode(v, value_hint, tensors) for k, v in tree.items()}
    if origin in (tuple, list) or hint in (tuple, list) or (hint is Any and isinstance(tree, list)):
        if not isinstance(tree, list):
            raise LayoutError(f"expected a sequence, stored {type(tree).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(tree):
                raise LayoutError(f"expected {len(args)} items, stored {len(tree)}")
            return tuple(_decode(v, a, tensors) for v, a in zip(tree, args, strict=True))
        item_hint = args[0] if args else Any
        items = [_decode(v, item_hint, tensors) for v in tree]
        return tuple(items) if (origin is tuple or hint is tuple or hint is Any) else items
    if hint in (np.ndarray, torch.Tensor) or typing.get_origin(hint) is np.ndarray:
        raise LayoutError(f"expected an array, stored {type(tree).__name__}")
    if hint is float:
        if isinstance(tree, bool) or not isinstance(tree, int | float):
            raise LayoutError(f"expected a number, stored {tree!r:.40}")
        return float(tree)
    if hint is int or hint is bool or hint is str:
        if type(tree) is not hint:
            raise LayoutError(f"expected {hint.__name__}, stored {type(tree).__name__}")
        return tree
    if hint is type(None):
        if tree is not None:
            raise LayoutError("expected None")
        return None
    return tree  # Any, a Literal, a NewType: as stored


def _freeze_key(key: Any) -> Any:
    return tuple(_freeze_key(k) for k in key) if isinstance(key, list) else key
