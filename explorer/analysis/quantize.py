"""Quantization what-ifs on the loaded model: the chosen weight groups quantized and de-quantized on a copy,
measured exactly as the low-rank what-ifs are (explorer.analysis.compression's EvalSet, Reference, evaluate).

Quality is measured in the model's own precision: each chosen matrix is replaced by dequant(quant(W)) in the
model's dtype. Storage counts real bytes: the quantized matrices' codes, scales and offsets
(explorer.spectra.quantization), every other parameter at fp16 (tied weights once), as the low-rank entries count.
The cached model is only read; copies share every tensor they do not replace.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from explorer.analysis.compression import (
    BYTES_PER_PARAM,
    BudgetAnswer,
    EvalSet,
    Point,
    Quality,
    RankSetting,
    Recipe,
    Reference,
    budget_answers,
    choose_ranks,
    evaluate,
    modules_holding,
    overall_best,
    overall_closest,
    within_budget,
)
from explorer.analysis.lowrank import Factorization
from explorer.analysis.matrices import weight_matrices
from explorer.analysis.quality import Budget
from explorer.analysis.surgery import (
    ConcatLinear,
    DenseLinear,
    set_submodule,
    structural_copy,
    tied_output_module,
)
from explorer.models.loading import LoadedModel
from explorer.spectra.quantization import (
    INT4_SCHEMES,
    INT8,
    QuantScheme,
    energy_rank_of,
    fake_quantize,
    quantize_factors,
    spectral_split,
)

# The residual split keeps the top singular directions holding this share of each matrix's energy (sum σ²).
RESIDUAL_ENERGY = 0.5


@dataclass(frozen=True)
class QuantOutcome:
    """One quantization what-if, measured.

    method: "int8", "int4-g32", "int4-g64-asym", "svd-residual-int4-g64", ... (QuantScheme.name, prefixed for
    the residual split). kinds: the weight groups quantized. bytes_chosen: storage of those matrices as
    quantized; bytes_chosen_fp16: the same matrices at fp16; bytes_model: the whole model's storage (the rest at
    fp16). weight_error: sum ||W - Q(W)||_F² / sum ||W||_F² over the chosen matrices. before/after: Quality of
    the original and of the quantized copy on the same EvalSet. ranks: matrix name -> r kept at fp16 (residual
    split only, else empty)."""

    method: str
    kinds: tuple[str, ...]
    bytes_chosen: int
    bytes_chosen_fp16: int
    bytes_model: int
    weight_error: float
    before: Quality
    after: Quality
    ranks: dict[str, int]


def model_fp16_bytes(loaded: LoadedModel) -> int:
    """The whole model at fp16, tied weights once."""
    return int(loaded.card.n_params) * BYTES_PER_PARAM


def with_weights_replaced(loaded: LoadedModel, replaced: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A structural copy of the cached model in which each matrix named in ``replaced`` (WeightMatrix.name ->
    new (out, in) weight) is swapped for a module computing with the new weight; everything else is shared.

    Handles Linear, Conv1D, GPT-2's fused q/k/v (the other parts stay as they are) and embeddings (a tied output
    layer follows its embedding)."""
    model = loaded.model
    clone = structural_copy(model)
    ref = next(model.parameters())
    for module_name, mats in modules_holding(model, replaced).items():
        original = model.get_submodule(module_name)
        bias = getattr(original, "bias", None)
        new = [replaced.get(m.name, m.weight).to(ref.device, ref.dtype) for m in mats]
        if isinstance(original, torch.nn.Embedding):
            embedding = torch.nn.Embedding.from_pretrained(
                new[0], freeze=True, padding_idx=original.padding_idx
            )
            set_submodule(clone, module_name, embedding)
            tied = tied_output_module(model, module_name)
            if tied is not None:
                set_submodule(
                    clone, tied, DenseLinear(new[0], getattr(model.get_submodule(tied), "bias", None))
                )
        elif len(mats) == 1:
            set_submodule(clone, module_name, DenseLinear(new[0], bias))
        else:  # fused q/k/v: one dense part per slice, outputs concatenated in order
            set_submodule(clone, module_name, ConcatLinear([DenseLinear(w) for w in new], bias))
    return clone.eval()


def _chosen(loaded: LoadedModel, kinds: tuple[str, ...]):
    mats = [m for m in weight_matrices(loaded.model) if m.kind in kinds]
    if not mats:
        raise ValueError(f"The model has no matrices of kinds {kinds}.")
    return mats


def _measure(
    loaded: LoadedModel,
    method: str,
    kinds: tuple[str, ...],
    replaced: dict[str, torch.Tensor],  # every matrix that changed: name -> its new (out, in) weight
    bytes_chosen: int,
    evalset: EvalSet,
    ref: Reference,
    ranks: dict[str, int],
) -> QuantOutcome:
    mats = {m.name: m for m in weight_matrices(loaded.model) if m.name in replaced}
    dropped = sum(float((mats[n].weight.double() - w.double()).square().sum()) for n, w in replaced.items())
    total = sum(float(m.weight.double().square().sum()) for m in mats.values())
    fp16 = sum(m.weight.numel() for m in mats.values()) * BYTES_PER_PARAM
    after = evaluate(loaded, with_weights_replaced(loaded, replaced), evalset, ref)
    return QuantOutcome(
        method=method,
        kinds=tuple(kinds),
        bytes_chosen=int(bytes_chosen),
        bytes_chosen_fp16=int(fp16),
        bytes_model=model_fp16_bytes(loaded) - fp16 + int(bytes_chosen),
        weight_error=dropped / total if total > 0 else 0.0,
        before=ref.quality,
        after=after,
        ranks=ranks,
    )


@torch.no_grad()
def quantize_weights(
    loaded: LoadedModel,
    kinds: tuple[str, ...],
    scheme: QuantScheme,
    evalset: EvalSet,
    ref: Reference,
    progress: Callable[[float, str], None] | None = None,
) -> QuantOutcome:
    """Every matrix of the chosen kinds quantized with ``scheme`` (round to nearest), measured on ``evalset``."""
    mats = _chosen(loaded, kinds)
    replaced, nbytes = {}, 0
    for i, mat in enumerate(mats):
        if progress is not None:
            progress(i / len(mats), f"{scheme.name}: {mat.name}")
        replaced[mat.name] = fake_quantize(mat.weight.detach(), scheme)
        nbytes += scheme.nbytes(tuple(mat.shape))
    return _measure(loaded, scheme.name, kinds, replaced, nbytes, evalset, ref, {})


def residual_rank(w: torch.Tensor, energy: float = RESIDUAL_ENERGY, share: float | None = None) -> int:
    """The rank r of the residual split of one (m, n) matrix ``w``: the energy rank of ``energy`` (the top σ²
    hold that share of sum σ²), or, with ``share``, the rank whose fp16 factors take that share of the matrix's
    fp16 parameters, r = floor(share · mn / (m + n)), at most min(m, n)."""
    m, n = w.shape
    if share is None:
        return energy_rank_of(torch.linalg.svdvals(w.double()), energy)
    return min(int(share * m * n / (m + n)), min(m, n))


@torch.no_grad()
def residual_split_weights(
    loaded: LoadedModel,
    kinds: tuple[str, ...],
    scheme: QuantScheme,
    evalset: EvalSet,
    ref: Reference,
    energy: float = RESIDUAL_ENERGY,
    share: float | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> QuantOutcome:
    """Each chosen matrix split W = W_r + R, W_r kept at fp16 as two factors, R quantized with ``scheme``.

    r is the energy rank of ``energy`` (the top σ² hold that share of sum σ²), or, with ``share``, the rank whose
    fp16 factors take that share of the matrix's fp16 parameters: r = floor(share · mn / (m + n))."""
    mats = _chosen(loaded, kinds)
    replaced, nbytes, ranks = {}, 0, {}
    for i, mat in enumerate(mats):
        if progress is not None:
            progress(i / len(mats), f"top directions + {scheme.name}: {mat.name}")
        w = mat.weight.detach()
        rank = residual_rank(w, energy, share)
        split = spectral_split(w, rank, scheme)
        replaced[mat.name] = split.dequantize(w.dtype)
        nbytes += split.nbytes
        ranks[mat.name] = rank
    return _measure(loaded, f"svd-residual-{scheme.name}", kinds, replaced, nbytes, evalset, ref, ranks)


@torch.no_grad()
def quantize_factored_weights(
    loaded: LoadedModel,
    factorization: Factorization,
    ranks: dict[str, int],
    scheme: QuantScheme,
    evalset: EvalSet,
    ref: Reference,
) -> QuantOutcome:
    """Low-rank factors A_k, B_k of the matrices in ``ranks`` (name -> k), each factor then quantized with
    ``scheme``: W ≈ dequant(A_k) dequant(B_k). Method name "<factorization method>+<scheme>"."""
    chosen = {f.name: f for f in factorization.matrices if f.name in ranks}
    replaced, nbytes = {}, 0
    for name, f in chosen.items():
        A, B = f.factors(ranks[name])
        fq = quantize_factors(A, B, scheme)
        replaced[name] = fq.dequantize(torch.float32)
        nbytes += fq.nbytes
    kinds = tuple(dict.fromkeys(f.kind for f in chosen.values()))
    outcome = _measure(
        loaded, f"{factorization.method}+{scheme.name}", kinds, replaced, nbytes, evalset, ref, {}
    )
    return outcome


def scheme_named(name: str) -> QuantScheme:
    """The scheme whose ``QuantScheme.name`` is ``name`` ("int8", "int4-g32", "int4-g64-asym")."""
    match = re.fullmatch(r"int(\d+)(?:-g(\d+))?(-asym)?", name)
    if match is None:
        raise ValueError(f"not a quantization scheme name: {name!r}")
    bits, group, asym = match.groups()
    return QuantScheme(int(bits), None if group is None else int(group), asym is None)


def series_name(scheme: QuantScheme) -> str:
    """The chart's series for a scheme: "int8", "4-bit, groups of 32", "4-bit + offset, groups of 32"."""
    if scheme.group_size is None:
        return f"int{scheme.bits}"
    offset = "" if scheme.symmetric else " + offset"
    return f"{scheme.bits}-bit{offset}, groups of {scheme.group_size}"


def is_own_grid(loaded: LoadedModel, scheme: QuantScheme) -> bool:
    """Whether ``scheme`` re-creates the grid the model's weights were stored on (GGUF Q4_1: 4 bits, an fp16
    scale and minimum per block of 32): then quantizing costs nothing, by construction."""
    q = loaded.anatomy.quantization
    return (
        q is not None
        and q.scheme == "Q4_1"
        and scheme.bits == q.bits
        and scheme.group_size == 32
        and not scheme.symmetric
    )


def tradeoff_point(loaded: LoadedModel, outcome: QuantOutcome, scheme: QuantScheme | None = None) -> Point:
    """A chart point from a quantization outcome (``scheme``: the plain scheme used, for its series name)."""
    series = series_name(scheme) if scheme is not None and outcome.method == scheme.name else outcome.method
    own = scheme is not None and outcome.method == scheme.name and is_own_grid(loaded, scheme)
    recipe = (
        Recipe("bits", scheme=outcome.method)
        if scheme is not None and outcome.method == scheme.name
        else Recipe()
    )
    return Point(series, outcome.method, outcome.bytes_model, outcome.after, recipe, on_own_grid=own)


@dataclass(frozen=True)
class SeriesAnswer:
    """The budget's answer within one series (one way of shrinking the model): ``best`` the smallest point
    within the budget (None when none fits), ``closest`` the point of the smallest loss; ``measured``: how many
    points of the series were measured; ``own_grid``: the series holds only points on the weights' own storage
    grid (left out of the answer over every method: their cost is zero by construction)."""

    series: str
    best: Point | None
    closest: Point | None
    measured: int
    own_grid: bool

    @property
    def point(self) -> Point | None:
        """What the row shows: the best point, else the closest."""
        return self.best if self.best is not None else self.closest


def answers_by_series(points: list[Point], before: Quality, budget: Budget) -> list[SeriesAnswer]:
    """One SeriesAnswer per series, in the order the series first appear in ``points``."""
    series: dict[str, list[Point]] = {}
    for p in points:
        series.setdefault(p.series, []).append(p)
    out = []
    for name, members in series.items():
        own = all(p.on_own_grid for p in members)
        pool = [replace(p, on_own_grid=False) for p in members] if own else members
        best, closest = within_budget(pool, before, budget)
        if own:  # shown for what it is, with its flag back on
            best = None if best is None else replace(best, on_own_grid=True)
            closest = None if closest is None else replace(closest, on_own_grid=True)
        out.append(SeriesAnswer(name, best, closest, len(members), own))
    return out


# ------------------------------------------------------------------------ the budget's fewer-bits points

# What "fewer bits" measures beside the low-rank sweep, on the page and in the report alike.
FEWER_BITS_SCHEMES = (INT8, *INT4_SCHEMES)
RESIDUAL_SCHEME = QuantScheme(4, 32)
RESIDUAL_SHARES = (
    0.1,
    0.25,
)  # of the dense parameters kept as fp16 top directions, on top of the 4-bit residual
FACTOR_SHARES = (0.95, 0.8, 0.5)  # SVD-LLM at these shares of break-even rank, each factor in int8
FEWER_BITS_STEPS = len(FEWER_BITS_SCHEMES) + len(RESIDUAL_SHARES) + len(FACTOR_SHARES)


def fewer_bits_points(
    loaded: LoadedModel,
    kinds: tuple[str, ...],
    evalset: EvalSet,
    ref: Reference,
    svdllm: Callable[[], Factorization],
    *,
    progress: Callable[[float, str], None] | None = None,
    publish: Callable[[Point], None] | None = None,
) -> list[Point]:
    """Every fewer-bits point the budget weighs, measured on ``evalset``: int8 per row, 4-bit in groups of
    32/64/128 (with and without an offset), the top directions at fp16 with a 4-bit residual, and SVD-LLM factors
    in int8 (``svdllm()`` gives the factors; called only when they are needed). ``publish`` sees each point as it
    is measured; ``progress(fraction, message)`` before each."""
    points: list[Point] = []

    def add(point: Point) -> None:
        points.append(point)
        if publish is not None:
            publish(point)

    def step(message: str) -> None:
        if progress is not None:
            progress(len(points) / FEWER_BITS_STEPS, message)

    for scheme in FEWER_BITS_SCHEMES:
        step(series_name(scheme))
        add(tradeoff_point(loaded, quantize_weights(loaded, kinds, scheme, evalset, ref), scheme))
    for share in RESIDUAL_SHARES:
        step(f"top directions ({share:.0%}) + 4-bit residual")
        out = residual_split_weights(loaded, kinds, RESIDUAL_SCHEME, evalset, ref, share=share)
        recipe = Recipe("residual", "svd", share, "uniform", RESIDUAL_SCHEME.name)
        add(Point("top directions fp16 + 4-bit residual", f"{out.method}, {share:.0%} at fp16",
                          out.bytes_model, out.after, recipe=recipe))  # fmt: skip
    fact = svdllm()
    for share in FACTOR_SHARES:
        step(f"SVD-LLM factors at {share:.0%}, in int8")
        ranks = choose_ranks(fact, RankSetting(mode="share", share=share))
        out = quantize_factored_weights(loaded, fact, ranks, INT8, evalset, ref)
        recipe = Recipe("factors", "svdllm", share, "uniform", INT8.name)
        add(Point("SVD-LLM factors in int8", f"SVD-LLM {share:.0%} of break-even, int8 factors",
                          out.bytes_model, out.after, recipe=recipe))  # fmt: skip
    return points


@dataclass(frozen=True)
class BudgetDecision:
    """The budget's two answers, as the page and the report give them.

    overall / overall_closest: the smallest point within the budget over every method (low rank, fewer bits,
    both, healed), or the point of the smallest loss when none fits; lowrank / lowrank_closest: the same over
    low rank alone (``BudgetAnswer`` of the method and allocation that wins); answers: each low-rank method and
    allocation's own answer."""

    overall: Point | None
    overall_closest: Point | None
    lowrank: BudgetAnswer | None
    lowrank_closest: BudgetAnswer | None
    answers: tuple[BudgetAnswer, ...]

    @property
    def lowrank_point(self) -> Point | None:
        """The low-rank answer's point: the best within the budget, else the closest."""
        if self.lowrank is not None:
            return self.lowrank.best
        return None if self.lowrank_closest is None else self.lowrank_closest.closest


def decide(
    sweep_points: list[Point],
    other_points: list[Point],
    before: Quality,
    budget: Budget,
    methods,
) -> BudgetDecision:
    """Both answers of the budget from the measured points: ``sweep_points`` (low rank) and ``other_points``
    (fewer bits, both, healed, already on the bytes/quality chart)."""
    answers = budget_answers(sweep_points, before, budget, methods)
    every = list(sweep_points) + list(other_points)
    overall, closest = within_budget(every, before, budget)
    return BudgetDecision(overall, closest, overall_best(answers), overall_closest(answers), answers)
