"""The budget search: one measured Point per setting of every method (low rank here; fewer bits, both and healed
in explorer.analysis.quantize / healing), the sweep over shares, and the answers within a quality Budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from explorer import tasks
from explorer.analysis.evaluation import EvalSet, Quality, Reference, evaluate_ranks
from explorer.analysis.lowrank import (
    METHOD_LABELS,
    Factorization,
)
from explorer.analysis.quality import Budget, quality_values
from explorer.analysis.rank_allocation import (
    ALLOCATIONS,
    RankSetting,
    calib_output_error,
    choose_ranks,
    group_params,
    model_bytes,
)
from explorer.labels import LOWRANK_METHOD_LABELS
from explorer.models.loading import LoadedModel

KEPT_SHARES = (0.95, 0.9, 0.8, 0.7, 0.5, 0.25)


# greedy-allocated ranks at every KEPT_SHARES: what the page's budget and the report's compression_budget weigh.
BUDGET_METHODS = ("svdllm", "asvd", "svd")


SWEEP_SHARES = (0.25, 0.5, 0.75, 1.0)


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
