"""Compression what-if: replace chosen weight groups by low-rank factors and measure what it costs.

The cached model is never modified. ``compressed_model`` builds a *structural* copy: ``copy.deepcopy`` with
every parameter and buffer pre-seeded in the memo, so the copy shares the original's tensors (no weight is
copied, nothing is written) and only its module tree is new; the chosen Linear / Conv1D / Embedding modules
of the copy are then swapped for factored modules that compute A_k (B_k x). The forward pass of the copy is
therefore the forward pass a deployed low-rank model would run, so its measured latency is meaningful.
Calibration hooks go on such a copy too, never on the cached model.

Quality (docs/ARCHITECTURE.md section 2): causal LM: perplexity on the text and mean KL(original || compressed) of the
next-token distributions (nats per token); encoder: mean cosine between original and compressed sentence
embeddings (mean pooling over the attention mask) over [the text] + the shipped sentence set, and the Spearman
correlation of the pairwise cosine similarities of the shipped sentences. Latency: wall-clock time of the one
forward pass that produces those numbers (milliseconds, on the model's device).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from transformers.pytorch_utils import Conv1D

from explorer import tasks
from explorer.analysis.factor_store import cached_factorize
from explorer.analysis.lowrank import (
    METHOD_LABELS,
    METHODS,
    ActivationStats,
    Factorization,
    MatrixFactors,
    factorize,
)
from explorer.analysis.matrices import weight_matrices
from explorer.analysis.quality import Budget, headline_metric, quality_values
from explorer.analysis.surgery import (
    ConcatLinear,
    DenseLinear,
    LowRankEmbedding,
    LowRankLinear,
    set_submodule,
    structural_copy,
    sync_device,
    tied_output_module,
)
from explorer.errors import InputError
from explorer.labels import LOWRANK_METHOD_LABELS, WEIGHT_KIND_LABELS
from explorer.models.capture import tokenize
from explorer.models.loading import LoadedModel
from explorer.paths import ASSETS_DIR
from explorer.spectra.allocation import greedy_allocation, largest_factored_rank
from explorer.spectra.ranks import energy_rank

GROUP_KINDS = ("attn_q", "attn_k", "attn_v", "attn_o", "mlp_gate", "mlp_up", "mlp_down", "embed")
GROUP_LABELS = {kind: WEIGHT_KIND_LABELS[kind] for kind in GROUP_KINDS}
DEFAULT_KINDS = ("mlp_gate", "mlp_up", "mlp_down")
MODES = ("rank", "energy", "share")
MODE_LABELS = {"rank": "Rank per group", "energy": "Energy kept", "share": "Share of parameters"}
ALLOCATIONS = ("uniform", "greedy")
ALLOCATION_LABELS = {
    "uniform": "Same share for every matrix",
    "greedy": "Allocated by least calibration output error",
}
# Shares of the compressed groups' parameters kept, gentle to aggressive: the report's sweep and budget search.
KEPT_SHARES = (0.95, 0.9, 0.8, 0.7, 0.5, 0.25)
# Storage of a parameter in the "bytes" figures: fp16.
BYTES_PER_PARAM = 2
# The budget's low-rank methods, best first (the likeliest answer arrives first), each with uniform and
# greedy-allocated ranks at every KEPT_SHARES: what the page's budget and the report's compression_budget weigh.
BUDGET_METHODS = ("svdllm", "asvd", "svd")
# Sweep points: each matrix at this share of its break-even rank mn/(m+n) (1.0 = break-even: nothing saved).
SWEEP_SHARES = (0.25, 0.5, 0.75, 1.0)
CALIBRATION_CHUNK_TOKENS = 256
CALIBRATION_FILE = ASSETS_DIR / "calibration" / "calibration.txt"
HELDOUT_FILE = ASSETS_DIR / "calibration" / "heldout.txt"
SENTENCES_FILE = ASSETS_DIR / "sentences" / "sentences.txt"


# ----------------------------------------------------------------------------------------------- assets


def shipped_calibration_text() -> str:
    """About 900 words of plain English (several topics, some dialogue and code), written for this app."""
    return CALIBRATION_FILE.read_text(encoding="utf-8").strip()


def heldout_text() -> str:
    """About 500 words of plain English never used for calibration: an honest evaluation passage."""
    return HELDOUT_FILE.read_text(encoding="utf-8").strip()


def sentence_set() -> tuple[str, ...]:
    """32 short sentences in topical groups (music, cooking, weather, ...), for the encoder similarity check."""
    lines = SENTENCES_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip())


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def available_kinds(model: torch.nn.Module) -> tuple[str, ...]:
    present = {m.kind for m in weight_matrices(model)}
    return tuple(k for k in GROUP_KINDS if k in present)


# ----------------------------------------------------------------------------------------- calibration


def calibration_chunks(loaded: LoadedModel, text: str, chunk_tokens: int = CALIBRATION_CHUNK_TOKENS):
    """Token-id lists of at most ``chunk_tokens`` (and the model's limit): paragraphs packed greedily."""
    limit = max(2, min(chunk_tokens, loaded.card.max_positions))
    chunks: list[list[int]] = []
    current: list[int] = []
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if not paragraph:
            continue
        ids = loaded.tokenizer(paragraph, add_special_tokens=True, verbose=False)["input_ids"]
        for start in range(0, len(ids), limit):
            piece = ids[start : start + limit]
            if current and len(current) + len(piece) > limit:
                chunks.append(current)
                current = []
            current = current + piece
    if current:
        chunks.append(current)
    if not chunks:
        raise InputError(
            "The calibration text is empty: choose the shipped calibration set or type some text."
        )
    return chunks


@torch.no_grad()
def collect_activation_stats(
    loaded: LoadedModel,
    chunks: list[list[int]],
    kinds,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[dict[str, ActivationStats], int]:
    """Run the calibration chunks and gather, per chosen matrix's module, mean |x| and X^T X of its input.

    An embedding's statistics come from the input of its tied output layer (the final hidden states), the
    one place where it multiplies activations; without a tied output layer it has none. Modules that read the
    same tensor (q/k/v, gate/up) share one accumulator. Returns (module name -> stats, tokens seen).
    """
    model = structural_copy(loaded.model)
    targets: dict[str, str] = {}  # module whose input we hook -> module name the stats belong to
    for mat in weight_matrices(model):
        if mat.kind not in kinds:
            continue
        if mat.kind == "embed":
            tied = tied_output_module(model, mat.module)
            if tied is not None:
                targets[tied] = mat.module
        else:
            targets[mat.module] = mat.module

    accs: dict[str, dict] = {}  # first hooked module reading a tensor -> float64 sums over tokens
    alias: dict[str, str] = {}  # hooked module -> the accumulator it shares
    seen: dict[tuple, str] = {}  # (data_ptr, shape) -> accumulator, within one forward pass
    keep_alive: list[torch.Tensor] = []  # hold the inputs so no address is reused within a pass

    def hook_for(hooked: str):
        def hook(_module, args):
            x = args[0].detach()
            key = (x.data_ptr(), tuple(x.shape))
            first = seen.get(key)
            if first is None:
                seen[key] = first = hooked
                keep_alive.append(x)
                x2 = x.reshape(-1, x.shape[-1]).to("cpu", torch.float32)
                acc = accs.get(hooked)
                if acc is None:
                    n = x2.shape[1]
                    accs[hooked] = acc = {
                        "abs": torch.zeros(n, dtype=torch.float64),
                        "gram": torch.zeros(n, n, dtype=torch.float64),
                        "n": 0,
                    }
                acc["abs"] += x2.abs().sum(0).to(torch.float64)
                acc["gram"] += (x2.T @ x2).to(torch.float64)  # float32 per chunk, float64 across chunks
                acc["n"] += x2.shape[0]
            alias[hooked] = first

        return hook

    handles = [model.get_submodule(name).register_forward_pre_hook(hook_for(name)) for name in targets]
    # When every hooked module lies in the transformer body, run the body only: a causal LM's output layer
    # (SmolLM2: 49152 x 576, a fifth of its multiply-adds) would compute logits nobody reads.
    body = getattr(model, "base_model", model)
    inside = {id(m) for m in body.modules()}
    runner = body if all(id(model.get_submodule(name)) in inside for name in targets) else model
    n_tokens = 0
    try:
        for i, chunk in enumerate(chunks):
            if progress is not None:
                progress(i / len(chunks), f"Calibration activations: chunk {i + 1} of {len(chunks)}")
            seen.clear()
            keep_alive.clear()
            runner(input_ids=torch.tensor([chunk], device=loaded.device))
            n_tokens += len(chunk)
    finally:
        for handle in handles:
            handle.remove()
        keep_alive.clear()
    shared = {
        key: ActivationStats((acc["abs"] / acc["n"]).numpy(), acc["gram"].to(torch.float32), int(acc["n"]))
        for key, acc in accs.items()
        if acc["n"] > 0
    }
    accs.clear()
    stats = {owner: shared[alias[hooked]] for hooked, owner in targets.items() if alias.get(hooked) in shared}
    if progress is not None:
        progress(1.0, "Calibration activations: done")
    return stats, n_tokens


def factorize_model(
    loaded: LoadedModel,
    method: str,
    kinds,
    stats: dict[str, ActivationStats] | None,
    calibration_tokens: int = 0,
    progress: Callable[[float, str], None] | None = None,
    calibration_key: str | None = None,
    stats_provider: Callable[[], tuple[dict[str, ActivationStats], int]] | None = None,
    usable_only: bool = False,
) -> Factorization:
    """Factor the chosen groups. With ``calibration_key`` (naming the calibration data that gave ``stats``,
    e.g. ``calibration_key_of(text)``) the disk store (explorer.analysis.factor_store) is read first and
    written after a computation; ``stats_provider`` (called only on a miss) may then replace ``stats``.
    ``usable_only``: keep only the ranks that save parameters (factor_store.usable_factors)."""
    if calibration_key is None:
        return factorize(
            loaded.model, method, kinds, stats, calibration_tokens=calibration_tokens, progress=progress
        )
    provider = stats_provider or (lambda: (stats, calibration_tokens))
    fact, _from_disk = cached_factorize(
        loaded.model, method, kinds, calibration_key, provider, progress=progress, usable_only=usable_only
    )
    return fact


def shipped_factorizations(
    loaded: LoadedModel,
    kinds: tuple[str, ...],
    methods=METHODS,
    log: Callable[[str], None] | None = None,
) -> dict[str, Factorization]:
    """Each method's factors of ``kinds`` calibrated on the shipped calibration set, full rank: from the disk
    store, or computed (the calibration pass runs once, only on a miss). For the report and the benches."""
    text = shipped_calibration_text()
    gathered: dict = {}

    def stats():
        if "stats" not in gathered:
            gathered["stats"] = collect_activation_stats(loaded, calibration_chunks(loaded, text), kinds)
        return gathered["stats"]

    facts = {}
    for method in methods:
        start = time.perf_counter()
        facts[method], hit = cached_factorize(loaded.model, method, kinds, calibration_key_of(text), stats)
        if log is not None:
            log(f"{method}: factors {'read' if hit else 'computed'} in {time.perf_counter() - start:.1f} s")
    return facts


def calibration_key_of(text: str, chunk_tokens: int = CALIBRATION_CHUNK_TOKENS) -> str:
    """Names calibration data for the factor store: the text's hash and how ``calibration_chunks`` cuts it."""
    return f"{text_hash(text)}-{chunk_tokens}"


def modules_holding(model: torch.nn.Module, names=None) -> dict[str, list]:
    """Module name -> its weight matrices (explorer.analysis.matrices.WeightMatrix, in order: GPT-2's fused
    c_attn holds three), for the modules holding at least one matrix named in ``names`` (None: every module
    with a weight matrix). Model surgery replaces whole modules, so it walks them this way."""
    by_module: dict[str, list] = {}
    for mat in weight_matrices(model):
        by_module.setdefault(mat.module, []).append(mat)
    if names is None:
        return by_module
    return {module: mats for module, mats in by_module.items() if any(m.name in names for m in mats)}


def compressed_model(
    loaded: LoadedModel, factorization: Factorization, ranks: dict[str, int]
) -> torch.nn.Module:
    """A structural copy of the cached model with each matrix in ``ranks`` (name -> k) factored at rank k.

    The cached model is only read. A tied output layer follows a compressed embedding.
    """
    model = loaded.model
    clone = structural_copy(model)
    ref = next(model.parameters())
    dtype, device = ref.dtype, ref.device

    def factors(f: MatrixFactors):
        A, B = f.factors(ranks[f.name])
        return A.to(device, dtype), B.to(device, dtype)

    chosen = {f.name: f for f in factorization.matrices if f.name in ranks}
    for module_name, mats in modules_holding(model, chosen).items():
        original = model.get_submodule(module_name)
        if not isinstance(original, (torch.nn.Linear, Conv1D, torch.nn.Embedding)):
            raise TypeError(f"Cannot factor module {module_name} of type {type(original).__name__}.")
        bias = getattr(original, "bias", None)
        if isinstance(original, torch.nn.Embedding):
            A, B = factors(chosen[mats[0].name])
            set_submodule(clone, module_name, LowRankEmbedding(A, B, original.padding_idx))
            tied = tied_output_module(model, module_name)
            if tied is not None:
                set_submodule(
                    clone, tied, LowRankLinear(A, B, getattr(model.get_submodule(tied), "bias", None))
                )
        elif len(mats) == 1:
            A, B = factors(chosen[mats[0].name])
            set_submodule(clone, module_name, LowRankLinear(A, B, bias))
        else:  # fused module (GPT-2 c_attn): factor the chosen parts, keep the others dense
            parts = []
            for mat in mats:
                if mat.name in chosen:
                    parts.append(LowRankLinear(*factors(chosen[mat.name]), None))
                else:
                    parts.append(DenseLinear(mat.weight))
            set_submodule(clone, module_name, ConcatLinear(parts, bias))
    return clone.eval()


# -------------------------------------------------------------------------------------- rank choice


@dataclass(frozen=True)
class RankSetting:
    """How ranks are chosen. ``mode``: "rank" (``ranks``: (kind, k) pairs, clipped to each matrix),
    "energy" (keep k_p of the method's singular values, p = ``energy``), or "share" (each matrix keeps
    about ``share`` of its dense parameters: k = floor(share * mn / (m + n)); share 1 is break-even).

    ``allocation``: "uniform" uses the mode's ranks as they are; "greedy" spends the same number of factor
    parameters, sum k(m + n) of the mode's ranks, where it lowers the calibration output error most
    (``allocate_ranks``)."""

    mode: str = "share"
    ranks: tuple[tuple[str, int], ...] = ()
    energy: float = 0.9
    share: float = 0.5
    allocation: str = "uniform"


def choose_ranks(factorization: Factorization, setting: RankSetting) -> dict[str, int]:
    """Matrix name -> rank in [1, min(m, n)]. With the greedy allocation a matrix it leaves dense is absent
    from the mapping (``compressed_model`` then keeps it untouched)."""
    by_kind = dict(setting.ranks)
    out: dict[str, int] = {}
    for f in factorization.matrices:
        if setting.mode == "rank":
            k = by_kind.get(f.kind, round(f.break_even / 2))
        elif setting.mode == "energy":
            k = int(energy_rank(f.sigma, float(setting.energy)))
        elif setting.mode == "share":
            k = int(np.floor(float(setting.share) * f.break_even))
        else:
            raise ValueError(f"Unknown mode '{setting.mode}'; choose one of {', '.join(MODES)}.")
        out[f.name] = f.clamp(k)
    if setting.allocation == "uniform":
        return out
    if setting.allocation != "greedy":
        raise ValueError(
            f"Unknown allocation '{setting.allocation}'; choose one of {', '.join(ALLOCATIONS)}."
        )
    budget = sum(out[f.name] * (f.shape[0] + f.shape[1]) for f in factorization.matrices)
    return allocate_ranks(factorization, budget)


def allocation_objective(factorization: Factorization) -> str:
    """ "output" (calibration output error, when every matrix has calibration inputs) or "weight"
    (||W - W_k||_F^2, when some matrix has none: the two are in different units and cannot be mixed)."""
    calibrated = all(f.output_tail is not None for f in factorization.matrices)
    return "output" if calibrated else "weight"


def component_gains(f: MatrixFactors, objective: str) -> np.ndarray:
    """(r,) float64: what keeping each component removes from the objective. U is orthonormal, so both errors
    split exactly over components: ||(W - W_k) X^T||^2 = sum_{i>k} ||u_i^T W X^T||^2, and likewise without X.
    For SVD-LLM the output gain is the whitened sigma~_i^2 minus its ridge part lambda ||u_i^T W||^2, so the
    greedy minimises the reported calibration output error itself, not the ridge-regularised one."""
    tail = f.output_tail if objective == "output" else f.weight_tail
    return np.maximum(-np.diff(tail), 0.0)


def allocate_ranks(factorization: Factorization, budget: int) -> dict[str, int]:
    """Ranks of the least total error (``allocation_objective``) with sum k(m + n) <= ``budget`` over the
    factored matrices (a matrix left dense costs mn and is absent from the result): the greedy of
    explorer.spectra.allocation, which is optimal up to one hull step (its docstring has the theorem)."""
    alloc = allocation_of(factorization, budget)
    return {
        f.name: int(k)
        for f, k, dense in zip(factorization.matrices, alloc.ranks, alloc.dense, strict=True)
        if not dense
    }


def allocation_of(factorization: Factorization, budget: int):
    """The explorer.spectra.allocation.Allocation behind ``allocate_ranks`` (its error and gap are in the
    objective's units, summed over matrices)."""
    objective = allocation_objective(factorization)
    gains = [component_gains(f, objective) for f in factorization.matrices]
    return greedy_allocation(gains, [f.shape for f in factorization.matrices], int(budget))


def calib_output_error(factorization: Factorization, ranks: dict[str, int]) -> float | None:
    """sum ||(W - W_k) X^T||_F^2 / sum ||W X^T||_F^2 over the factorization's matrices (a matrix absent from
    ``ranks`` is dense: no error), on the calibration inputs; None when a matrix has no calibration."""
    num = den = 0.0
    for f in factorization.matrices:
        if f.output_tail is None or f.output_norm2 is None:
            return None
        den += f.output_norm2
        if f.name in ranks:
            num += float(f.output_tail[f.clamp(ranks[f.name])])
    return num / den if den > 0 else 0.0


def group_params(factorization: Factorization, ranks: dict[str, int]) -> tuple[int, int]:
    """(parameters of the factorization's matrices and biases dense, after factoring at ``ranks``; a matrix
    absent from ``ranks`` stays dense)."""
    before = sum(f.dense_params for f in factorization.matrices)
    after = sum(
        f.params(ranks[f.name]) if f.name in ranks else f.dense_params for f in factorization.matrices
    )
    return before, after


def model_bytes(params_model_after: int) -> int:
    """Whole-model storage in bytes: every parameter left alone at fp16 (2 bytes; tied weights once), and for
    each factored matrix its two factors A_k (m, k) and B_k (k, n) at fp16 too, k(m + n) entries, plus its
    bias. So it is BYTES_PER_PARAM x the parameter count after compression."""
    return int(params_model_after) * BYTES_PER_PARAM


def kind_shapes(model: torch.nn.Module, kinds=GROUP_KINDS) -> dict[str, tuple[tuple[int, int], float, int]]:
    """kind -> ((m, n), break-even rank mn/(m+n), largest rank that saves parameters: the largest k with
    k(m + n) < mn, at least 1) of its first matrix, before any SVD (every layer of the supported models shares
    the shape); what the rank sliders need."""
    out = {}
    for mat in weight_matrices(model):
        if mat.kind in kinds and mat.kind not in out:
            m, n = mat.shape
            out[mat.kind] = ((m, n), m * n / (m + n), max(largest_factored_rank((m, n)), 1))
    return {k: out[k] for k in kinds if k in out}


def break_even_by_kind(factorization: Factorization) -> dict[str, tuple[tuple[int, int], float, int]]:
    """kind -> (shape, break-even rank mn/(m+n), max rank) of its first matrix (all layers share the shape)."""
    out = {}
    for f in factorization.matrices:
        out.setdefault(f.kind, (f.shape, f.break_even, f.max_rank))
    return out


# ------------------------------------------------------------------------------------------- quality


@dataclass(frozen=True)
class EvalSet:
    """What quality is measured on. ``ids``: the text's token ids (token,), already truncated. Encoders also
    embed ``sentences`` (the shipped set, one padded batch); their items are [the text] + the sentences."""

    causal: bool
    ids: tuple[int, ...]
    sentences: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()

    @property
    def items(self) -> int:
        return 1 + len(self.sentences)

    @property
    def n_tokens(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Quality:
    """Measured quality of one model on an EvalSet. perplexity: exp(mean next-token loss); kl: mean
    KL(original || this) in nats per token (0 for the original); embedding_cosine: mean cosine with the
    original's embeddings; similarity_spearman: rank correlation of pairwise similarities with the original's.
    latency_ms: wall-clock ms of the forward pass."""

    causal: bool
    perplexity: float | None
    kl: float | None
    embedding_cosine: float | None
    similarity_spearman: float | None
    latency_ms: float
    n_tokens: int

    @property
    def headline(self) -> float | None:
        """The headline metric's value: perplexity (causal LM) or embedding cosine (encoder)."""
        return headline_metric(self.causal).value(self)


@dataclass(frozen=True)
class Reference:
    """The original model's outputs on an EvalSet: logprobs (token, vocab) float32 for causal models,
    embeddings (item, d_model) float32 for encoders, and its Quality."""

    quality: Quality
    logprobs: torch.Tensor | None
    embeddings: torch.Tensor | None


def make_eval_set(loaded: LoadedModel, text: str, max_tokens: int | None) -> EvalSet:
    ids, _n, messages = tokenize(loaded, text, max_tokens)
    if loaded.causal and len(ids) < 2:
        raise InputError("Perplexity needs at least two tokens: type a longer text.")
    sentences = () if loaded.causal else sentence_set()
    return EvalSet(loaded.causal, tuple(int(i) for i in ids), sentences, tuple(messages))


@torch.no_grad()
def _forward(loaded: LoadedModel, module: torch.nn.Module, evalset: EvalSet) -> tuple[torch.Tensor, float]:
    """(log-probs (token, vocab), or mean-pooled embeddings (item, d_model) of [text] + sentences; float32 CPU)
    and the wall-clock ms of the forward passes: the text, and for encoders also the sentence batch."""
    device = loaded.device
    ids = torch.tensor([evalset.ids], device=device)
    sync_device(device)
    start = time.perf_counter()
    out = module(input_ids=ids)
    if evalset.causal:
        sync_device(device)
        latency = (time.perf_counter() - start) * 1e3
        return torch.log_softmax(out.logits[0].float(), dim=-1).cpu(), latency
    # Sentences in one padded batch of their own (padding them to the text's length would waste compute).
    batch = loaded.tokenizer(
        list(evalset.sentences),
        padding=True,
        truncation=True,
        max_length=loaded.card.max_positions,
        return_tensors="pt",
    )
    batch = {
        k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")
    }
    hidden = module(**batch).last_hidden_state.float()
    sync_device(device)
    latency = (time.perf_counter() - start) * 1e3
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
    text = out.last_hidden_state[0].float().mean(0, keepdim=True)  # one sequence, no padding
    return torch.cat([text, pooled]).cpu(), latency


def _perplexity(logprobs: torch.Tensor, ids: tuple[int, ...]) -> float:
    target = torch.tensor(ids[1:])
    nll = -logprobs[:-1].gather(-1, target[:, None])[:, 0].double()
    return float(torch.exp(nll.mean()))


def _kl(ref: torch.Tensor, other: torch.Tensor) -> float:
    """mean_t sum_v p_t (log p_t - log q_t), nats per token."""
    # float32 within a position (one pass over token x vocab; a float64 copy of it costs ~0.5 s at 256 tokens),
    # float64 across positions. KL >= 0 (Gibbs): clamp the -1e-8 rounding leaves for equal distributions.
    per_position = (ref.exp() * (ref - other)).sum(-1)
    return max(float(per_position.double().mean()), 0.0)


def _pairwise_upper(emb: torch.Tensor) -> np.ndarray:
    unit = F.normalize(emb.double(), dim=-1)
    sims = (unit @ unit.T).numpy()
    return sims[np.triu_indices(len(sims), k=1)]


def reference(loaded: LoadedModel, evalset: EvalSet) -> Reference:
    out, latency = _forward(loaded, loaded.model, evalset)
    if evalset.causal:
        q = Quality(True, _perplexity(out, evalset.ids), 0.0, None, None, latency, evalset.n_tokens)
        return Reference(q, out, None)
    q = Quality(False, None, None, 1.0, 1.0, latency, evalset.n_tokens)
    return Reference(q, None, out)


def evaluate(loaded: LoadedModel, module: torch.nn.Module, evalset: EvalSet, ref: Reference) -> Quality:
    out, latency = _forward(loaded, module, evalset)
    if not torch.isfinite(out).all():
        nan = float("nan")
        return Quality(evalset.causal, nan, nan, nan, nan, latency, evalset.n_tokens)
    if evalset.causal:
        return Quality(
            True, _perplexity(out, evalset.ids), _kl(ref.logprobs, out), None, None, latency, evalset.n_tokens
        )
    cosine = float(F.cosine_similarity(out.double(), ref.embeddings.double(), dim=-1).mean())
    # Pairwise similarities over the shipped sentences (items[1:]; items[0] is the text).
    rho = spearmanr(_pairwise_upper(ref.embeddings[1:]), _pairwise_upper(out[1:])).statistic
    return Quality(False, None, None, cosine, float(rho), latency, evalset.n_tokens)


# -------------------------------------------------------------------------------------------- outcome


@dataclass(frozen=True)
class MatrixRow:
    """One matrix of the per-matrix table. Errors are relative (divided by ||W||_F or ||W X^T||_F)."""

    name: str
    kind: str
    layer: int | None
    shape: tuple[int, int]
    rank: int
    break_even: float
    params_before: int
    params_after: int
    eckart_young_error: float
    weight_error: float
    output_error: float | None


@dataclass(frozen=True)
class Outcome:
    """A setting's cost and effect. params_*: counts (model = every parameter, tied ones once; chosen = the
    chosen matrices and their biases). before/after: measured Quality of the original and the compressed model."""

    method: str
    kinds: tuple[str, ...]
    params_model_before: int
    params_model_after: int
    params_chosen_before: int
    params_chosen_after: int
    before: Quality
    after: Quality
    rows: tuple[MatrixRow, ...]

    @property
    def share_kept(self) -> float:
        return self.params_model_after / self.params_model_before

    @property
    def mean_rank(self) -> float:
        return float(np.mean([r.rank for r in self.rows])) if self.rows else 0.0

    def megabytes(self, bytes_per_param: int, after: bool) -> float:
        return (self.params_model_after if after else self.params_model_before) * bytes_per_param / 1e6


def matrix_rows(factorization: Factorization, ranks: dict[str, int]) -> tuple[MatrixRow, ...]:
    rows = []
    for f in factorization.matrices:
        if f.name not in ranks:
            continue
        k = f.clamp(ranks[f.name])
        rows.append(
            MatrixRow(
                f.name,
                f.kind,
                f.layer,
                f.shape,
                k,
                f.break_even,
                f.dense_params,
                f.params(k),
                f.eckart_young_error(k),
                f.weight_error(k),
                f.output_error(k),
            )
        )
    return tuple(rows)


def evaluate_ranks(
    loaded: LoadedModel,
    factorization: Factorization,
    ranks: dict[str, int],
    evalset: EvalSet,
    ref: Reference,
) -> Outcome:
    """Build the compressed copy at ``ranks``, measure it, count parameters."""
    rows = matrix_rows(factorization, ranks)
    before_chosen = sum(r.params_before for r in rows)
    after_chosen = sum(r.params_after for r in rows)
    total = loaded.card.n_params
    quality = evaluate(loaded, compressed_model(loaded, factorization, ranks), evalset, ref)
    return Outcome(
        factorization.method,
        factorization.kinds,
        total,
        total - before_chosen + after_chosen,
        before_chosen,
        after_chosen,
        ref.quality,
        quality,
        rows,
    )


# ---------------------------------------------------------------------------------------------- sweep


STORES = ("lowrank", "bits", "factors", "residual")


@dataclass(frozen=True)
class Recipe:
    """How a point's chosen matrices are stored, in the terms the page's free controls use: enough to measure
    the same setting again.

    store: "lowrank" (rank-k factors at fp16), "bits" (every chosen matrix quantized with ``scheme``),
    "factors" (rank-k factors, each factor quantized with ``scheme``), "residual" (the top plain-SVD directions
    at fp16 plus the rest quantized with ``scheme``), "" (unknown). method: the low-rank method ("svd", "asvd",
    "svdllm"; "" for "bits", "svd" for "residual"). share: each matrix's rank as a share of its break-even rank
    mn/(m+n) (0 for "bits"). allocation: "uniform" or "greedy" (the same factor parameters placed where they
    lower the calibration output error most). scheme: QuantScheme.name ("int8", "int4-g32-asym"; "" for fp16).
    heal_steps, heal_lr: the low-rank factors trained that many Adam steps of that size (0: not healed)."""

    store: str = ""
    method: str = ""
    share: float = 0.0
    allocation: str = "uniform"
    scheme: str = ""
    heal_steps: int = 0
    heal_lr: float = 0.0


@dataclass(frozen=True)
class Point:
    """One measured setting, whatever the method (low rank, fewer bits, both, healed): one point of the
    bytes/quality chart and of the Pareto chart, one candidate of the budget.

    series: the family it belongs to ("SVD-LLM (whitened)", "int8", "4-bit, groups of 32", ...); setting: what
    produced it, in words; bytes_model: the whole model's storage in bytes (what is not compressed at fp16);
    quality: measured on the EvalSet; recipe: the setting as the free controls take it; on_own_grid: True for a
    4-bit grid the weights were stored on before (SmolLM2's Q4_1): its cost is zero by construction.

    Low-rank points also count parameters (0 elsewhere): mean_rank; params_model_before/after: every parameter
    of the model (tied ones once); params_group_before/after: the compressed groups' matrices and biases, dense
    and after; calib_output_error: sum ||(W - W_k) X^T||^2 / sum ||W X^T||^2 over them (None without
    calibration)."""

    series: str
    setting: str
    bytes_model: int
    quality: Quality
    recipe: Recipe = Recipe()
    on_own_grid: bool = False
    mean_rank: float = 0.0
    params_model_before: int = 0
    params_model_after: int = 0
    params_group_before: int = 0
    params_group_after: int = 0
    calib_output_error: float | None = None

    @classmethod
    def low_rank(
        cls,
        method: str,
        share: float,
        quality: Quality,
        *,
        allocation: str = "uniform",
        mean_rank: float = 0.0,
        params_model_before: int,
        params_model_after: int,
        params_group_before: int = 0,
        params_group_after: int = 0,
        calib_output_error: float | None = None,
    ) -> Point:
        """A low-rank setting: ``method`` with every chosen matrix at ``share`` of its break-even rank
        (``allocation`` "uniform"), or the same factor parameters placed by the greedy ("greedy"). Its bytes:
        ``model_bytes`` (the whole model at fp16, factors too)."""
        series = LOWRANK_METHOD_LABELS[method] + (", allocated ranks" if allocation == "greedy" else "")
        kept = params_group_after / params_group_before if params_group_before else 1.0
        return cls(
            series,
            f"{series}, keeping {kept:.0%} of the groups' parameters",
            model_bytes(params_model_after),
            quality,
            Recipe("lowrank", method, float(share), allocation),
            mean_rank=mean_rank,
            params_model_before=int(params_model_before),
            params_model_after=int(params_model_after),
            params_group_before=int(params_group_before),
            params_group_after=int(params_group_after),
            calib_output_error=calib_output_error,
        )

    @property
    def method(self) -> str:
        return self.recipe.method

    @property
    def share(self) -> float:
        return self.recipe.share

    @property
    def allocation(self) -> str:
        return self.recipe.allocation

    @property
    def bytes(self) -> int:
        return self.bytes_model

    @property
    def share_kept(self) -> float:
        """Parameters kept, as a share of the model's (1.0 when the point counts none)."""
        return self.params_model_after / self.params_model_before if self.params_model_before else 1.0

    @property
    def group_share_kept(self) -> float:
        return self.params_group_after / self.params_group_before if self.params_group_before else 1.0


def sweep_point(
    loaded: LoadedModel,
    factorization: Factorization,
    share: float,
    evalset: EvalSet,
    ref: Reference,
    allocation: str = "uniform",
) -> Point:
    ranks = choose_ranks(factorization, RankSetting(mode="share", share=share, allocation=allocation))
    outcome = evaluate_ranks(loaded, factorization, ranks, evalset, ref)
    group_before, group_after = group_params(factorization, ranks)
    return Point.low_rank(
        factorization.method,
        share,
        outcome.after,
        allocation=allocation,
        mean_rank=outcome.mean_rank,
        params_model_before=outcome.params_model_before,
        params_model_after=outcome.params_model_after,
        params_group_before=group_before,
        params_group_after=group_after,
        calib_output_error=calib_output_error(factorization, ranks),
    )


def sweep_plan(methods, shares=SWEEP_SHARES, greedy: tuple[str, ...] = ()) -> list[tuple[str, str, float]]:
    """(method, allocation, share) in the order the sweep measures them: method by method (each method's
    factors are then needed one at a time), gentle shares first (the ones a quality budget is likely to accept),
    each share uniform and then, for the methods in ``greedy``, allocated."""
    plan = []
    for method in methods:
        for share in sorted(shares, reverse=True):
            plan.append((method, "uniform", float(share)))
            if method in greedy:
                plan.append((method, "greedy", float(share)))
    return plan


def sweep(
    loaded: LoadedModel,
    factorizations: dict[str, Factorization],
    evalset: EvalSet,
    ref: Reference,
    shares=SWEEP_SHARES,
    progress: Callable[[float, str], None] | None = None,
    greedy: tuple[str, ...] = (),
    on_point: Callable[[Point], None] | None = None,
) -> list[Point]:
    """Every method in ``factorizations`` at every share of break-even rank, and the methods in ``greedy``
    also with the greedy allocation at the same parameter counts (order: ``sweep_plan``);
    ``progress(fraction, message)``; ``on_point(point)`` as each point is measured."""
    plan = sweep_plan(factorizations, shares, greedy)
    points = []
    for i, (method, allocation, share) in enumerate(plan):
        if progress is not None:
            how = "" if allocation == "uniform" else ", ranks allocated"
            progress(i / len(plan), f"{METHOD_LABELS[method]} at {share:.0%} of break-even rank{how}")
        point = sweep_point(loaded, factorizations[method], share, evalset, ref, allocation)
        points.append(point)
        if on_point is not None:
            on_point(point)
    if progress is not None:
        progress(1.0, "Sweep done")
    return points


def budget_sweep(
    loaded: LoadedModel,
    methods,
    factors: Callable[[str, Callable[[float, str], None]], Factorization],
    evalset: EvalSet,
    ref: Reference,
    progress: Callable[[float, str], None] | None = None,
    on_point: Callable[[Point], None] | None = None,
) -> list[Point]:
    """The budget's low-rank points, as the page and the report weigh them: each of ``methods`` (in
    BUDGET_METHODS order) at KEPT_SHARES of break-even rank, uniform and greedy-allocated, method by method.
    ``factors(method, progress)`` gives a method's factors (called once per method, when its turn comes: the
    page's task reads them from the task layer, the report from the store); ``progress`` spans the whole
    sweep, 40 % of each method's part for its factors; ``on_point`` sees each point as it is measured."""
    order = tuple(m for m in BUDGET_METHODS if m in methods)
    points: list[Point] = []
    for i, method in enumerate(order):
        start, end = i / len(order), (i + 1) / len(order)
        middle = start + 0.4 * (end - start)
        fact = factors(method, tasks.forward(progress, start, middle))
        points += sweep(loaded, {method: fact}, evalset, ref, KEPT_SHARES, tasks.forward(progress, middle, end),
                        greedy=(method,), on_point=on_point)  # fmt: skip
    return points


def sweep_records(points: list[Point], kinds) -> list[dict]:
    """The report's rows: method, allocation, groups, params_total, params_kept, bytes (``model_bytes``),
    calib_output_error, perplexity/embedding_cosine, kl, latency_ms."""
    records = []
    for p in points:
        row = {
            "method": p.method,
            "allocation": p.allocation,
            "groups": list(kinds),
            "share_of_break_even": p.share,
            "mean_rank": p.mean_rank,
            "params_total": p.params_model_before,
            "params_kept": p.params_model_after,
            "group_params_total": p.params_group_before,
            "group_params_kept": p.params_group_after,
            "bytes": p.bytes,
            "calib_output_error": p.calib_output_error,
        }
        row |= quality_values(p.quality)
        row["latency_ms"] = p.quality.latency_ms
        records.append(row)
    return records


def within_budget(points: list[Point], before: Quality, budget: Budget) -> tuple[Point | None, Point | None]:
    """(the smallest point within the budget, ties to the smaller loss, or None; the point of the smallest loss,
    ties to the smaller: what to show when nothing fits). Points on the weights' own storage grid are left out:
    their cost is zero by construction."""
    candidates = [p for p in points if not p.on_own_grid]
    fitting = [p for p in candidates if budget.fits(before, p.quality)]
    best = min(fitting, key=lambda p: (p.bytes_model, budget.loss(before, p.quality)), default=None)
    closest = min(candidates, key=lambda p: (budget.loss(before, p.quality), p.bytes_model), default=None)
    return best, closest


@dataclass(frozen=True)
class BudgetAnswer:
    """The budget's answer for one method and allocation, from the sweep points measured so far.

    best: the point with the fewest parameters within the budget (None when none fits); closest: the point of
    the smallest loss (what to show when nothing fits); measured: how many points of this method and
    allocation were measured; loss_best/loss_closest: their ``Budget.loss`` (nan when absent)."""

    method: str
    allocation: str
    best: Point | None
    closest: Point | None
    measured: int
    loss_best: float
    loss_closest: float


def budget_answers(
    points: list[Point], before: Quality, budget: Budget, methods, allocations=ALLOCATIONS
) -> tuple[BudgetAnswer, ...]:
    """One ``BudgetAnswer`` per (method, allocation), methods in the given order, uniform first."""
    out = []
    for method in methods:
        for allocation in allocations:
            mine = [p for p in points if p.method == method and p.allocation == allocation]
            best, closest = within_budget(mine, before, budget)
            nan = float("nan")
            out.append(
                BudgetAnswer(
                    method,
                    allocation,
                    best,
                    closest,
                    len(mine),
                    nan if best is None else budget.loss(before, best.quality),
                    nan if closest is None else budget.loss(before, closest.quality),
                )
            )
    return tuple(out)


def overall_best(answers: tuple[BudgetAnswer, ...]) -> BudgetAnswer | None:
    """The answer whose best point keeps the fewest parameters (ties: the smaller loss), None if none fits."""
    fitting = [a for a in answers if a.best is not None]
    return min(fitting, key=lambda a: (a.best.params_model_after, a.loss_best), default=None)


def overall_closest(answers: tuple[BudgetAnswer, ...]) -> BudgetAnswer | None:
    """The answer whose closest point has the smallest loss (ties: fewer parameters)."""
    measured = [a for a in answers if a.closest is not None]
    return min(measured, key=lambda a: (a.loss_closest, a.closest.params_model_after), default=None)


# ------------------------------------------------------------------------------------------ allocation


@dataclass(frozen=True)
class RankComparison:
    """Uniform against greedy-allocated ranks at the same parameter count, per matrix.

    names, kinds: tuples of shape (matrix,); layers: ndarray of shape (matrix,), int (-1 where a matrix has no
    layer); uniform, greedy: ndarrays of shape (matrix,), int, ranks kept (greedy: 0 where the matrix is left
    dense); break_even: ndarray of shape (matrix,), float, mn/(m+n); share: the share of break-even rank the
    uniform ranks use; params_uniform, params_greedy: factor parameters sum k(m + n) (+ mn per dense matrix)."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    layers: np.ndarray
    uniform: np.ndarray
    greedy: np.ndarray
    break_even: np.ndarray
    share: float
    params_uniform: int
    params_greedy: int


def rank_comparison(factorization: Factorization, share: float) -> RankComparison:
    """The ranks ``choose_ranks`` gives at ``share`` of break-even rank, uniform and greedy."""
    uniform = choose_ranks(factorization, RankSetting(mode="share", share=share))
    greedy = choose_ranks(factorization, RankSetting(mode="share", share=share, allocation="greedy"))
    mats = factorization.matrices

    def cost(ranks):
        return sum(ranks[f.name] * sum(f.shape) if f.name in ranks else f.shape[0] * f.shape[1] for f in mats)

    return RankComparison(
        tuple(f.name for f in mats),
        tuple(f.kind for f in mats),
        np.array([-1 if f.layer is None else f.layer for f in mats], dtype=np.int64),
        np.array([uniform[f.name] for f in mats], dtype=np.int64),
        np.array([greedy.get(f.name, 0) for f in mats], dtype=np.int64),
        np.array([f.break_even for f in mats], dtype=np.float64),
        float(share),
        int(cost(uniform)),
        int(cost(greedy)),
    )


# ----------------------------------------------------------------------------------------- generation


@torch.no_grad()
def greedy_continuation(
    loaded: LoadedModel, module: torch.nn.Module, prompt_ids: tuple[int, ...], n_new: int = 32
) -> str:
    """Greedy decoding of ``n_new`` tokens after ``prompt_ids`` with ``module`` (KV cache); the new text only."""
    ids = torch.tensor([prompt_ids], device=loaded.device)
    eos = loaded.tokenizer.eos_token_id
    out = module(input_ids=ids, use_cache=True)
    new: list[int] = []
    for _ in range(n_new):
        token = int(out.logits[0, -1].argmax())
        if eos is not None and token == eos:
            break
        new.append(token)
        out = module(
            input_ids=torch.tensor([[token]], device=loaded.device),
            past_key_values=out.past_key_values,
            use_cache=True,
        )
    return loaded.tokenizer.decode(new, skip_special_tokens=True)


__all__ = [
    "ALLOCATIONS",
    "ALLOCATION_LABELS",
    "BUDGET_METHODS",
    "BYTES_PER_PARAM",
    "CALIBRATION_CHUNK_TOKENS",
    "DEFAULT_KINDS",
    "GROUP_KINDS",
    "GROUP_LABELS",
    "KEPT_SHARES",
    "METHODS",
    "METHOD_LABELS",
    "MODES",
    "MODE_LABELS",
    "STORES",
    "SWEEP_SHARES",
    "BudgetAnswer",
    "ConcatLinear",
    "DenseLinear",
    "EvalSet",
    "LowRankEmbedding",
    "LowRankLinear",
    "MatrixRow",
    "Outcome",
    "Point",
    "Quality",
    "RankComparison",
    "Recipe",
    "RankSetting",
    "Reference",
    "allocate_ranks",
    "allocation_objective",
    "allocation_of",
    "available_kinds",
    "break_even_by_kind",
    "budget_answers",
    "budget_sweep",
    "calib_output_error",
    "calibration_chunks",
    "calibration_key_of",
    "choose_ranks",
    "collect_activation_stats",
    "component_gains",
    "compressed_model",
    "evaluate",
    "evaluate_ranks",
    "factorize_model",
    "greedy_continuation",
    "group_params",
    "heldout_text",
    "kind_shapes",
    "make_eval_set",
    "matrix_rows",
    "model_bytes",
    "modules_holding",
    "overall_best",
    "overall_closest",
    "rank_comparison",
    "reference",
    "sentence_set",
    "shipped_calibration_text",
    "shipped_factorizations",
    "sweep",
    "sweep_plan",
    "sweep_point",
    "sweep_records",
    "text_hash",
    "within_budget",
]
