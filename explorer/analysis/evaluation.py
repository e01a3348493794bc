"""Measuring a compressed model: the evaluation set, the original's reference outputs and the quality of a copy.

Quality (docs/ARCHITECTURE.md section 2): causal LM: perplexity on the text and mean KL(original || compressed) of the
next-token distributions (nats per token); encoder: mean cosine between original and compressed sentence
embeddings (mean pooling over the attention mask) over [the text] + the shipped sentence set, and the Spearman
correlation of the pairwise cosine similarities of the shipped sentences. Latency: wall-clock time of the one
forward pass that produces those numbers (milliseconds, on the model's device)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from explorer.analysis.calibration import sentence_set
from explorer.analysis.lowrank import (
    Factorization,
)
from explorer.analysis.quality import headline_metric
from explorer.analysis.surgery import (
    compressed_model,
    sync_device,
)
from explorer.errors import InputError
from explorer.models.capture import tokenize
from explorer.models.loading import LoadedModel


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
