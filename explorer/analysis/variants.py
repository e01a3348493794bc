"""Variants of the loaded model (model B of a comparison), each named by a short key that fits in a link.

Keys (``parse_key`` reads them, ``str(VariantKey)`` writes the canonical form back; both ways round-trip):

- fewer bits: ``int8``, ``int4`` (one group per row), ``int4-g32`` (4-bit groups of 32 input columns,
  symmetric), ``int4-g32-asym`` (with an offset per group); the short forms ``q8``, ``q4g32``, ``q4g32a`` are
  read too. Every matrix inside the blocks (attention and MLP) is rounded to nearest and de-quantized
  (explorer.spectra.quantization); embeddings and the output layer stay as they are.
- low rank: ``rank:0.5`` (each MLP matrix keeps floor(0.5 * mn/(m+n)) singular directions, i.e. half its
  break-even rank, plain SVD), ``rank:0.5:svdllm`` (method: one of explorer.analysis.lowrank.METHODS,
  calibrated on the shipped calibration text), ``rank:0.5:svdllm+int8`` (the two factors then quantized).
- LoRA: ``lora:r8:s50`` (peft adapters of rank 8 on W_q and W_v, 50 Adam steps at lr 1e-3 on the current
  text; encoders: the contrastive loss on the shipped sentence pairs), ``lora:r8:s50:cal`` (on the shipped
  calibration text). The adapters train on a frozen copy whose parameters share the cached model's storage
  (explorer.analysis.lora.frozen_copy): nothing of the cached model is written.
- a folder: ``dir:/path/to/model`` (same architecture and matrix shapes, else refused with the first mismatch).

A built variant (``Variant``) holds the matrices that changed (name -> new (out, in) weight) and the module that
computes with them (a structural copy of the cached model, or the folder's own model). It is built through the
task layer (``VariantSpec``), with progress and Cancel, and never mutates the cached model.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from explorer import tasks
from explorer.analysis import compression, lowrank
from explorer.analysis.compression import RankSetting, choose_ranks, shipped_calibration_text, text_hash
from explorer.analysis.matrices import WeightMatrix, weight_matrices
from explorer.errors import ExplorerError, InputError
from explorer.models.loading import LoadedModel
from explorer.spectra.quantization import QuantScheme, fake_quantize, quantize_factors

BITS_KINDS = ("attn_q", "attn_k", "attn_v", "attn_o", "mlp_gate", "mlp_up", "mlp_down")
LORA_LR = 1e-3
LORA_SEED = 0
LORA_MAX_RANK = 256
LORA_MAX_STEPS = 500
KINDS = ("bits", "rank", "lora", "dir")
EXAMPLES = ("int8", "int4-g32", "int4-g32-asym", "rank:0.5", "rank:0.8:svdllm", "lora:r8:s50")

_BITS_LONG = re.compile(r"^int(\d)(?:-g(\d+))?(-asym)?$")
_BITS_SHORT = re.compile(r"^q(\d)(?:g(\d+))?(a)?$")
_LORA = re.compile(r"^lora:r(\d+):s(\d+)(:cal)?$")

_HELP = (
    "Variant keys: int8, int4-g32 (4-bit, groups of 32), int4-g32-asym (with offset), rank:0.5 (half the "
    "break-even rank, SVD), rank:0.8:svdllm, rank:0.5:svd+int8, lora:r8:s50 (LoRA rank 8, 50 steps on the "
    "text; add :cal for the calibration text), dir:/path/to/model."
)


@dataclass(frozen=True)
class VariantKey:
    """A parsed variant key. kind: one of KINDS. scheme: the bits' QuantScheme (bits; rank with +bits).
    share: kept share of each matrix's break-even rank (rank). method: lowrank method (rank). lora_rank,
    steps: LoRA rank r and Adam steps; on_calibration: train on the shipped calibration text instead of the
    current text. path: the folder (dir)."""

    kind: str
    scheme: QuantScheme | None = None
    share: float = 0.0
    method: str = "svd"
    lora_rank: int = 0
    steps: int = 0
    on_calibration: bool = False
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "bits":
            return self.scheme.name
        if self.kind == "rank":
            text = f"rank:{self.share:g}" + ("" if self.method == "svd" else f":{self.method}")
            return text + ("" if self.scheme is None else f"+{self.scheme.name}")
        if self.kind == "lora":
            return f"lora:r{self.lora_rank}:s{self.steps}" + (":cal" if self.on_calibration else "")
        return f"dir:{self.path}"

    @property
    def uses_text(self) -> bool:
        """The variant depends on the current text (a LoRA fine-tune on it)."""
        return self.kind == "lora" and not self.on_calibration

    def describe(self) -> str:
        """One phrase for the page, e.g. "4-bit, groups of 32, symmetric, attention and MLP matrices"."""
        if self.kind == "bits":
            return f"{_scheme_phrase(self.scheme)}, every attention and MLP matrix (round to nearest)"
        if self.kind == "rank":
            label = lowrank.METHOD_LABELS.get(self.method, self.method)
            extra = "" if self.scheme is None else f", both factors in {_scheme_phrase(self.scheme)}"
            return (
                f"{label} low rank, each MLP matrix keeping {self.share:.0%} of its break-even rank "
                f"mn/(m+n){extra}"
            )
        if self.kind == "lora":
            data = "the shipped calibration text" if self.on_calibration else "the current text"
            return (
                f"LoRA of rank {self.lora_rank} on W_q and W_v (peft), {self.steps} Adam steps at lr "
                f"{LORA_LR:g} on {data}"
            )
        return f"the model in {self.path}"


def _scheme_phrase(scheme: QuantScheme) -> str:
    group = "one group per row" if scheme.group_size is None else f"groups of {scheme.group_size}"
    return f"{scheme.bits}-bit, {group}, " + ("symmetric" if scheme.symmetric else "with offset")


def _scheme(bits: str, group: str | None, asym: bool, key: str) -> QuantScheme:
    try:
        return QuantScheme(int(bits), None if group is None else int(group), not asym)
    except ValueError as err:
        raise InputError(f"Variant '{key}': {err}. {_HELP}") from None


def parse_key(key: str) -> VariantKey:
    """The variant a key names (see the module docstring); InputError saying which keys exist otherwise."""
    key = (key or "").strip()
    if not key:
        raise InputError(f"No variant given. {_HELP}")
    low = key.lower()
    for pattern in (_BITS_LONG, _BITS_SHORT):
        match = pattern.match(low)
        if match:
            return VariantKey("bits", scheme=_scheme(*match.groups()[:2], bool(match.group(3)), key))
    if low.startswith("rank:"):
        return _parse_rank(key, low[len("rank:") :])
    match = _LORA.match(low)
    if match:
        rank, steps = int(match.group(1)), int(match.group(2))
        if not 1 <= rank <= LORA_MAX_RANK or not 1 <= steps <= LORA_MAX_STEPS:
            raise InputError(
                f"Variant '{key}': LoRA rank must be 1-{LORA_MAX_RANK} and steps 1-{LORA_MAX_STEPS}. {_HELP}"
            )
        return VariantKey("lora", lora_rank=rank, steps=steps, on_calibration=bool(match.group(3)))
    if low.startswith("dir:"):
        path = key[len("dir:") :].strip()
        if not path:
            raise InputError(f"Variant '{key}' names no folder. {_HELP}")
        return VariantKey("dir", path=path)
    raise InputError(f"Unknown variant '{key}'. {_HELP}")


def _parse_rank(key: str, rest: str) -> VariantKey:
    body, _, bits = rest.partition("+")
    parts = body.split(":")
    try:
        share = float(parts[0])
    except ValueError:
        raise InputError(f"Variant '{key}': '{parts[0]}' is not a share between 0 and 1. {_HELP}") from None
    if not (0 < share <= 1) or len(parts) > 2:
        raise InputError(f"Variant '{key}': the kept share must be in (0, 1]. {_HELP}")
    method = parts[1] if len(parts) == 2 else "svd"
    if method not in lowrank.METHODS:
        raise InputError(
            f"Variant '{key}': unknown method '{method}'; choose one of {', '.join(lowrank.METHODS)}."
        )
    scheme = None
    if bits:
        match = _BITS_LONG.match(bits) or _BITS_SHORT.match(bits)
        if not match:
            raise InputError(f"Variant '{key}': '{bits}' is not a bit width such as int8 or int4-g32.")
        scheme = _scheme(*match.groups()[:2], bool(match.group(3)), key)
    return VariantKey("rank", scheme=scheme, share=share, method=method)


def canonical(key: str) -> str:
    """The canonical spelling of a key (``q4g32`` -> ``int4-g32``); InputError for a bad key."""
    return str(parse_key(key))


# --------------------------------------------------------------------------------------------- result


@dataclass(eq=False)
class Variant:
    """A built variant. key: canonical key. description: one phrase. replaced: matrix name (as in
    ``weight_matrices``) -> its new (out, in) weight, for every matrix that may differ (CPU or the model's
    device, the model's dtype). module: the model B computes with (eval mode; shares every unchanged tensor with
    the cached model, or is the folder's own model). losses: (steps + 1,) loss in nats before each LoRA step
    and after the last (LoRA only, else None). notes: sentences for the page."""

    key: str
    description: str
    replaced: dict[str, torch.Tensor]
    module: torch.nn.Module
    losses: np.ndarray | None = None
    notes: tuple[str, ...] = ()
    # Per-variant results that cost a pass over every weight (B's fingerprint, the relative changes): a page
    # rerun reads them from here instead of redoing the pass.
    memo: dict = dataclasses.field(default_factory=dict, repr=False)

    def matrices(self, original: torch.nn.Module) -> list[WeightMatrix]:
        """B's weight matrices in ``weight_matrices(original)`` order (the unchanged ones are A's own views)."""
        return [
            dataclasses.replace(m, weight=self.replaced[m.name]) if m.name in self.replaced else m
            for m in weight_matrices(original)
        ]

    def loaded(self, original: LoadedModel) -> LoadedModel:
        """A LoadedModel that computes with B (tokenizer, card and anatomy of A): for generation."""
        return dataclasses.replace(original, model=self.module)


@dataclass(frozen=True)
class VariantSpec(tasks.Spec):
    """The task of building one variant: it depends on model A's weights (fingerprint), the device, the
    canonical key, and the text's hash when the key trains on the current text ("" otherwise)."""

    KIND: ClassVar[str] = "variant"
    VERSION: ClassVar[int] = 1
    KEEP: ClassVar[bool] = False  # modules and tensors: rebuilt after a restart, never written to disk
    RESULT: ClassVar[Any] = Variant
    MAX_FINISHED: ClassVar[int] = 2  # each holds a changed copy of many matrices
    fingerprint: str
    key: str
    text_hash: str = ""
    device: str = "cpu"

    @property
    def label(self) -> str:
        return f"variant {self.key}"


def variant_spec(fingerprint: str, key: str, text: str, device: str = "cpu") -> VariantSpec:
    """The one way to name a variant's task (InputError for a bad key)."""
    parsed = parse_key(key)
    return VariantSpec(fingerprint, str(parsed), text_hash(text) if parsed.uses_text else "", str(device))


def variant_work(loaded: LoadedModel, spec: VariantSpec, text: str):
    """The work function building ``spec``'s variant of ``loaded`` (for tasks.get / tasks.run)."""

    def work(task: tasks.Task) -> Variant:
        return build_variant(loaded, spec.key, text, progress=task.report)

    return work


def with_weights_replaced(loaded: LoadedModel, replaced: dict[str, torch.Tensor]) -> torch.nn.Module:
    """quantize.with_weights_replaced (imported here: quantize pulls in the whole compression module)."""
    from explorer.analysis.quantize import with_weights_replaced as replace_weights

    return replace_weights(loaded, replaced)


def build_variant(
    loaded: LoadedModel, key: str, text: str = "", progress: tasks.Progress | None = None
) -> Variant:
    """Build the variant ``key`` of ``loaded`` (only read). ``text``: what a LoRA key trains on."""
    parsed = parse_key(key)
    report = tasks.forward(progress, 0.0, 1.0)
    if parsed.kind == "bits":
        return _bits_variant(loaded, parsed, report)
    if parsed.kind == "rank":
        return _rank_variant(loaded, parsed, report)
    if parsed.kind == "lora":
        return _lora_variant(loaded, parsed, text, report)
    return _dir_variant(loaded, parsed, report)


@torch.no_grad()
def _bits_variant(loaded: LoadedModel, key: VariantKey, report: tasks.Progress) -> Variant:
    mats = [m for m in weight_matrices(loaded.model) if m.kind in BITS_KINDS]
    if not mats:
        raise InputError(f"{loaded.card.id} has no attention or MLP matrices to quantize.")
    replaced = {}
    for i, mat in enumerate(mats):
        report(i / len(mats), f"{key.scheme.name}: {mat.name}")
        replaced[mat.name] = fake_quantize(mat.weight.detach(), key.scheme)
    report(1.0, "Built")
    return Variant(str(key), key.describe(), replaced, with_weights_replaced(loaded, replaced))


@torch.no_grad()
def _rank_variant(loaded: LoadedModel, key: VariantKey, report: tasks.Progress) -> Variant:
    kinds = tuple(k for k in compression.DEFAULT_KINDS if k in compression.available_kinds(loaded.model))
    if not kinds:
        raise InputError(f"{loaded.card.id} has no MLP matrices to factor.")
    report(0.0, f"{key.method} factors of the MLP matrices (calibrated on the shipped text; kept on disk)")
    facts = compression.shipped_factorizations(loaded, kinds, methods=(key.method,))[key.method]
    ranks = choose_ranks(facts, RankSetting(mode="share", share=key.share))
    ref = next(loaded.model.parameters())
    replaced = {}
    for i, f in enumerate(facts.matrices):
        if f.name not in ranks:
            continue
        report(0.8 + 0.2 * i / len(facts.matrices), f"rank {ranks[f.name]}: {f.name}")
        if key.scheme is None:
            W = f.reconstruct(ranks[f.name])
        else:
            W = quantize_factors(*f.factors(ranks[f.name]), key.scheme).dequantize(torch.float32)
        replaced[f.name] = W.to(ref.device, ref.dtype)
    report(1.0, "Built")
    mean_rank = float(np.mean(list(ranks.values()))) if ranks else 0.0
    notes = (f"Mean rank kept {mean_rank:.1f} over {len(ranks)} matrices.",)
    return Variant(str(key), key.describe(), replaced, with_weights_replaced(loaded, replaced), notes=notes)


def _lora_variant(loaded: LoadedModel, key: VariantKey, text: str, report: tasks.Progress) -> Variant:
    # lora.finetune_lora measures the adapters and drops the copy; here the merged weights are needed, so this
    # shares only the training (lora.train_adapters: the same seed gives the same adapters and losses).
    from explorer.analysis.curvature import make_loss
    from explorer.analysis.lora import target_modules, train_adapters

    data = shipped_calibration_text() if key.on_calibration else text
    spec = make_loss(loaded, data)
    targets = target_modules(loaded.model)
    if not targets:
        raise InputError(f"{loaded.card.id} has no query/value projections for LoRA to adapt.")
    copy_, losses = train_adapters(
        loaded.model,
        targets,
        spec,
        rank=key.lora_rank,
        steps=key.steps,
        lr=LORA_LR,
        seed=LORA_SEED,
        report=report,
    )
    replaced = {}
    with torch.no_grad():
        report(key.steps / (key.steps + 1), "Merging W + B A")
        mats_by_module: dict[str, list[WeightMatrix]] = {}
        for m in weight_matrices(loaded.model):
            mats_by_module.setdefault(m.module, []).append(m)
        for name in targets:
            module = copy_.get_submodule(name)
            delta = module.get_delta_weight("default").detach()
            if getattr(module, "fan_in_fan_out", False):  # GPT-2's Conv1D stores (in, out)
                delta = delta.T
            parts = mats_by_module[name]
            sizes = [m.shape[0] for m in parts]  # a fused q/k/v stacks its parts along the output
            for mat, piece in zip(parts, torch.split(delta, sizes, dim=0), strict=True):
                replaced[mat.name] = (mat.weight.detach() + piece.to(mat.weight.dtype)).contiguous()
    report(1.0, "Built")
    notes = (f"Loss {losses[0]:.4f} → {losses[-1]:.4f} nats over {key.steps} steps ({spec.description})",)
    return Variant(
        str(key),
        key.describe(),
        replaced,
        with_weights_replaced(loaded, replaced),
        losses=np.array(losses),
        notes=notes,
    )


@torch.no_grad()
def _dir_variant(loaded: LoadedModel, key: VariantKey, report: tasks.Progress) -> Variant:
    from explorer.models.loading import load_model

    report(0.0, f"Loading {key.path}")
    try:
        other = load_model(key.path, device=loaded.device, dtype=loaded.dtype)
    except ExplorerError as err:
        raise InputError(f"Variant '{key}': {err}") from None
    if type(other.model) is not type(loaded.model):
        raise InputError(
            f"Variant '{key}': {key.path} is a {type(other.model).__name__}, the loaded model a "
            f"{type(loaded.model).__name__}. Compare models of the same architecture."
        )
    ours = weight_matrices(loaded.model)
    theirs = {m.name: m for m in weight_matrices(other.model)}
    for m in ours:
        match = theirs.get(m.name)
        if match is None or match.shape != m.shape:
            found = "missing" if match is None else f"{match.shape[0]}×{match.shape[1]}"
            raise InputError(
                f"Variant '{key}': matrix {m.name} is {m.shape[0]}×{m.shape[1]} in {loaded.card.id} but "
                f"{found} in {key.path}. Compare models of the same architecture and size."
            )
    if len(theirs) != len(ours):
        raise InputError(
            f"Variant '{key}': {key.path} has {len(theirs)} matrices, {loaded.card.id} {len(ours)}."
        )
    replaced = {m.name: theirs[m.name].weight for m in ours}
    report(1.0, "Loaded")
    return Variant(str(key), key.describe(), replaced, other.model.eval())


# ------------------------------------------------------------------------------------ what B changes


def variant_spectra_spec(loaded: LoadedModel, variant: Variant):
    """The WeightSpectraSpec of B's matrices (fingerprint of B's weights: a variant equal to A shares A's entry
    in the disk store, a different one gets its own)."""
    from explorer.analysis.weights import WeightSpectraSpec, model_fingerprint

    if "fingerprint" not in variant.memo:
        variant.memo["fingerprint"] = model_fingerprint(loaded.model, variant.matrices(loaded.model))
    return WeightSpectraSpec(variant.memo["fingerprint"])


def variant_spectra_work(loaded: LoadedModel, variant: Variant, spec, spectra_a=None):
    """The work computing B's weight spectra (explorer.analysis.weights.compute_weight_spectra, read-only).

    With ``spectra_a`` (A's WeightSpectra) only the matrices the variant replaces are decomposed and every other
    row is A's (each matrix's metrics depend on that matrix alone): int8 on SmolLM2 then skips the 49152 x 576
    embedding, a LoRA of W_q and W_v decomposes 60 of 211 matrices."""
    from explorer.analysis.weights import compute_weight_spectra

    def work(task: tasks.Task):
        mats = variant.matrices(loaded.model)
        if spectra_a is None or tuple(m.name for m in mats) != spectra_a.names:
            return compute_weight_spectra(
                loaded.model,
                device=loaded.device,
                progress=task.report,
                mats=mats,
                fingerprint=spec.fingerprint,
            )
        changed = [m for m in mats if m.name in variant.replaced]
        part = compute_weight_spectra(
            loaded.model,
            device=loaded.device,
            progress=task.report,
            mats=changed,
            fingerprint=spec.fingerprint,
        )
        return merged_spectra(spectra_a, part, spec.fingerprint)

    return work


def merged_spectra(base, part, fingerprint: str):
    """``base`` (a WeightSpectra) with the rows of ``part`` (a WeightSpectra of some of its matrices, by name)
    put in; fingerprint and timing are ``part``'s."""
    from explorer.analysis.weights import WeightSpectra

    where = {name: i for i, name in enumerate(part.names)}
    take = np.array([where.get(name, -1) for name in base.names])
    fields = {}
    for f in dataclasses.fields(WeightSpectra):
        value = getattr(base, f.name)
        if f.name == "sigma":
            value = tuple(part.sigma[j] if j >= 0 else s for s, j in zip(value, take, strict=True))
        elif (
            isinstance(value, np.ndarray)
            and value.shape[:1] == take.shape
            and f.name not in ("layers", "shapes")
        ):
            new = value.copy()
            new[take >= 0] = getattr(part, f.name)[take[take >= 0]]
            new.setflags(write=False)
            value = new
        fields[f.name] = value
    fields.update(fingerprint=fingerprint, seconds=part.seconds, from_cache=False)
    return WeightSpectra(**fields)


@torch.no_grad()
def relative_change(loaded: LoadedModel, variant: Variant) -> np.ndarray:
    """(matrix,) float64: ||W_B - W_A||_F / ||W_A||_F for every matrix in ``weight_matrices`` order (0 where
    the variant leaves the matrix as it is)."""
    if "relative_change" in variant.memo:
        return variant.memo["relative_change"]
    out = np.zeros(len(weight_matrices(loaded.model)))
    for i, m in enumerate(weight_matrices(loaded.model)):
        new = variant.replaced.get(m.name)
        if new is None:
            continue
        a = m.weight.detach().to("cpu", torch.float64)
        norm = float(torch.linalg.norm(a))
        out[i] = float(torch.linalg.norm(new.detach().to("cpu", torch.float64) - a)) / norm if norm else 0.0
    out.setflags(write=False)
    variant.memo["relative_change"] = out
    return out


def matrix_pair(loaded: LoadedModel, variant: Variant, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(W_A, W_B) of matrix ``name``, each (out, in) float64."""
    for m in weight_matrices(loaded.model):
        if m.name == name:
            a = m.weight.detach().to("cpu", torch.float64).numpy()
            b = variant.replaced.get(name, m.weight).detach().to("cpu", torch.float64).numpy()
            return a, b
    raise InputError(f"{loaded.card.id} has no matrix named {name}.")


@dataclass(frozen=True)
class OutputsSpec(tasks.Spec):
    """A's and B's outputs on one text: KL, top-1 agreement, perplexities and greedy continuations."""

    KIND: ClassVar[str] = "variant-outputs"
    MAX_FINISHED: ClassVar[int] = 4
    variant: VariantSpec
    text_hash: str
    max_tokens: int
    n_new: int = 0

    @property
    def label(self) -> str:
        return f"outputs of A and {self.variant.key}"


@dataclass(frozen=True)
class Outputs:
    """tokens: the compared token ids. causal: A and B are LMs (then ``tokens`` is an OutputComparison) else
    ``hidden`` (a HiddenComparison). continuation_a, continuation_b: greedy continuations ("" when none)."""

    n_tokens: int
    tokens: Any
    hidden: Any
    continuation_a: str
    continuation_b: str


@torch.no_grad()
def _forward(module: torch.nn.Module, ids: list[int], device: str, causal: bool) -> np.ndarray:
    """(token, vocab) logits of a causal LM, or (token, d_model) last hidden states, float64 on the CPU."""
    out = module(input_ids=torch.tensor([ids], device=device))
    value = out.logits if causal else out.last_hidden_state
    return value[0].to("cpu", torch.float64).numpy()


def compare_outputs_of(
    loaded: LoadedModel,
    variant: Variant,
    text: str,
    max_tokens: int | None,
    n_new: int = 0,
    progress: tasks.Progress | None = None,
) -> Outputs:
    """Run A (the cached model) and B on ``text`` (cut to ``max_tokens``) and compare (explorer.analysis.compare);
    for causal LMs also continue the text greedily by ``n_new`` tokens with each."""
    from explorer.analysis import compare
    from explorer.analysis.generation import GenerationSettings, continuation_text, generate
    from explorer.models.capture import tokenize

    report = tasks.forward(progress, 0.0, 1.0)
    ids, _n, _notes = tokenize(loaded, text, max_tokens)
    if len(ids) < 2:
        raise InputError("Comparing outputs needs at least two tokens: type a longer text.")
    report(0.0, "A on the text")
    a = _forward(loaded.model, ids, loaded.device, loaded.causal)
    report(0.25, "B on the text")
    b = _forward(variant.module, ids, loaded.device, loaded.causal)
    if not loaded.causal:
        return Outputs(len(ids), None, compare.compare_hidden(a, b), "", "")
    tokens = compare.compare_outputs(a, b, ids)
    continuations = ["", ""]
    if n_new > 0:
        settings = GenerationSettings(n_new=int(n_new))
        for i, who in enumerate((loaded, variant.loaded(loaded))):
            report(0.5 + 0.25 * i, f"Greedy continuation by {'AB'[i]}")
            gen = generate(who, np.asarray(ids, dtype=np.int64), settings)
            continuations[i] = continuation_text(loaded, gen)
    report(1.0, "Done")
    return Outputs(len(ids), tokens, None, *continuations)
