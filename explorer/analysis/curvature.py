"""Loss curvature of a loaded model, block by block: Hessian (or Gauss-Newton) spectra and a training what-if.

The loss:
- causal LMs: mean next-token cross-entropy (nats) over the text's T tokens (T - 1 predictions);
- encoders (no LM head, e.g. MiniLM, tiny-bert): sentence-transformers' multiple-negatives ranking loss
  over the shipped pairs in assets/sentences/contrastive_pairs.txt: mean-pooled embeddings, cosine
  similarity of every anchor with every positive scaled by 20, cross-entropy with the matching positive.
Both are a mean cross-entropy over rows of scores z (rows, classes), which is what the Gauss-Newton
product needs: G = J^T H_z J with H_z the softmax cross-entropy Hessian w.r.t. z.

Products are taken on a structural copy of the model (new module tree, shared parameter storage) through
torch.func.functional_call with the block's parameters as inputs, so the loaded model is never written to
and its modules are never swapped under another session. Two ways to take a product (``METHODS``):
- "double-backward": one forward and one create_graph backward per operator, kept; then one backward through
  that graph per product (Hessian: d(g . v)/dtheta; Gauss-Newton: J v as the u-derivative of J^T u, then J^T).
- "forward-mode": nothing second-order is kept. Hessian: forward-over-reverse, torch.func.jvp of
  torch.func.grad of the loss (one forward and one backward, each carrying a tangent, per product).
  Gauss-Newton: one JVP of the scores (a forward carrying a tangent), the closed-form softmax cross-entropy
  Hessian (p * u - p (p . u)) / rows, one VJP through the scores' retained first-order graph.
``DEFAULT_METHOD`` says which each kind uses and why (measured). The training what-if runs on a deep copy.

Blocks are chosen by parameter names, for any GPT-2, BERT or Llama-style naming: a layer is the number in
``.<L>.``; inside a layer, names with "attn"/"attention" are attention, "mlp"/"intermediate"/"output."
(BERT's MLP output)/"feed_forward" are the MLP, anything else (layer norms) belongs to the layer only.
Block specs: "all", "embeddings", "layer:L", "layer:L:attention", "layer:L:mlp", "param:<parameter name>".
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp

from explorer import tasks
from explorer.analysis.matrices import weight_matrices
from explorer.analysis.surgery import structural_copy
from explorer.errors import ExplorerError, InputError
from explorer.models import LoadedModel
from explorer.models.anatomy import anatomy_of
from explorer.models.capture import tokenize
from explorer.paths import ASSETS_DIR
from explorer.spectra.curvature import (
    PROBE_DEFAULTS,
    CancelCheck,
    ProbeOptions,
    Progress,
    SpectralDensity,
    TraceEstimate,
    dot64,
    hutchinson_trace,
    hutchpp_trace,
    lanczos_top_k,
    rademacher_into,
    seeded_generator,
    slq_density,
)
from explorer.spectra.heavy_tail import esd, fit_power_law
from explorer.spectra.ranks import stable_rank

PAIRS_FILE = ASSETS_DIR / "sentences" / "contrastive_pairs.txt"
# sentence-transformers' MultipleNegativesRankingLoss default: cosine similarity times 20.
MNRL_SCALE = 20.0
DEFAULT_MAX_TOKENS = 128
KINDS = ("hessian", "gauss-newton")
METHODS = ("double-backward", "forward-mode")
# Which product each kind takes by default, from measurement on SmolLM2 (all 134.5 M parameters, 128 tokens, CPU,
# fresh processes at load average 2; 2 products each):
# - Hessian: double backward, setup 1.5 s, 2.0-2.2 s a product, peak RSS 4.3 GiB; forward-over-reverse 3.4-4.2 s
#   a product, peak 6.8 GiB (plain torch.autograd.forward_ad cannot take it: no forward formula for
#   aten::silu_backward; torch.func.jvp over torch.func.grad can, at that cost). Under load 22-44 the gap was
#   wider (295 s against 733 s a product).
# - Gauss-Newton: forward-mode, setup 1.3 s, 1.7-2.2 s a product, peak 3.5 GiB; double backward setup 4.5 s (its
#   create_graph backward), 1.6-1.8 s a product, peak 4.5 GiB: about even per product, 3 s and 1 GiB less.
DEFAULT_METHOD = {"hessian": "double-backward", "gauss-newton": "forward-mode"}
LAYER_PARTS = ("attention", "mlp")


# ------------------------------------------------------------------------------------------------- loss


def contrastive_pairs() -> tuple[tuple[str, str], ...]:
    """16 (anchor, positive) sentence pairs written for this app, tab-separated in the asset file."""
    pairs = []
    for line in PAIRS_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip():
            anchor, positive = line.split("\t")
            pairs.append((anchor.strip(), positive.strip()))
    return tuple(pairs)


@dataclass(frozen=True)
class LossSpec:
    """What the loss is evaluated on. kind: "causal-lm" or "contrastive". inputs: keyword tensors for the
    model's forward (input_ids of shape (batch, token), attention_mask ...). n_tokens: tokens the loss
    sees (text tokens, or non-padding tokens of all sentences). description: one sentence for the page."""

    kind: str
    inputs: dict = field(hash=False)
    n_tokens: int
    description: str


def make_loss(loaded: LoadedModel, text: str | None = None, max_tokens: int = DEFAULT_MAX_TOKENS) -> LossSpec:
    """The loss for ``loaded``: next-token cross-entropy on ``text`` (causal LMs, first ``max_tokens``
    tokens), else the contrastive loss on the shipped pairs (``text`` is not used)."""
    device = loaded.device
    if loaded.causal:
        ids, _n, _messages = tokenize(loaded, text or "", max_tokens)
        if len(ids) < 2:
            raise InputError(
                "The loss needs at least two tokens (one next-token prediction): type more text."
            )
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        return LossSpec(
            "causal-lm",
            {"input_ids": input_ids},
            len(ids),
            f"Mean next-token cross-entropy (nats) over {len(ids) - 1} predictions on {len(ids)} tokens.",
        )
    pairs = contrastive_pairs()
    sentences = [a for a, _ in pairs] + [p for _, p in pairs]
    limit = max(2, min(max_tokens, loaded.card.max_positions))
    enc = loaded.tokenizer(sentences, padding=True, truncation=True, max_length=limit, return_tensors="pt")
    inputs = {
        k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")
    }
    n_tokens = int(inputs["attention_mask"].sum())
    return LossSpec(
        "contrastive",
        inputs,
        n_tokens,
        f"Multiple-negatives ranking loss (nats) over {len(pairs)} sentence pairs ({n_tokens} tokens): "
        f"cosine similarity x {MNRL_SCALE:g} of mean-pooled embeddings, cross-entropy with the true pair.",
    )


def scores_and_targets(
    model: torch.nn.Module, spec: LossSpec, params: dict[str, torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores z of shape (rows, classes) and integer targets of shape (rows,): loss = mean CE(z, targets).

    ``params`` replaces those parameters of ``model`` for this call (functional_call; ties kept)."""

    def forward(**kwargs):
        if params is None:
            return model(**kwargs)
        return functional_call(model, params, args=(), kwargs=kwargs, tie_weights=True, strict=False)

    if spec.kind == "causal-lm":
        out = forward(**spec.inputs, use_cache=False)
        logits = getattr(out, "logits", None)
        if logits is None:
            raise ExplorerError(
                "This causal model was loaded without its language-model head: no loss to curve."
            )
        ids = spec.inputs["input_ids"]
        return logits[0, :-1], ids[0, 1:]
    out = forward(**spec.inputs)
    hidden = out.last_hidden_state  # (2 * pairs, token, d)
    mask = spec.inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    half = pooled.shape[0] // 2
    anchors = F.normalize(pooled[:half], dim=-1)
    positives = F.normalize(pooled[half:], dim=-1)
    scores = MNRL_SCALE * anchors @ positives.T
    return scores, torch.arange(half, device=scores.device)


def loss_value(model: torch.nn.Module, spec: LossSpec) -> float:
    """The loss (nats) at the model's current weights."""
    with torch.no_grad():
        z, y = scores_and_targets(model, spec)
        return float(F.cross_entropy(z.double(), y))


# ----------------------------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class _ParamLayout:
    """Where each parameter sits, from the model's anatomy: layer (None outside the blocks), part ("attention",
    "mlp" or "other" inside a block), and the embedding parameters."""

    layer: dict[str, int | None]
    part: dict[str, str]
    embeddings: frozenset[str]
    n_layers: int


def _layout(model: torch.nn.Module) -> _ParamLayout:
    anatomy = anatomy_of(model)
    layer: dict[str, int | None] = {}
    part: dict[str, str] = {}
    for name, _ in model.named_parameters():
        layer[name], part[name] = None, "other"
        for block in anatomy.blocks:
            if not name.startswith(block.block + "."):
                continue
            layer[name] = block.index
            if any(name.startswith(m + ".") for m in (block.attention, block.core)):
                part[name] = "attention"
            elif any(name.startswith(m + ".") for m in block.mlp):
                part[name] = "mlp"
            break
    embeddings = set()
    for module_name, module in model.named_modules():
        if isinstance(module, torch.nn.Embedding):
            embeddings.update(
                f"{module_name}.{p}" if module_name else p for p, _ in module.named_parameters()
            )
    # The embeddings' own norm (BERT's embeddings.LayerNorm) belongs with them.
    embeddings.update(n for n in layer if layer[n] is None and "embed" in n)
    return _ParamLayout(layer, part, frozenset(embeddings), anatomy.n_layers)


def param_group(name: str, layout: _ParamLayout) -> str:
    """The group a parameter belongs to: "embeddings", "layer L attention|mlp|other", or "other"."""
    layer = layout.layer.get(name)
    if layer is None:
        return "embeddings" if name in layout.embeddings else "other"
    return f"layer {layer} {layout.part[name]}"


@dataclass(frozen=True)
class Block:
    """A set of parameters. spec: the spec string. label: readable name. names: parameter names (model
    order). n_params: their total number of entries."""

    spec: str
    label: str
    names: tuple[str, ...]
    n_params: int


def select_block(model: torch.nn.Module, spec: str = "all") -> Block:
    """Parse a block spec (see the module docstring) into the parameter names it covers."""
    params = dict(model.named_parameters())
    layout = _layout(model)
    parts = spec.split(":", 2) if not spec.startswith("param:") else ["param", spec[len("param:") :]]
    if parts[0] == "all":
        names, label = list(params), "all parameters"
    elif parts[0] == "embeddings":
        names, label = [n for n in params if n in layout.embeddings], "embeddings"
    elif parts[0] == "layer" and len(parts) >= 2 and parts[1].isdigit():
        layer = int(parts[1])
        names = [n for n in params if layout.layer[n] == layer]
        label = f"layer {layer}"
        if len(parts) == 3:
            if parts[2] not in LAYER_PARTS:
                raise InputError(f"Unknown layer part '{parts[2]}': choose attention or mlp.")
            names = [n for n in names if layout.part[n] == parts[2]]
            label += f" {parts[2]}"
    elif parts[0] == "param" and parts[1] in params:
        names, label = [parts[1]], parts[1]
    else:
        raise InputError(
            f"Unknown parameter block '{spec}': use all, embeddings, layer:L, layer:L:attention, "
            "layer:L:mlp or param:<name>."
        )
    if not names:
        raise InputError(f"The block '{spec}' holds no parameters in this model.")
    return Block(spec, label, tuple(names), int(sum(params[n].numel() for n in names)))


def n_layers_of(model: torch.nn.Module) -> int:
    return _layout(model).n_layers


# -------------------------------------------------------------------------------------------- operator


def _grads(outputs, inputs, grad_outputs=None, create_graph=False) -> list[torch.Tensor]:
    """autograd.grad with zeros for inputs the outputs do not depend on."""
    outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    gos = grad_outputs if grad_outputs is None or isinstance(grad_outputs, (list, tuple)) else [grad_outputs]
    keep = [i for i, o in enumerate(outs) if o.requires_grad]
    if not keep:
        return [torch.zeros_like(x) for x in inputs]
    result = torch.autograd.grad(
        [outs[i] for i in keep],
        inputs,
        grad_outputs=None if gos is None else [gos[i] for i in keep],
        retain_graph=True,
        create_graph=create_graph,
        allow_unused=True,
    )
    return [torch.zeros_like(x) if g is None else g for g, x in zip(result, inputs, strict=True)]


class CurvatureOperator:
    """The Hessian (or Gauss-Newton matrix) of the loss w.r.t. one block's parameters at their current
    values, as a matvec on flat vectors of shape (n_params,) in the parameters' dtype (units: nats per
    parameter unit squared). ``method``: one of METHODS (default ``DEFAULT_METHOD[kind]``); both give the same
    matrix up to rounding. Holds the loss gradient, and for "double-backward" (and forward-mode Gauss-Newton's
    VJP) a retained autograd graph; drop the object to free them."""

    def __init__(
        self,
        model: torch.nn.Module,
        spec: LossSpec,
        block: Block,
        kind: str = "hessian",
        method: str | None = None,
    ):
        if kind not in KINDS:
            raise InputError(f"Unknown curvature '{kind}': choose one of {KINDS}.")
        method = DEFAULT_METHOD[kind] if method is None else method
        if method not in METHODS:
            raise InputError(f"Unknown product method '{method}': choose one of {METHODS}.")
        self.kind = kind
        self.method = method
        self.block = block
        self.spec = spec
        params = dict(model.named_parameters())
        self._shell = structural_copy(model)
        # The point of expansion without autograd history (forward-mode primals), and leaves for the graph.
        self._at = [params[n].detach() for n in block.names]
        self.theta = [p.detach().requires_grad_(True) for p in self._at]
        self.shapes = [p.shape for p in self.theta]
        self.numels = [p.numel() for p in self.theta]
        self.n = int(sum(self.numels))
        self.dtype = self.theta[0].dtype
        self.device = self.theta[0].device
        with torch.enable_grad():
            z, y = scores_and_targets(self._shell, spec, dict(zip(block.names, self.theta, strict=True)))
            loss = F.cross_entropy(z, y)
            self.loss = float(loss.detach())
            if kind == "hessian" and method == "double-backward":
                self._grad = _grads(loss, self.theta, create_graph=True)
            elif kind == "hessian":  # forward-over-reverse: the graph goes with z and loss
                self._grad = _grads(loss, self.theta)
            elif method == "double-backward":
                self._z = z
                self._p = torch.softmax(z.detach(), dim=-1)
                self._u = torch.zeros_like(z, requires_grad=True)
                self._jtu = _grads(z, self.theta, grad_outputs=self._u, create_graph=True)  # J^T u
                self._grad = _grads(loss, self.theta)
            else:  # forward-mode Gauss-Newton: z's first-order graph kept for the VJP
                self._z = z
                self._p = torch.softmax(z.detach(), dim=-1)
                self._grad = _grads(loss, self.theta)

    def _named(self, tensors) -> dict[str, torch.Tensor]:
        return dict(zip(self.block.names, tensors, strict=True))

    def _loss_at(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        z, y = scores_and_targets(self._shell, self.spec, params)
        return F.cross_entropy(z, y)

    def _scores_at(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return scores_and_targets(self._shell, self.spec, params)[0]

    def split(self, v: torch.Tensor) -> list[torch.Tensor]:
        """Flat (n,) -> one view per parameter, in the block's shapes."""
        return [part.view(shape) for part, shape in zip(v.split(self.numels), self.shapes, strict=True)]

    def flat(self, tensors) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    def gradient_parts(self) -> list[torch.Tensor]:
        """The loss gradient w.r.t. the block, one flat view per parameter (shapes (numel,), model order)."""
        return [g.detach().reshape(-1) for g in self._grad]

    def gradient(self) -> torch.Tensor:
        """The loss gradient w.r.t. the block, shape (n,)."""
        return torch.cat(self.gradient_parts())

    def probe_options(self, options: ProbeOptions = PROBE_DEFAULTS) -> ProbeOptions:
        """``options`` (seed, progress, cancel) with the operator's dtype and device: the solvers' vectors
        then match the parameters, and no product converts them."""
        return dataclasses.replace(options, dtype=self.dtype, device=self.device)

    def _product(self, v: torch.Tensor) -> list[torch.Tensor]:
        """H v (or G v) per parameter, in the block's shapes."""
        v = v.to(device=self.device, dtype=self.dtype).reshape(-1)
        tangent = self.split(v)
        if self.method == "forward-mode" and self.kind == "hessian":
            _g, hv = jvp(grad(self._loss_at), (self._named(self._at),), (self._named(tangent),))
            return [hv[name] for name in self.block.names]
        with torch.enable_grad():
            if self.kind == "hessian":
                return _grads(self._grad, self.theta, grad_outputs=tangent)
            if self.method == "double-backward":
                jv = _grads(self._jtu, [self._u], grad_outputs=tangent)[0]  # J v, shape of z
            else:
                with torch.no_grad():  # a tangent-carrying forward only: no graph recorded
                    _z, jv = jvp(self._scores_at, (self._named(self._at),), (self._named(tangent),))
            p = self._p
            hz = (p * jv - p * (p * jv).sum(-1, keepdim=True)) / p.shape[0]  # softmax-CE Hessian, mean rows
            return _grads(self._z, self.theta, grad_outputs=hz)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.flat(self._product(v))

    def into(self, v: torch.Tensor, out: torch.Tensor) -> None:
        """out <- H v for a flat (n,) ``out`` (a solver's basis row): concatenated straight into it, so a
        whole-model product needs no second 0.5 GB vector."""
        parts = [t.reshape(-1) for t in self._product(v)]
        if out.dtype == self.dtype and out.device == self.device:
            torch.cat(parts, out=out)
        else:
            out.copy_(torch.cat(parts))


# -------------------------------------------------------------------------------------------- analyses


@dataclass(frozen=True)
class TopEigen:
    """Top-k eigenvalues of one block's curvature.

    eigenvalues: ndarray (k,), descending, nats / (parameter unit)^2. residual_norms: ndarray (k,).
    history_ritz, history_residuals: ndarray (steps, k), per product (convergence plot). n_matvec: products.
    converged: residuals below tolerance. groups: names of parameter groups (model order). group_mass:
    ndarray (group, k), squared-norm share of each unit eigenvector per group (columns sum to 1).
    """

    eigenvalues: np.ndarray
    residual_norms: np.ndarray
    history_ritz: np.ndarray
    history_residuals: np.ndarray
    n_matvec: int
    converged: bool
    groups: tuple[str, ...]
    group_mass: np.ndarray


def group_mass(op: CurvatureOperator, model: torch.nn.Module, vectors: torch.Tensor):
    """(groups, ndarray (group, k)): share of each row of ``vectors`` (k, n) per parameter group."""
    layout = _layout(model)
    labels = [param_group(n, layout) for n in op.block.names]
    groups = tuple(dict.fromkeys(labels))
    mass = np.zeros((len(groups), vectors.shape[0]))
    for label, part in zip(labels, vectors.split(op.numels, dim=1), strict=True):
        mass[groups.index(label)] += (part.double() ** 2).sum(1).cpu().numpy()
    total = mass.sum(0, keepdims=True)
    return groups, mass / np.where(total > 0, total, 1.0)


def start_vector(op: CurvatureOperator, seed: int = 0, out: torch.Tensor | None = None) -> torch.Tensor:
    """Lanczos start for the top eigenvalues: unit(gradient) + unit(Rademacher), shape (n,); written into
    ``out`` (a solver's basis row, shape (n,), any dtype and device) when given: the signs are drawn into it and
    the gradient added parameter by parameter, so a whole-model start allocates no n-vector at all.

    The loss gradient lies largely in the top eigenspace of the Hessian (Gur-Ari, Roberts & Dyer 2018): on
    SmolLM2 (128 tokens) its Rayleigh quotient is 101 against lambda_max = 328, where a random vector's is
    tr(H) / n ~ 0; from it Lanczos needed 6 products where random starts needed 6-10. The random half keeps
    every eigendirection in the start (the gradient vanishes at a critical point and may miss some)."""
    if out is None:
        out = torch.empty(op.n, dtype=op.dtype, device=op.device)
    parts = op.gradient_parts()
    norm = float(np.sqrt(sum(dot64(g, g) for g in parts)))
    rademacher_into(out, seeded_generator(op.device, seed))
    if not (np.isfinite(norm) and norm > 0):
        return out
    out.mul_(1.0 / np.sqrt(op.n))  # ||signs|| = sqrt(n) exactly
    for g, row_part in zip(parts, out.split(op.numels), strict=True):
        row_part.add_(g.to(row_part.device), alpha=1.0 / norm)
    return out


def start_into(op: CurvatureOperator, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """``start_vector`` as a writer into the basis row it is given (``lanczos_top_k``'s callable v0)."""
    return functools.partial(start_vector, op, seed)


def within(options: ProbeOptions, start: float, end: float) -> ProbeOptions:
    """``options`` whose progress reports onto ``start..end`` of its own (``tasks.forward``): one stage of a
    longer run."""
    return dataclasses.replace(options, progress=tasks.forward(options.progress, start, end))


def top_eigenpairs(
    op: CurvatureOperator,
    k: int = 3,
    *,
    tol: float = 1e-4,
    max_matvec: int = 100,
    max_basis: int | None = None,
    v0: torch.Tensor | None = None,
    options: ProbeOptions = PROBE_DEFAULTS,
):
    """(LanczosResult with eigenvectors (k, n), the operator's device) for ``op``: largest algebraic. The
    default start is ``start_vector`` (gradient + random, from ``options.seed``). ``options``: seed, progress
    and cancel (dtype and device are the operator's: ``CurvatureOperator.probe_options``)."""
    options = op.probe_options(options)
    return lanczos_top_k(
        op,
        op.n,
        min(k, op.n),
        tol=tol,
        max_matvec=max_matvec,
        max_basis=max_basis,
        v0=start_into(op, options.seed) if v0 is None else v0,
        return_vectors=True,
        options=options,
    )


def top_eigen(op: CurvatureOperator, model: torch.nn.Module, k: int = 3, **kwargs) -> TopEigen:
    """Top-k eigenvalues of ``op`` with their convergence and where the eigenvectors live."""
    res = top_eigenpairs(op, k, **kwargs)
    groups, mass = group_mass(op, model, res.eigenvectors)
    return TopEigen(
        res.eigenvalues,
        res.residual_norms,
        res.history_ritz,
        res.history_residuals,
        res.n_matvec,
        res.converged,
        groups,
        mass,
    )


def block_trace(
    op: CurvatureOperator,
    n_probes: int = 16,
    method: str = "hutchinson",
    *,
    options: ProbeOptions = PROBE_DEFAULTS,
) -> TraceEstimate:
    """tr(H) of the block (nats / parameter unit^2) by Hutchinson (n_probes products) or Hutch++.
    ``options``: seed, progress and cancel (dtype and device are the operator's)."""
    if method == "hutchinson":
        return hutchinson_trace(op, op.n, n_probes, options=op.probe_options(options))
    if method == "hutch++":
        return hutchpp_trace(op, op.n, n_probes, options=op.probe_options(options))
    raise InputError(f"Unknown trace method '{method}': choose hutchinson or hutch++.")


def block_density(
    op: CurvatureOperator, n_probes: int = 2, steps: int = 30, *, options: ProbeOptions = PROBE_DEFAULTS
) -> SpectralDensity:
    """Spectral density of the block's curvature by stochastic Lanczos quadrature. ``options``: seed, progress
    and cancel (dtype and device are the operator's)."""
    return slq_density(op, op.n, n_probes=n_probes, steps=steps, options=op.probe_options(options))


@dataclass(frozen=True)
class CurvatureSummary:
    """Everything the report shows about one block. loss: nats. n_tokens: tokens the loss sees. block:
    spec. n_params: entries in the block. kind: "hessian" or "gauss-newton". eigen: TopEigen. trace:
    TraceEstimate. density: SpectralDensity. description: the loss in words."""

    loss: float
    n_tokens: int
    block: str
    n_params: int
    kind: str
    eigen: TopEigen
    trace: TraceEstimate
    density: SpectralDensity
    description: str


def curvature_summary(
    model: torch.nn.Module,
    spec: LossSpec,
    block: str = "all",
    *,
    kind: str = "hessian",
    k: int = 3,
    max_matvec: int = 60,
    trace_probes: int = 16,
    density_probes: int = 2,
    density_steps: int = 20,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
) -> CurvatureSummary:
    """Top-k eigenvalues, trace and spectral density of one block, on one retained graph."""
    chosen = select_block(model, block)
    op = CurvatureOperator(model, spec, chosen, kind)
    options = ProbeOptions(progress=progress, cancel=cancel)
    eigen = top_eigen(op, model, k, max_matvec=max_matvec, options=within(options, 0.0, 0.5))
    trace = block_trace(op, trace_probes, options=within(options, 0.5, 0.8))
    density = block_density(op, density_probes, density_steps, options=within(options, 0.8, 1.0))
    return CurvatureSummary(
        op.loss, spec.n_tokens, block, chosen.n_params, kind, eigen, trace, density, spec.description
    )


@dataclass(frozen=True)
class CurvatureGrid:
    """lambda_max and trace of every layer's attention and MLP blocks.

    layers: ndarray (layer,), the layer indices covered. parts: ("attention", "mlp"). lambda_max, trace,
    trace_stderr: ndarray (layer, part), nats / unit^2. n_params: ndarray (layer, part), int. loss: nats.
    kind: "hessian" or "gauss-newton"."""

    layers: np.ndarray
    parts: tuple[str, ...]
    lambda_max: np.ndarray
    trace: np.ndarray
    trace_stderr: np.ndarray
    n_params: np.ndarray
    loss: float
    kind: str

    def rows(self) -> list[dict]:
        """One dict per block: name ("layer L part"), lambda_max, trace, trace_stderr, n_params."""
        return [
            {
                "name": f"layer {layer} {part}",
                "lambda_max": float(self.lambda_max[i, j]),
                "trace": float(self.trace[i, j]),
                "trace_stderr": float(self.trace_stderr[i, j]),
                "n_params": int(self.n_params[i, j]),
            }
            for i, layer in enumerate(self.layers)
            for j, part in enumerate(self.parts)
        ]


def curvature_grid(
    model: torch.nn.Module,
    spec: LossSpec,
    *,
    kind: str = "hessian",
    trace_probes: int = 8,
    tol: float = 1e-3,
    max_matvec: int = 30,
    layers=None,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
) -> CurvatureGrid:
    """One operator per (layer, part): lambda_max by Lanczos and the Hutchinson trace. ``layers``: the
    layer indices to cover (default every layer)."""
    layers = np.arange(n_layers_of(model)) if layers is None else np.asarray(list(layers), dtype=int)
    shape = (len(layers), len(LAYER_PARTS))
    lam, tr, se = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    sizes = np.zeros(shape, dtype=np.int64)
    loss = float("nan")
    total = len(layers) * len(LAYER_PARTS)
    options = ProbeOptions(progress=progress, cancel=cancel)
    for i, layer in enumerate(layers):
        for j, part in enumerate(LAYER_PARTS):
            index = i * len(LAYER_PARTS) + j
            start, end = index / total, (index + 1) / total
            if progress is not None:
                progress(start, f"Curvature grid: layer {layer} {part}")
            try:
                block = select_block(model, f"layer:{layer}:{part}")
            except InputError:
                continue  # a layer without this part keeps NaN
            op = CurvatureOperator(model, spec, block, kind)
            loss = op.loss
            mid = (start + end) / 2
            res = lanczos_top_k(
                op, op.n, 1, tol=tol, max_matvec=max_matvec, v0=start_into(op),
                options=op.probe_options(within(options, start, mid)),
            )  # fmt: skip
            trace = hutchinson_trace(
                op, op.n, trace_probes, options=op.probe_options(within(options, mid, end))
            )
            lam[i, j], tr[i, j], se[i, j] = res.eigenvalues[0], trace.trace, trace.stderr
            sizes[i, j] = block.n_params
            del op
    if progress is not None:
        progress(1.0, "Curvature grid: done")
    return CurvatureGrid(layers, LAYER_PARTS, lam, tr, se, sizes, loss, kind)


# ---------------------------------------------------------------------------------- training what-if


@dataclass(frozen=True)
class TrainingRun:
    """N steps of full-batch training of one block on a deep copy of the model.

    loss: ndarray (steps + 1,), nats, before each step and after the last (shorter when the loss stopped
    being finite: then its last entry is inf or NaN). lambda_max: ndarray, same length, the block's top
    Hessian eigenvalue at the same points (nats / unit^2; NaN where the loss is not finite). eta: step size. threshold:
    2 / eta (GD's stability limit for lambda_max). optimizer: "gd" or "adam". block: spec.
    matrices: names of the block's 2-D weights. stable_rank_before/after, alpha_before/after: ndarray
    (matrix,), their stable rank and power-law alpha (ESD of W^T W / N; NaN where no fit).
    lambda_residual: ndarray like lambda_max, the Lanczos residual ||Hy - theta y|| of each recorded
    lambda_max (the true top eigenvalue is within it when converged; an unconverged Ritz value is a lower
    bound). lambda_converged: ndarray of bool, residual below tolerance within the product budget.
    """

    loss: np.ndarray
    lambda_max: np.ndarray
    eta: float
    threshold: float
    optimizer: str
    block: str
    matrices: tuple[str, ...]
    stable_rank_before: np.ndarray
    stable_rank_after: np.ndarray
    alpha_before: np.ndarray
    alpha_after: np.ndarray
    lambda_residual: np.ndarray
    lambda_converged: np.ndarray


def _matrix_spectra(model: torch.nn.Module, block: Block) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Names, stable ranks and alphas of the 2-D weights whose parameter lies in ``block``."""
    names = set(block.names)
    chosen = [m for m in weight_matrices(model) if f"{m.module}.weight" in names]
    sr, alpha = [], []
    for m in chosen:
        W = m.weight.detach().to("cpu", torch.float64)
        if not bool(torch.isfinite(W).all()):  # a run that blew up: no spectrum to read
            sr.append(float("nan"))
            alpha.append(float("nan"))
            continue
        S = torch.linalg.svdvals(W).numpy()
        sr.append(float(stable_rank(S)))
        alpha.append(float(fit_power_law(esd(S, m.shape)).alpha))
    return tuple(m.name for m in chosen), np.array(sr), np.array(alpha)


OPTIMIZERS = ("gd", "adam")


@dataclass(frozen=True)
class TrainingSettings:
    """What a training what-if runs: ``steps`` full-batch steps of size ``eta`` (parameter units per unit of
    gradient) with ``optimizer`` (one of OPTIMIZERS) on ``block`` (a block spec, see ``select_block``). A task
    spec's key in the ui (explorer/ui/curvature_cache.py)."""

    block: str = "all"
    steps: int = 10
    eta: float = 1e-3
    optimizer: str = "gd"


def train_what_if(
    model: torch.nn.Module,
    spec: LossSpec,
    settings: TrainingSettings = TrainingSettings(),
    *,
    max_matvec: int = 20,
    tol: float = 1e-3,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
) -> TrainingRun:
    """Train ``settings.block`` of a deep copy of ``model`` for ``settings.steps`` full-batch steps of size
    ``settings.eta``; at every iterate record the loss and the block's lambda_max (Lanczos warm-started from
    the previous top eigenvector: the top direction moves little per step, so a few products each; at most
    ``max_matvec`` products to ``tol``). A run whose loss stops being finite ends there (its arrays are
    shorter, the last loss non-finite, its lambda_max NaN). ``model`` itself is never written to. For Adam,
    2 / eta is shown for reference only (its stability is governed by the preconditioned Hessian)."""
    block, steps, eta, optimizer = settings.block, settings.steps, settings.eta, settings.optimizer
    if optimizer not in OPTIMIZERS:
        raise InputError(f"Unknown optimizer '{optimizer}': choose one of {OPTIMIZERS}.")
    if steps < 0 or not eta > 0:
        raise InputError("The step count must be >= 0 and the step size > 0.")
    trained = copy.deepcopy(model)
    chosen = select_block(trained, block)
    matrices, sr_before, alpha_before = _matrix_spectra(trained, chosen)
    params = dict(trained.named_parameters())
    block_params = [params[n] for n in chosen.names]
    adam = None
    if optimizer == "adam":
        adam = torch.optim.Adam(block_params, lr=eta)
    losses, lambdas, residuals, converged = [], [], [], []
    vector = None
    options = ProbeOptions(progress=progress, cancel=cancel)
    for t in range(steps + 1):
        start, end = t / (steps + 1), (t + 1) / (steps + 1)
        op = CurvatureOperator(trained, spec, chosen, "hessian")
        if not np.isfinite(op.loss):  # blown up: no curvature to measure, and no step to take from here
            losses.append(op.loss)
            lambdas.append(float("nan"))
            residuals.append(float("nan"))
            converged.append(False)
            if progress is not None:
                progress(1.0, f"Training what-if: the loss is not finite at step {t}: stopped")
            break
        res = lanczos_top_k(
            op, op.n, 1, tol=tol, max_matvec=max_matvec, v0=start_into(op) if vector is None else vector,
            return_vectors=True, options=op.probe_options(within(options, start, end)),
        )  # fmt: skip
        vector = res.eigenvectors[0]
        losses.append(op.loss)
        lambdas.append(float(res.eigenvalues[0]))
        residuals.append(float(res.residual_norms[0]))
        converged.append(bool(res.converged))
        if progress is not None:
            progress(end, f"Training what-if: step {t} of {steps}, loss {op.loss:.4f}")
        if t == steps:
            break
        grads = op.split(op.gradient())
        del op
        with torch.no_grad():
            if adam is None:
                for p, g in zip(block_params, grads, strict=True):
                    p.sub_(eta * g)
            else:
                for p, g in zip(block_params, grads, strict=True):
                    p.grad = g.clone()
                adam.step()
                adam.zero_grad(set_to_none=True)
    _, sr_after, alpha_after = _matrix_spectra(trained, chosen)
    return TrainingRun(
        np.array(losses),
        np.array(lambdas),
        float(eta),
        2.0 / eta,
        optimizer,
        block,
        matrices,
        sr_before,
        sr_after,
        alpha_before,
        alpha_after,
        np.array(residuals),
        np.array(converged, dtype=bool),
    )


# ------------------------------------------------------------------------ what the training run did

# The outcomes ``classify_training`` tells apart, in the order it tests them.
OUTCOMES = ("diverged", "catapult", "edge of stability", "sharpness reduced", "converged", "unsettled")


@dataclass(frozen=True)
class TrainingOutcome:
    """What a training run did against gradient descent's stability limit, read from its recorded numbers.

    kind: one of OUTCOMES. eta: the step. threshold: 2 / eta (nats / unit^2). start_ratio, end_ratio:
    eta * lambda_max at the first and last recorded step (above 2: past the limit). quadratic_factor:
    (1 - eta * lambda_max[0])^2, the factor by which one GD step multiplies the loss along the top
    eigenvector of a quadratic model with the starting Hessian. loss_start, loss_end, loss_peak: nats (the
    peak over the finite losses after the start; -inf when there are none). peak_step: its step. rises:
    steps where the loss went up by more than the tolerance. spiked: some loss rose above the start by more
    than the tolerance. lambda_start, lambda_end: the first and last finite lambda_max. lambda_peak,
    lambda_peak_step: the largest lambda_max and its step. lambda_low,
    lambda_high: lambda_max's range over the hovering window (the last half of the steps). hover_from: the
    window's first step. nonfinite_step: the first step whose loss is not finite, or -1. steps: steps taken
    (recorded points - 1)."""

    kind: str
    eta: float
    threshold: float
    start_ratio: float
    end_ratio: float
    quadratic_factor: float
    loss_start: float
    loss_end: float
    loss_peak: float
    peak_step: int
    rises: int
    spiked: bool
    lambda_start: float
    lambda_end: float
    lambda_peak: float
    lambda_peak_step: int
    lambda_low: float
    lambda_high: float
    hover_from: int
    nonfinite_step: int
    steps: int

    @property
    def past_limit(self) -> bool:
        """The run started with eta past 2 / lambda_max: a quadratic model diverges."""
        return self.start_ratio > 2.0


def classify_training(loss, lambda_max, eta: float, *, rise_tol: float = 1e-3, band: float = 0.1
                      ) -> TrainingOutcome:  # fmt: skip
    """Which of OUTCOMES a run of ``loss`` (nats) and ``lambda_max`` (nats / unit^2), arrays of shape
    (steps + 1,) recorded before each step and after the last, at step size ``eta`` is; the first that holds:

    - "diverged": the loss stopped being finite, or ended above its start and was still rising;
    - "catapult": the loss rose above its start for some steps, then fell below it, and lambda_max ended
      below 2 / eta (Lewkowycz et al. 2020);
    - "edge of stability": over the last half of the steps lambda_max stayed within ``band`` of 2 / eta,
      while the loss fell overall but not monotonically (Cohen et al. 2021);
    - "sharpness reduced": eta started past 2 / lambda_max, the loss never rose above its start and fell,
      and lambda_max ended below 2 / eta (Damian et al. 2022's self-stabilisation, without a spike);
    - "converged": eta started below 2 / lambda_max, lambda_max stayed below 2 / eta throughout, and the
      loss fell;
    - "unsettled": none of these within the steps run (e.g. lambda_max still above 2 / eta with the loss
      falling, or a spike not yet back below the start).

    A rise counts when it exceeds ``rise_tol`` times |loss[0]| (float32 losses round at ~1e-7 relative, so
    1e-3 is far above rounding and far below a spike worth the name)."""
    loss = np.asarray(loss, dtype=np.float64)
    lam = np.asarray(lambda_max, dtype=np.float64)
    if loss.ndim != 1 or loss.shape != lam.shape or loss.size < 2:
        raise InputError(
            "A run needs a loss and a λ_max for at least two points (one step), of equal length."
        )
    if not (np.isfinite(eta) and eta > 0) or not np.isfinite(loss[0]) or not np.isfinite(lam[0]):
        raise InputError("The step size and the starting loss and λ_max must be finite (and η > 0).")
    threshold = 2.0 / eta
    tol = rise_tol * max(abs(loss[0]), np.finfo(np.float64).tiny)
    bad = np.flatnonzero(~np.isfinite(loss))
    nonfinite = int(bad[0]) if bad.size else -1
    finite = loss[:nonfinite] if nonfinite >= 0 else loss
    lam_ok = lam[np.isfinite(lam)]
    after = finite[1:]
    peak_step = int(np.argmax(after)) + 1 if after.size else 0
    peak = float(after[peak_step - 1]) if after.size else float("-inf")
    rises = int(np.sum(np.diff(finite) > tol))
    spiked = bool(after.size and peak > loss[0] + tol)
    hover_from = (lam.size - 1) // 2 if lam.size > 2 else 0
    window = lam[hover_from:]
    window = window[np.isfinite(window)]
    low = float(window.min()) if window.size else float("nan")
    high = float(window.max()) if window.size else float("nan")
    end = float(finite[-1])
    lam_end = float(lam_ok[-1])
    lam_peak_step = int(np.nanargmax(lam))
    fell = end < loss[0] - tol

    if nonfinite >= 0 or (end > loss[0] + tol and finite.size > 1 and finite[-1] > finite[-2] + tol):
        kind = "diverged"
    elif spiked and fell and lam_end < threshold:
        kind = "catapult"
    elif window.size >= 2 and np.all(np.abs(window / threshold - 1.0) <= band) and fell and rises > 0:
        kind = "edge of stability"
    elif eta * lam[0] > 2.0 and not spiked and fell and lam_end < threshold:
        kind = "sharpness reduced"
    elif eta * lam[0] < 2.0 and np.all(lam_ok < threshold) and fell:
        kind = "converged"
    else:
        kind = "unsettled"
    return TrainingOutcome(
        kind, float(eta), threshold, float(eta * lam[0]), float(eta * lam_end), float((1 - eta * lam[0]) ** 2),
        float(loss[0]), float(loss[-1]) if nonfinite >= 0 else end, peak, peak_step, rises, spiked,
        float(lam[0]), lam_end, float(lam[lam_peak_step]), lam_peak_step, low, high, hover_from, nonfinite,
        int(loss.size - 1),
    )  # fmt: skip
