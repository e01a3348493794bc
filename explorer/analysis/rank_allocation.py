"""Rank choice for compression: the weight groups, a setting (rank per group, energy kept, or share of
parameters; uniform or greedily allocated) turned into a rank per matrix, parameter and byte counts, each group's
break-even rank, and the comparison of uniform and allocated ranks at one share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.analysis.lowrank import (
    Factorization,
    MatrixFactors,
)
from explorer.analysis.matrices import weight_matrices
from explorer.labels import WEIGHT_KIND_LABELS
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


BYTES_PER_PARAM = 2


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
