"""The compression page's controller: its settings, the budget's rows over every method, what "Use these
settings" does, where the free controls open, and one free setting measured.

The page (pages/compression.py) draws; this module decides. Nothing here computes a number itself: low-rank
settings are measured by explorer.ui.compression_cache, fewer-bits and combined ones by
explorer.ui.quantization_cache, both on the same evaluation tokens the budget uses, so a budget row and the free
result for the same setting are two measurements of the same thing.

State: the free controls are page settings (explorer/ui/state.py, widget keys ``compression_<key>``). A visit
whose link names no free-control setting *follows the budget's answer*: the controls are set to the smallest
setting within the budget (or, when nothing fits, the closest) as it is measured, until the person moves a
control or presses a "Use these settings" button. A link with free-control settings opens exactly them, as
published links always did.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from explorer import tasks
from explorer.analysis import compression as comp
from explorer.analysis import export
from explorer.analysis import quantize as qz
from explorer.analysis.lowrank import ASVD_ALPHA, METHOD_LABELS, METHODS, RIDGE
from explorer.analysis.matrices import weight_matrices
from explorer.analysis.quality import Budget, Metric, headline_metric, metric_named, metrics_for
from explorer.errors import ExplorerError
from explorer.figures.compression import make_matrix_error_figure, make_rank_allocation_figure
from explorer.figures.quantization import make_tradeoff_figure
from explorer.models.choice import ModelChoice
from explorer.models.loading import LoadedModel
from explorer.report.decision import decision_csv, decision_html
from explorer.spectra.quantization import QuantScheme
from explorer.ui import compression_cache as cc
from explorer.ui import compression_text as words
from explorer.ui import quantization_cache as qc
from explorer.ui import task_view
from explorer.ui.cache import cached_model
from explorer.ui.state import Choice, Flag, Float, Int, PageState, Setting, Subset, link_value

CALIBRATION_SOURCES = {"shipped": "Shipped calibration set (≈900 words)", "text": "The current text"}
EVAL_SOURCES = {"text": "The current text (sidebar)", "heldout": "Shipped held-out passage (≈500 words)"}
STORE_LABELS = {
    "lowrank": "Low-rank factors (fp16)",
    "bits": "Fewer bits per weight",
    "factors": "Low-rank factors, stored in fewer bits",
    "residual": "Top directions at fp16 + the rest in fewer bits",
}
GROUP_SIZES = ("row", 128, 64, 32)  # "row": one scale per output row
# Stores built from a low-rank method's factors (the other two need no factorization).
FACTOR_STORES = ("lowrank", "factors")
FOLLOW_KEY = "compression_follow_answer"  # session: the free controls still follow the budget's answer
FOLLOWED_KEY = "compression_followed"  # session: the widget values the page last set while following
ROWS_KEY = "compression_budget_rows"  # session: the budget table's rows (plain dicts), for tests and exports
FREE_KEY = "compression_free_setting"  # session: current_free_setting()'s dict
DECISION_KEY = "compression_decision"  # session: the Decision the download buttons serve


@dataclass(frozen=True)
class Controls:
    """Every setting of the page, declared once for this model (ranks and groups depend on its shapes)."""

    page: PageState
    method: Setting
    groups: Setting
    mode: Setting
    energy: Setting
    share: Setting
    allocation: Setting
    calibration: Setting
    evaluation: Setting
    ranks: dict
    store: Setting
    bits: Setting
    qgroup: Setting
    offset: Setting
    healed: Setting
    budget_metric: Setting
    budget_values: dict
    budget_methods: Setting
    heal_steps: Setting
    heal_lr: Setting

    def free(self) -> tuple[Setting, ...]:
        """The free controls' settings (groups and calibration excluded: the budget measures them too)."""
        return (self.store, self.method, self.mode, self.energy, self.share, self.allocation, self.bits,
                self.qgroup, self.offset, self.healed, self.evaluation, *self.ranks.values())  # fmt: skip


def controls(shapes: dict, causal: bool) -> Controls:
    """The page's settings for a model whose groups have ``shapes`` (comp.kind_shapes)."""
    default_groups = [k for k in comp.DEFAULT_KINDS if k in shapes] or list(shapes)[:1]
    budget_names = tuple(m.name for m in metrics_for(causal))
    return Controls(
        page=PageState("compression"),
        method=Choice("comp_method", "svdllm", METHODS, key="method"),
        groups=Subset("comp_groups", default_groups, shapes, key="group"),
        mode=Choice("comp_mode", "share", comp.MODES, key="mode"),
        energy=Float("comp_energy", 0.9, 0.5, 0.995, key="energy"),
        share=Int("comp_share", 90, 5, 100, key="share"),
        allocation=Choice("comp_alloc", "uniform", comp.ALLOCATIONS, key="alloc"),
        calibration=Choice("comp_calib", "shipped", CALIBRATION_SOURCES, key="calib"),
        # A link without comp_eval has always meant the sidebar text: kept so published links open the same
        # view. A visit without free-control settings opens on the budget's answer, on the held-out passage.
        evaluation=Choice("comp_eval", "text", EVAL_SOURCES, key="eval"),
        ranks={
            kind: Int(f"comp_rank_{kind}", max(1, round(k_star / 2)), 1, max_rank, key=f"rank_{kind}")
            for kind, (_shape, k_star, max_rank) in shapes.items()
        },
        store=Choice("comp_store", "lowrank", STORE_LABELS, key="store"),
        bits=Choice("comp_bits", 8, (8, 4), key="bits"),
        qgroup=Choice("comp_qgroup", "row", GROUP_SIZES, key="qgroup"),
        offset=Flag("comp_offset", False, key="offset"),
        healed=Flag("comp_healed", False, key="healed"),
        budget_metric=Choice("budget_metric", budget_names[0], budget_names, key="budget_metric"),
        budget_values={
            "perplexity": Int("budget_ppl", 10, 1, 200, key="budget_ppl"),
            "kl": Float("budget_kl", 0.05, 1e-6, 2.0, key="budget_kl", digits=3),
            "cosine": Float("budget_cos", 0.99, 0.5, 0.9999, key="budget_cos", digits=4),
            "spearman": Float("budget_rho", 0.98, 0.5, 0.9999, key="budget_rho", digits=4),
        },
        budget_methods=Subset("budget_methods", list(METHODS), METHODS, key="budget_method"),
        heal_steps=Int("heal_steps", 30, 5, 200, key="heal_steps"),
        heal_lr=Choice("heal_lr", 1e-4, [1e-5, 3e-5, 1e-4, 3e-4, 1e-3], key="heal_lr"),
    )


def budget_of(metric: str, limit: float, causal: bool) -> Budget:
    """The budget a metric's name and the page's limit stand for (a ratio metric's limit is in percent)."""
    chosen = metric_named(metric, causal)
    return Budget(chosen, limit / 100 if chosen.compare == "ratio" else limit)


def limit_widget(name: str, causal: bool) -> tuple[str, dict]:
    """(label, number_input options) of the budget's limit on the metric called ``name``: "At most + (%)" for
    a ratio metric, "At most (unit)" for a lower-is-better value, "At least" for a higher-is-better one."""
    metric = metric_named(name, causal)
    if metric.compare == "ratio":
        return "At most + (%)", {"step": 1}
    if metric.better == "lower":
        return f"At most ({metric.unit})", {"step": 0.01, "format": "%.4f"}
    return "At least", {"step": 0.001, "format": "%.4f"}


def budget_line(budget: Budget, original: comp.Quality) -> tuple[float, str] | None:
    """The budget's edge on the Pareto chart, which plots the headline metric: None for another metric."""
    if budget.metric != headline_metric(original.causal):
        return None
    return budget.bound(original), "budget limit"


# ------------------------------------------------------------------------------------------ scope


@dataclass(frozen=True)
class Scope:
    """What the budget compresses and compares with. n_matrices: matrices of the chosen groups; blocks: the
    transformer blocks they lie in; params_chosen: their parameters (weights only); params_model: the whole
    model's (tied once); bytes_fp16/bytes_fp32: the whole model at 2 and 4 bytes per parameter; shipped: how the
    weights were stored before loading (e.g. "de-quantized from the 4-bit GGUF (Q4_1) ..."), None when floats."""

    kinds: tuple[str, ...]
    n_matrices: int
    blocks: tuple[int, ...]
    n_layers: int
    params_chosen: int
    params_model: int
    shipped: str | None

    @property
    def bytes_fp16(self) -> int:
        return self.params_model * comp.BYTES_PER_PARAM

    @property
    def bytes_fp32(self) -> int:
        return self.params_model * 4


def scope_of(loaded: LoadedModel, kinds: tuple[str, ...]) -> Scope:
    mats = [m for m in weight_matrices(loaded.model) if m.kind in kinds]
    blocks = tuple(sorted({m.layer for m in mats if m.layer is not None}))
    q = loaded.anatomy.quantization
    return Scope(
        kinds=tuple(kinds),
        n_matrices=len(mats),
        blocks=blocks,
        n_layers=loaded.card.n_layers,
        params_chosen=sum(m.weight.numel() for m in mats),
        params_model=int(loaded.card.n_params),
        shipped=None if q is None else q.describe(),
    )


# ------------------------------------------------------------------------------------------ budget rows


@dataclass(frozen=True)
class BudgetRow:
    """One row of "each method's answer": a series' SeriesAnswer, the recipe its button applies, and the key
    of that button."""

    answer: qz.SeriesAnswer
    key: str

    @property
    def point(self) -> comp.Point | None:
        return self.answer.point


def button_key(series: str) -> str:
    return "compression_use_" + re.sub(r"[^a-z0-9]+", "_", series.lower()).strip("_")


def budget_rows(points: list[comp.Point], before: comp.Quality, budget: Budget):
    """Every series measured (low rank by method and allocation, int8, 4-bit by group and offset, the
    combinations, healed), its answer within the budget, in the order measured."""
    return [BudgetRow(a, button_key(a.series)) for a in qz.answers_by_series(points, before, budget)]


def publish_rows(rows: list[BudgetRow], before: comp.Quality, budget: Budget) -> None:
    """The rows as plain dicts in the session (``compression_budget_rows``): what a test or an export reads."""
    st.session_state[ROWS_KEY] = [
        {
            "series": r.answer.series,
            "key": r.key,
            "recipe": dataclasses.asdict(r.point.recipe),
            "setting": r.point.setting,
            "bytes_model": r.point.bytes_model,
            "quality": dataclasses.asdict(r.point.quality),
            "fits": r.answer.best is not None,
            "loss": budget.loss(before, r.point.quality),
            "own_grid": r.answer.own_grid,
        }
        for r in rows
        if r.point is not None
    ]


# ------------------------------------------------------------------------------------------ applying


def appliable(recipe: comp.Recipe) -> bool:
    return recipe.store in comp.STORES


def apply(ctl: Controls, recipe: comp.Recipe) -> None:
    """Set the free controls to ``recipe`` (before they are drawn), measured on the held-out passage as the
    budget was."""
    page = ctl.page
    page.set(ctl.store, recipe.store)
    if recipe.store in FACTOR_STORES:
        page.set(ctl.method, recipe.method)
        page.set(ctl.allocation, recipe.allocation)
    if recipe.store != "bits":
        page.set(ctl.mode, "share")
        page.set(ctl.share, round(100 * recipe.share))
    page.set(ctl.healed, recipe.heal_steps > 0)
    if recipe.heal_steps > 0:
        page.set(ctl.heal_steps, recipe.heal_steps)
        page.set(ctl.heal_lr, recipe.heal_lr)
    if recipe.scheme:
        scheme = qz.scheme_named(recipe.scheme)
        page.set(ctl.bits, scheme.bits)
        page.set(ctl.qgroup, "row" if scheme.group_size is None else scheme.group_size)
        page.set(ctl.offset, not scheme.symmetric)
    page.set(ctl.evaluation, "heldout")


def use(ctl: Controls, recipe: comp.Recipe) -> None:
    """A "Use these settings" press: apply, and stop following the budget's answer."""
    st.session_state[FOLLOW_KEY] = False
    apply(ctl, recipe)


def still_following() -> bool:
    """Whether the free controls still follow the budget's answer now: False after a "Use these settings" press
    earlier in this same run (follow_answer's value is from before the buttons were drawn)."""
    return bool(st.session_state.get(FOLLOW_KEY, False))


def _widget_values(ctl: Controls) -> dict:
    return {ctl.page.key(s): st.session_state.get(ctl.page.key(s)) for s in ctl.free()}


def follow_answer(ctl: Controls, answer: comp.Point | None) -> bool:
    """On a visit that follows the budget's answer, set the free controls to ``answer`` (the smallest point
    within the budget, else the closest); returns whether this visit still follows. A visit stops following
    when its link names a free-control setting (on its first run), or once a free control was moved."""
    if FOLLOW_KEY not in st.session_state:
        st.session_state[FOLLOW_KEY] = not any(link_value(s.param) is not None for s in ctl.free())
    if not st.session_state[FOLLOW_KEY]:
        return False
    followed = st.session_state.get(FOLLOWED_KEY)
    if followed is not None:
        now = _widget_values(ctl)
        # Only controls that had a value when followed: one not drawn yet then (a first run that found the
        # answer already measured, e.g. on disk) takes its default when drawn, which is no person's move.
        if any(v is not None and now[k] is not None and now[k] != v for k, v in followed.items()):
            st.session_state[FOLLOW_KEY] = False  # the person moved a control: it is theirs now
            return False
    if answer is not None and appliable(answer.recipe):
        apply(ctl, answer.recipe)
        st.session_state[FOLLOWED_KEY] = _widget_values(ctl)
    return True


# ------------------------------------------------------------------------------------------ free setting


@dataclass(frozen=True)
class FreeSetting:
    """What the free controls chose. store: see STORE_LABELS; method and rank: the low-rank part ("lowrank",
    "factors"; "residual" uses plain-SVD directions at ``rank.share``); scheme: QuantScheme.name, "" for fp16;
    eval_source: "text" or "heldout"."""

    store: str
    method: str
    kinds: tuple[str, ...]
    rank: comp.RankSetting
    scheme: str
    calibration: cc.Calibration
    eval_source: str
    heal: tuple[int, float] | None = None  # (steps, lr) of a healing of these factors ("lowrank" only)

    @property
    def needs_factors(self) -> bool:
        return self.store in FACTOR_STORES

    def low_rank(self, model_key: ModelChoice) -> cc.LowRank:
        """The low-rank part of the setting on this model: what its factors, outcome and healing are keyed by."""
        return cc.LowRank(model_key, self.method, self.kinds, self.calibration, self.rank)


def scheme_of(bits: int, group, offset: bool) -> str:
    return QuantScheme(int(bits), None if group == "row" else int(group), not offset).name


@dataclass(frozen=True)
class FreeResult:
    """One free setting measured. bytes_model: the whole model's storage (chosen matrices as stored, every
    other parameter at fp16); bytes_original: the whole model at fp16; before/after: Quality of the original
    and of the compressed copy on the same tokens; n_tokens: how many; outcome: the low-rank Outcome
    ("lowrank"), rows: per-matrix ranks and errors (factor stores), quant: the QuantOutcome (other stores);
    healed: ``after`` is the healed copy's (False when the setting asks for a healing that has not run)."""

    setting: FreeSetting
    bytes_model: int
    bytes_original: int
    before: comp.Quality
    after: comp.Quality
    n_tokens: int
    outcome: comp.Outcome | None
    rows: tuple[comp.MatrixRow, ...]
    quant: qz.QuantOutcome | None
    healed: bool = False


def eval_tokens(source: str, text: str, max_tokens: int) -> tuple[str, int]:
    """(text, token cap) quality is measured on: the held-out passage at the budget's cap, or the sidebar's."""
    return (comp.heldout_text(), cc.BUDGET_TOKENS) if source == "heldout" else (text, max_tokens)


def eval_notes(source: str, evalset: comp.EvalSet) -> list[str]:
    """What to say about the tokens quality is measured on. The sidebar text's cut is the max-tokens setting's;
    the held-out passage's is the budget's fixed length, which no setting moves, so it is said as such."""
    if source != "heldout" or not evalset.messages:
        return list(evalset.messages)
    return [
        f"The held-out passage is measured on its first {cc.BUDGET_TOKENS} tokens, the budget's fixed length "
        "(the same tokens as every row above), whatever the sidebar's max-tokens setting."
    ]


def measure(model_key: ModelChoice, free: FreeSetting, text: str, max_tokens: int) -> FreeResult:
    """Measure ``free`` on (text, max_tokens) through the shared caches; factors must be ready for the factor
    stores (cc.has_factorization)."""
    original = cached_model(model_key).card.n_params * comp.BYTES_PER_PARAM
    args = (model_key, free.kinds)
    if free.store == "lowrank":
        out = cc.cached_outcome(free.low_rank(model_key), text, max_tokens)
        after = out.after
        # The healed copy measured again (same sizes: healing trains the factors, never resizes them).
        if free.heal is not None:
            healed = qc.healed_quality(free.low_rank(model_key), *free.heal, text, max_tokens)
            after = out.after if healed is None else healed
        return FreeResult(free, comp.model_bytes(out.params_model_after), original, out.before, after,
                          out.after.n_tokens, out, out.rows, None, after is not out.after)  # fmt: skip
    rows: tuple = ()
    if free.store == "bits":
        q = qc.cached_bits_outcome(*args, free.scheme, text, max_tokens)
    elif free.store == "residual":
        q = qc.cached_residual_outcome(*args, free.scheme, free.rank.share, text, max_tokens)
    else:
        q = qc.cached_factor_bits_outcome(free.low_rank(model_key), free.scheme, text, max_tokens)
        fact = cc.factorization(model_key, free.method, free.kinds, free.calibration)
        rows = comp.matrix_rows(fact, comp.choose_ranks(fact, free.rank))
    return FreeResult(free, q.bytes_model, original, q.before, q.after, q.after.n_tokens, None, rows, q)


def current_free_setting(result: FreeResult | None = None) -> dict | None:
    """The free setting as a plain dict (what an export or a decision report needs), with its measured quality:
    method ("lowrank" | "bits" | "factors" | "residual" store and the low-rank method), ranks per kind (rank
    mode) or share/energy, allocation, groups, bits, group size, offset, calibration source, evaluation passage,
    bytes and quality. Called with a result, it stores the dict in the session; without, it returns the dict the
    page last stored (None before the first free result)."""
    if result is None:
        return st.session_state.get(FREE_KEY)
    s = result.setting
    scheme = qz.scheme_named(s.scheme) if s.scheme else None
    low_rank = s.store != "bits"
    info = {
        "store": s.store,
        "store_label": STORE_LABELS[s.store],
        "method": s.method if s.store in FACTOR_STORES else ("svd" if s.store == "residual" else None),
        "groups": list(s.kinds),
        "rank_mode": s.rank.mode if low_rank else None,
        "ranks_per_kind": dict(s.rank.ranks) if low_rank and s.rank.mode == "rank" else None,
        "energy": s.rank.energy if low_rank and s.rank.mode == "energy" else None,
        "share_of_break_even": s.rank.share if low_rank and s.rank.mode == "share" else None,
        "allocation": s.rank.allocation if s.store in FACTOR_STORES else None,
        "ranks": {r.name: r.rank for r in result.rows}
        or (dict(result.quant.ranks) if result.quant is not None and result.quant.ranks else None),
        "bits": None if scheme is None else scheme.bits,
        "group_size": None if scheme is None else scheme.group_size,
        "offset": None if scheme is None else not scheme.symmetric,
        "scheme": s.scheme or None,
        "calibration": s.calibration.source if s.needs_factors and s.method != "svd" else None,
        "calibration_key": s.calibration.key() if s.needs_factors else None,
        "healed": {"steps": s.heal[0], "lr": s.heal[1]} if result.healed else None,
        "evaluation": s.eval_source,
        "n_tokens": result.n_tokens,
        "bytes_model": result.bytes_model,
        "bytes_original_fp16": result.bytes_original,
        "before": dataclasses.asdict(result.before),
        "after": dataclasses.asdict(result.after),
    }
    st.session_state[FREE_KEY] = info
    return info


def describe(result: FreeResult) -> str:
    """The free setting in words: "SVD-LLM (whitened) factors of mean rank 105 in fp16 for 90 MLP matrices",
    "Fewer bits per weight (int4-g32) for the MLP matrices", ..."""
    free = result.setting
    groups = words.groups_phrase(free.kinds)
    if free.store == "bits":
        return f"{STORE_LABELS['bits']} ({free.scheme}) for the {groups} matrices"
    if free.store == "residual":
        n = len(result.quant.ranks) if result.quant is not None else 0
        return (
            f"The top plain-SVD directions ({free.rank.share:.0%} of break-even rank) at fp16, the rest in "
            f"{free.scheme}, for {n} {groups} matrices"
        )
    ranks = [r.rank for r in result.rows]
    mean_rank = sum(ranks) / len(ranks) if ranks else 0
    stored = "fp16" if free.store == "lowrank" else free.scheme
    return (
        f"{METHOD_LABELS[free.method]} factors of mean rank {mean_rank:.0f} in {stored} for {len(ranks)} "
        f"{groups} matrices"
    )


# ------------------------------------------------------------------------------------------ the decision


def compression_builder(model_key: ModelChoice, result: FreeResult) -> Callable[[], export.Compression]:
    """A function that builds the free setting's exportable Compression from the objects the page measured it
    with (its factorization and ranks, its scheme, its healed copy), so the written weights are what the card
    measured. Looks them up now, in the script thread (they are ready: the card was measured); the returned
    function does the work (quantizing, slicing factors) without Streamlit, when a download asks for it. Never
    writes to the cached model."""
    loaded = cached_model(model_key)
    free = result.setting
    scheme = qz.scheme_named(free.scheme) if free.scheme else None
    if free.store == "bits":
        return lambda: export.quantized(loaded, free.kinds, scheme)
    if free.store == "residual":
        return lambda: export.residual_split(loaded, free.kinds, scheme, share=free.rank.share)
    fact = cc.factorization(model_key, free.method, free.kinds, free.calibration)
    ranks = comp.choose_ranks(fact, free.rank)
    if free.store == "factors":
        return lambda: export.quantized_factors(loaded, fact, ranks, scheme)
    if result.healed:
        healed = qc.finished_healing(free.low_rank(model_key), *free.heal)
        if healed is not None:  # the card showed the healed copy: export its own factors
            return lambda: export.from_factored_model(loaded, healed.model, f"{free.method}, healed")
        raise ExplorerError("The healing behind this card is no longer kept: run Heal again to export it.")
    return lambda: export.lowrank(loaded, fact, ranks)


def _metric_cells(quality: dict) -> dict:
    """The two quality numbers of a Quality dict: perplexity and KL (causal LM), or embedding cosine and
    similarity-ranking correlation (encoder)."""
    return {m.field: quality[m.field] for m in metrics_for(quality["causal"])}


def decision_rows(free: dict, description: str, fits: bool | None, budget_rows: list[dict]) -> list[dict]:
    """The decision's table (its CSV and the report's "compared settings"): the free setting first, then every
    budget row, each with its whole-model bytes and its two quality numbers as measured. fits: whether the free
    setting is within the budget (None when measured on the sidebar text, not the budget's passage)."""
    rows = [
        {
            "row": "this decision",
            "series": free["store_label"],
            "setting": description,
            "measured on": EVAL_SOURCES[free["evaluation"]],
            "tokens": free["n_tokens"],
            "bytes_model": free["bytes_model"],
            **_metric_cells(free["after"]),
            "within budget": fits,
        }
    ]
    rows += [
        {
            "row": "budget",
            "series": r["series"],
            "setting": r["setting"],
            "measured on": EVAL_SOURCES["heldout"],
            "tokens": r["quality"]["n_tokens"],
            "bytes_model": r["bytes_model"],
            **_metric_cells(r["quality"]),
            "within budget": r["fits"],
            "shipped grid": r["own_grid"],  # re-creates the weights' own grid: no cost by construction
        }
        for r in budget_rows
    ]
    return rows


@dataclass(frozen=True, eq=False)
class Decision:
    """One measured free setting, ready to download: the report's title, notes, setting (name -> value) and
    quality (export.quality_record: passage, tokens, each metric with its definition), the table's rows, the
    size/quality chart with the chosen point, and how to build the compressed weights on ``base``. The three
    downloads are methods (no arguments), so a download button can take them as deferred data."""

    title: str
    notes: tuple[str, ...]
    setting: dict
    quality: dict
    rows: tuple[dict, ...]
    figure: object  # plotly Figure
    base: LoadedModel
    build: Callable[[], export.Compression]
    file_stem: str
    manifest_setting: dict = field(default_factory=dict)

    def csv(self) -> str:
        return decision_csv(self.rows)

    def html(self) -> str:
        return decision_html(
            self.figure,
            self.rows,
            title=self.title,
            setting=self.setting,
            quality=self.quality,
            notes=self.notes,
        )

    def zip_bytes(self) -> bytes:
        """The compressed weights and manifest as one .zip (export.export_zip); seconds on SmolLM2."""
        return export.export_zip(
            self.build(), base=self.base, setting=self.manifest_setting, quality=self.quality
        )


def decision_of(
    model_key: ModelChoice,
    result: FreeResult,
    evalset: comp.EvalSet,
    eval_text: str,
    state: BudgetState,
    budget_line: tuple[float, str] | None,
) -> Decision:
    """The free result as a Decision. Cheap: nothing is quantized or rendered until a download asks."""
    loaded = cached_model(model_key)
    free = current_free_setting(result)
    description = describe(result)
    heldout = result.setting.eval_source == "heldout"
    where = "the shipped held-out passage" if heldout else "the sidebar text"
    quality = export.quality_record(
        result.before, result.after, evalset, eval_text, where, timed=result.setting.store == "lowrank"
    )
    # The budget's points were measured on the held-out passage: the chosen point joins them only when it was too.
    on_chart = heldout and bool(state.all_points)
    figure = make_tradeoff_figure(
        state.all_points if on_chart else [],
        original=state.original if on_chart else result.before,
        original_bytes=result.bytes_original,
        budget_line=budget_line if on_chart else None,
        current=comp.Point("this decision", description, result.bytes_model, result.after),
        measured_on=where,
    )
    fits = state.budget.fits(result.before, result.after) if heldout else None
    rows = decision_rows(free, description, fits, st.session_state.get(ROWS_KEY, []))
    setting = {"model": loaded.id, "decision": description}
    # Settings that do not apply to this store are None: left out of the report (the manifest keeps them).
    setting |= {
        k: v for k, v in free.items() if k not in ("before", "after", "store_label") and v is not None
    }
    return Decision(
        title=words.decision_title(loaded.id, description),
        notes=words.decision_notes(where, result.n_tokens, on_chart),
        setting=setting,
        quality=quality,
        rows=tuple(rows),
        figure=figure,
        base=loaded,
        build=compression_builder(model_key, result),
        file_stem=f"compression_decision_{re.sub(r'[^A-Za-z0-9.-]+', '_', loaded.id)}_{free['scheme'] or free['method']}",
        manifest_setting={**free, "decision": description},
    )


def draw_downloads(decision: Decision) -> None:
    """The three downloads of a decision. The report and the weights are built on click (deferred data: the
    report inlines plotly.js, ~5 MB; the weights take seconds), never on the way to the page's first draw."""
    st.session_state[DECISION_KEY] = decision
    st.markdown("**Download this decision**")
    downloads = (
        ("Report (HTML)", decision.html, "html", "text/html", "description",
         "One page that opens offline: the chart with this setting, the setting, the measured quality and how it "
         "was measured, and every setting the budget compared."),
        ("Table (CSV)", decision.csv(), "csv", "text/csv", "table",
         "This setting and every budget row: whole-model bytes and the measured quality."),
        ("Compressed weights (.zip)", decision.zip_bytes, "zip", "application/zip", "download",
         "compressed.safetensors (only the changed matrices, as measured) and a JSON manifest (base model, "
         "setting, measured quality). Built when you click: seconds on a big model."),
    )  # fmt: skip
    for column, (label, data, ext, mime, icon, help_text) in zip(st.columns(3), downloads, strict=True):
        column.download_button(label, data, file_name=f"{decision.file_stem}.{ext}", mime=mime,
                               key=f"compression_decision_{ext}", on_click="ignore", icon=f":material/{icon}:",
                               width="stretch", help=help_text)  # fmt: skip
    st.caption(words.LOAD_BACK_SENTENCE)


# ------------------------------------------------------------------------------------------ the budget's tasks


@dataclass(frozen=True)
class BudgetState:
    """Where the budget's measurements stand this run. points: low-rank sweep points so far; answers, best,
    closest: comp.budget_answers over them; chosen: the low-rank answer (best, else closest); all_points: every
    series on one chart (low rank, fewer bits, both, healed); overall/overall_closest: the answer over every
    method; rows: each series' answer; quant/sweep: the fewer-bits and sweep tasks' (spec, work) (None when not
    asked for); quant_job/job: their tasks; first_answer_pending: the fewer-bits comparison's first point is not
    in yet (the sweep waits for it); stopped: a person stopped the sweep (its points so far are kept on its
    task); heal_args: the low-rank answer as the healing task takes it, steps and lr aside (None without one);
    budget_tokens: the held-out passage's tokens."""

    budget: Budget
    original: comp.Quality
    budget_tokens: int
    points: list
    answers: tuple
    best: comp.BudgetAnswer | None
    closest: comp.BudgetAnswer | None
    chosen: comp.Point | None
    all_points: list
    overall: comp.Point | None
    overall_closest: comp.Point | None
    rows: list
    quant: tuple | None
    quant_job: object
    quant_points: list
    sweep: tuple | None
    job: object
    first_answer_pending: bool
    stopped: bool
    heal_args: cc.LowRank | None

    @property
    def quant_running(self) -> bool:
        return self.quant_job is not None and not self.quant_job.done

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done

    @property
    def answer_point(self) -> comp.Point | None:
        """What "Use these settings" applies and the free controls open on: within the budget, else closest."""
        return self.overall if self.overall is not None else self.overall_closest


# While the fewer-bits comparison's first point is not in, its watcher looks every second: that point is the
# budget card's first answer on a cold visit (a look is a dictionary read; the page reruns only when a point
# arrived); then every few seconds.
FIRST_POINT_POLL_SECONDS = 1.0
POLL_SECONDS = 3.0


def measure_budget(
    loaded: LoadedModel,
    model_key: ModelChoice,
    kinds: tuple[str, ...],
    calibration: cc.Calibration,
    methods: tuple[str, ...],
    budget: Budget,
    heal: tuple[int, float],
) -> BudgetState:
    """Start (or find) the budget's tasks in their order and collect what they measured so far. Quick work (a
    small model) finishes within the run; longer work runs in the background (the task layer's one rule) and
    ``watch_budget`` redraws the page as points arrive. The fewer-bits comparison goes first: its first point
    (int8: one quantization, one forward pass) answers the budget in seconds, and the low-rank sweep and
    factors, which take minutes and would share the CPU with it, start once that point is in."""
    quant = qc.comparison_task(model_key, kinds, calibration) if kinds else None
    quant_job = tasks.get(*quant) if quant is not None else None
    quant_points = qc.comparison_points(quant_job) if quant_job is not None and not _broken(quant_job) else []
    first_pending = quant_job is not None and not quant_job.done and not quant_points

    sweep = job = None
    if methods and not first_pending:
        try:
            sweep = cc.sweep_task(model_key, kinds, calibration, methods)
        except ExplorerError as err:
            st.error(str(err), icon=":material/error:")
            st.stop()
        job = tasks.get(*sweep)
    stopped = sweep is not None and tasks.stopped(sweep[0])

    original = task_view.watch(
        *cc.original_task(model_key),
        label="The original model on the held-out passage",
        failure="Measuring the original model failed; reload the page to retry.",
        wait=True,
        key="compression_original",
    )
    if original is None:
        st.stop()
    points = cc.sweep_points(job) if job is not None and not _broken(job) else []
    # The budget's answers come from quantize.decide, the function the report uses too: low rank alone first
    # (healing starts from its answer), then across every method with the healed point, once there is one.
    lowrank = qz.decide(points, [], original, budget, methods)
    answers, best, closest = lowrank.answers, lowrank.lowrank, lowrank.lowrank_closest
    chosen = lowrank.lowrank_point

    others = list(quant_points)
    heal_args = None
    if (
        chosen is not None
    ):  # healing (an explicit action) on the low-rank answer: its result is one more series
        setting = comp.RankSetting(mode="share", share=chosen.share, allocation=chosen.allocation)
        heal_args = cc.LowRank(model_key, chosen.method, kinds, calibration, setting)
        healed = qc.finished_healing(heal_args, *heal)
        if healed is not None:
            run = healed.run
            recipe = dataclasses.replace(chosen.recipe, heal_steps=int(heal[0]), heal_lr=float(heal[1]))
            setting_words = f"{chosen.setting}, healed ({run.steps} steps)"
            others.append(dataclasses.replace(chosen, series="healed low rank", setting=setting_words,
                                              quality=run.after, recipe=recipe))  # fmt: skip
    decision = qz.decide(points, others, original, budget, methods)
    overall, overall_closest = decision.overall, decision.overall_closest
    all_points = list(points) + others
    rows = budget_rows(all_points, original, budget)
    publish_rows(rows, original, budget)
    return BudgetState(
        budget, original, cc.budget_evalset(model_key).n_tokens, points, answers, best, closest, chosen,
        all_points, overall, overall_closest, rows, quant, quant_job, quant_points, sweep, job, first_pending,
        stopped, heal_args,
    )  # fmt: skip


def healing(heal_args: cc.LowRank, steps: int, lr: float, *, start) -> qc.Healed | None:
    """The healing of the low-rank answer: a "Heal" button (in ``start``) until someone asks for it, then its
    progress and "Stop healing" in a watcher that redraws on its own (a whole-page rerun every few seconds
    took the CPU and the GIL the training needs), then the Healed result."""
    if tasks.peek(qc.healing_spec(heal_args, steps, lr)) is None:
        if not start.button("Heal", key="compression_heal", icon=":material/healing:"):
            return None
        if tasks.start(*qc.healing_task(heal_args, steps, lr)).done:
            st.rerun()  # done within this run (a small model): the budget above draws the healed point
    return task_view.watch(
        *qc.healing_task(heal_args, steps, lr),
        label="Healing",
        failure="Healing failed",
        key="compression_healing",
        poll=POLL_SECONDS,
        cancel_label="Stop healing",
        restart_label="Heal again",
    )


def _broken(task) -> bool:
    """Failed by an error of its own (a cancelled task keeps its partial results)."""
    return task.failed and not task.cancelled


def watch_sweep(state: BudgetState) -> None:
    """The budget sweep's progress, "Stop the sweep" (its points so far stay on its task and keep answering)
    and "Run the sweep" after a stop; the page is redrawn as its points arrive."""
    if state.sweep is None:
        return
    task_view.watch(
        *state.sweep,
        label=f"Still measuring ({len(state.points)} points so far)",
        failure="The budget sweep failed",
        key="compression_sweep",
        redraw=True,
        poll=POLL_SECONDS,
        cancel_label="Stop the sweep",
        restart_label="Run the sweep",
        cancelled="The sweep was stopped: the answer covers the points measured before that.",
    )


def watch_fewer_bits(state: BudgetState) -> None:
    """The fewer-bits comparison's progress while it runs; the page is redrawn as its points arrive."""
    if state.quant is None:
        return
    label = "Still measuring: fewer bits first" + (", low rank next" if state.first_answer_pending else "")
    task_view.watch(
        *state.quant,
        label=label,
        failure="The fewer-bits comparison failed",
        key="compression_fewer_bits",
        redraw=True,
        poll=FIRST_POINT_POLL_SECONDS if not state.quant_points else POLL_SECONDS,
    )


def draw_rows(ctl: Controls, state: BudgetState, causal: bool) -> None:
    """Each method's answer: one row per series with its size, quality, cost and its own button."""
    widths = [2.8, 0.8, 0.9, 2.2, 1.0, 1.7]  # the last: room for its button's label
    labels = ("setting", "size", "perplexity" if causal else "embedding cosine", "cost in the budget's metric",
              "within budget", "")  # fmt: skip
    for col, label in zip(st.columns(widths), labels, strict=True):
        if label:
            col.markdown(f"**{label}**")
    for row in state.rows:
        point, answer = row.point, row.answer
        cells = st.columns(widths, vertical_alignment="center")
        cells[0].markdown(
            f"{words.setting_phrase(point)}  \n:gray[{answer.series}, {answer.measured} measured]"
        )
        cells[1].markdown(words.size_phrase(point.bytes_model))
        cells[2].markdown(words.quality_value(point.quality))
        cells[3].markdown(state.budget.cost(state.original, point.quality))
        cells[4].markdown(
            "shipped grid" if answer.own_grid else ("yes" if answer.best is not None else "no: closest")
        )
        if not appliable(point.recipe):
            cells[5].caption("see Heal below")
        elif cells[5].button("Use these settings", key=row.key, width="stretch"):
            use(ctl, point.recipe)
    st.caption(
        "Each row: the smallest setting of that kind within your budget, else its closest. A button sets the "
        "free controls below to exactly that setting, measured on the same held-out passage."
        + (
            " The shipped grid row re-creates the 4-bit grid the weights were stored on: it costs nothing by "
            "construction and is left out of the answer."
            if any(r.answer.own_grid for r in state.rows)
            else ""
        )
    )


# ------------------------------------------------------------------------------------------ the free result


# A factorization that finishes within this wait (factors read back from disk: 0.2-1.5 s) is drawn in the
# same run; a longer one (computed: a minute or more on SmolLM2) in the background.
FACTORS_GRACE_SECONDS = 3.0


def factors_ready(model_key: ModelChoice, free: FreeSetting, first_pending: bool) -> bool:
    """Whether the free setting's factors are there (in memory or on disk, or computed within the run when
    that is quick); otherwise draws why not (with a watcher that redraws the page once they are) and returns
    False."""
    if not free.needs_factors or cc.has_factorization(model_key, free.method, free.kinds, free.calibration):
        return True
    if first_pending:
        st.info(
            "Measuring the first answer above (seconds); the factors for this card are computed next.",
            icon=":material/hourglass_top:",
        )
        return False
    spec, work = cc.factorization_task(model_key, free.method, free.kinds, free.calibration)
    task = tasks.get(spec, work)
    if task.wait(FACTORS_GRACE_SECONDS) and task.succeeded:
        return True
    # The first time, a big model's factors take a minute or more: waiting here would also freeze the budget
    # answer above (its watchers run only between script runs), so draw and watch.
    found = task_view.watch(
        spec,
        work,
        label="Factorizing the chosen matrices (first time only; kept on disk)",
        failure="Factorizing the chosen matrices failed; reload the page to retry",
        key="compression_factors",
    )
    if found is None and not task.done:
        st.caption("This card appears when they are ready; the budget answer above updates meanwhile.")
    return found is not None


def free_controls(ctl: Controls, shapes: dict, text: str, max_tokens: int) -> FreeSetting | None:
    """Draw the free controls (store, method, groups, ranks, bits, calibration, evaluation) where the caller
    is, and return the setting they choose (None when no group is ticked)."""
    page = ctl.page
    store = page.radio(
        ctl.store,
        "Store the chosen matrices as",
        format_func=STORE_LABELS.get,
        help="Low rank: two thin factors per matrix. Fewer bits: every weight rounded to a coarser grid. "
        "Both: the factors rounded, or the top singular directions kept exact and the rest rounded.",
    )
    lowrank_store = store in FACTOR_STORES
    method = page.bind(ctl.method, link=lowrank_store)
    if lowrank_store:
        method = page.radio(
            ctl.method,
            "Method",
            format_func=METHOD_LABELS.get,
            help="Plain SVD keeps the directions of largest weight. ASVD and SVD-LLM weigh them by how the "
            "calibration text actually uses each input, which is what keeps the model working.",
        )
    st.markdown("**Weight groups to compress**")
    kinds = page.checkboxes(
        ctl.groups, lambda kind: f"{comp.GROUP_LABELS[kind]} ({shapes[kind][0][0]}×{shapes[kind][0][1]})"
    )
    # Every hidden setting keeps its value (a link's value survives a trip through another store or mode);
    # only the shown widgets' values are in the link.
    mode = page.bind(ctl.mode, link=lowrank_store) if lowrank_store else "share"
    ranks = {
        kind: page.bind(setting, link=lowrank_store and mode == "rank" and kind in kinds)
        for kind, setting in ctl.ranks.items()
    }
    energy = page.bind(ctl.energy, link=lowrank_store and mode == "energy")
    share = page.bind(ctl.share, link=store != "bits" and mode == "share")
    allocation = page.bind(ctl.allocation, link=lowrank_store)
    if lowrank_store:
        mode = page.radio(ctl.mode, "Choose ranks by", format_func=comp.MODE_LABELS.get)
    if store != "bits" and mode == "rank":
        for kind in kinds:
            (m, n), k_star, max_rank = shapes[kind]
            ranks[kind] = page.slider(
                ctl.ranks[kind],
                f"{comp.GROUP_LABELS[kind]} rank",
                help=f"{m}×{n}: break-even rank k* = mn/(m+n) = {k_star:.0f}; above it nothing is saved, so the "
                f"slider stops at {max_rank}.",
            )
    elif store != "bits" and mode == "energy":
        energy = page.slider(
            ctl.energy,
            "Energy kept p",
            step=0.005,
            help="Each matrix keeps the smallest rank k_p whose singular values hold this share of "
            "sum σ² (of the method's own matrix: W, W·D or W·L).",
        )
    elif store != "bits":
        share = page.slider(
            ctl.share,
            "Directions kept at fp16 (% of break-even rank)"
            if store == "residual"
            else "Parameters kept per matrix (%)",
            step=5,
            help="Rank k = share × mn/(m+n), so each factored matrix holds about this share of its numbers. "
            "100 % is the break-even rank: nothing saved.",
        )
    if lowrank_store:
        allocation = page.radio(
            ctl.allocation,
            "Ranks",
            format_func=comp.ALLOCATION_LABELS.get,
            help="Allocated: the same number of factor parameters, spent where each parameter lowers the error "
            "on the calibration activations most (greedy over every matrix's next component).",
        )
    bits = page.bind(ctl.bits, link=store != "lowrank")
    qgroup = page.bind(ctl.qgroup, link=store != "lowrank")
    offset = page.bind(ctl.offset, link=store != "lowrank")
    if store != "lowrank":
        bits = page.select_slider(ctl.bits, "Bits per weight", options=[4, 8])
        qgroup = page.select_slider(
            ctl.qgroup,
            "Weights per scale",
            options=list(GROUP_SIZES),
            format_func=lambda g: "a whole row" if g == "row" else f"groups of {g}",
            help="Each group of consecutive input columns gets its own fp16 scale: smaller groups fit the grid "
            "closer and store more scales.",
        )
        offset = page.checkbox(
            ctl.offset, "With an offset", help="A per-group fp16 minimum as well (GGUF's Q4_1 stores one)."
        )
    can_heal = store == "lowrank" and mode == "share"  # healing trains a share setting's factors
    healed = page.bind(ctl.healed, link=can_heal)
    if can_heal:
        steps, lr = page.bind(ctl.heal_steps), page.bind(ctl.heal_lr)
        healed = page.checkbox(
            ctl.healed,
            f"Healed factors ({steps} steps, step size {lr:g})",
            help="The factors after the healing section's training (steps and step size are set there); "
            "run it there first.",
        )
    calib = page.radio(
        ctl.calibration, "Calibration text (ASVD, SVD-LLM)", format_func=CALIBRATION_SOURCES.get
    )
    eval_source = page.radio(ctl.evaluation, "Measure quality on", format_func=EVAL_SOURCES.get)
    with st.expander("How the methods work"):
        st.markdown(
            "Every low-rank method keeps k directions U_k of each matrix's output and stores W_k = U_k (U_kᵀW): "
            "k(m+n) numbers instead of mn.\n\n"
            "- **Plain SVD**: U = singular vectors of W (Eckart-Young: the smallest ‖W−W_k‖ possible).\n"
            f"- **ASVD**: singular vectors of W·diag(mean|x|^{ASVD_ALPHA}), x = the calibration inputs.\n"
            "- **SVD-LLM**: singular vectors of W·L, L Lᵀ = XᵀX + λI (Cholesky, "
            f"λ = {RIDGE:g} × mean diagonal): the smallest ‖(W−W_k)X‖ on the calibration text.\n"
            "- **Fewer bits**: round to nearest on a grid per row or per group (scale = max|w| / (2^(b−1)−1); "
            "with an offset, (max − min) / (2^b − 1) from the minimum). Storage counts the codes, scales and "
            "offsets.\n\n"
            "Factors are computed once per model, method, calibration and groups and kept on disk (they "
            "survive a restart); moving a slider only slices them and re-runs the model."
        )

    # Only the active mode's value enters the setting, so hidden sliders never split the cache.
    rank_setting = comp.RankSetting(
        mode=mode,
        ranks=tuple((k, int(ranks[k])) for k in shapes if k in kinds) if mode == "rank" else (),
        energy=float(energy) if mode == "energy" else 0.9,
        share=int(share) / 100 if mode == "share" else 0.5,
        allocation=allocation if lowrank_store else "uniform",
    )
    if not kinds:
        return None
    kinds = tuple(k for k in shapes if k in kinds)
    return FreeSetting(
        store=store,
        method=method if lowrank_store else ("svd" if store == "residual" else ""),
        kinds=kinds,
        rank=rank_setting,
        scheme="" if store == "lowrank" else scheme_of(bits, qgroup, offset),
        calibration=cc.Calibration(calib, text, max_tokens) if calib == "text" else cc.Calibration(),
        eval_source=eval_source,
        heal=(page.bind(ctl.heal_steps), page.bind(ctl.heal_lr)) if can_heal and healed else None,
    )


GENERATION_TOKENS = 32
# The free card's quality metrics: metric name -> (label, help; {n}: the shipped sentences' count).
CARD_METRICS = {
    "perplexity": ("Perplexity", "Lower is better. exp(mean next-token loss) on the evaluated tokens: roughly how "
                   "many words the model hesitates between."),
    "kl": ("KL divergence (nats/token)", "Mean KL(original ‖ compressed) of the next-token distributions: 0 = the "
           "compressed copy predicts exactly like the original; 1 nat/token ≈ its predictions are often different."),
    "cosine": ("Embedding cosine", "1 = unchanged. Mean cosine between original and compressed mean-pooled "
               "embeddings of the text and {n} shipped sentences."),
    "spearman": ("Similarity ranking", "Spearman correlation between the original and compressed pairwise cosine "
                 "similarities of the {n} shipped sentences: 1 = every pair ranked the same."),
}  # fmt: skip


def card_metric(col, label: str, value: str, delta: str | None, before: str, help_text: str,
                inverse: bool = True) -> None:  # fmt: skip
    """One metric of the free card in ``col``: its value, its change (``inverse``: a rise drawn red) and the
    original's value under it."""
    col.metric(label, value, delta, delta_color="inverse" if inverse else "normal", help=help_text)
    col.caption(f"before: {before}")


def quality_metric(col, metric: Metric, before: comp.Quality, after: comp.Quality, n_sentences: int) -> None:
    """One quality metric of the free card in ``col``: its value, its change against the original (the ratio
    for a ratio metric, the difference from the original's value otherwise; none when the original's value is
    0, where the value is the change) and the original's value under it."""
    label, help_text = CARD_METRICS[metric.name]
    value = metric.value(after)
    if metric.compare == "ratio":
        delta, was = f"×{value / metric.value(before):.4g}", metric.formatted(metric.value(before))
    else:
        delta, was = (None if metric.origin == 0 else f"{value - metric.origin:+.4f}"), f"{metric.origin:g}"
    card_metric(col, label, metric.formatted(value), delta, was, help_text.format(n=n_sentences),
                inverse=metric.better == "lower")  # fmt: skip


def draw_free_card(
    result: FreeResult, evalset: comp.EvalSet, model_key: ModelChoice, note: str | None
) -> None:
    """The headline card of the free setting: sentences, then size and quality metrics."""
    free, before, after = result.setting, result.before, result.after
    where = "the held-out passage" if free.eval_source == "heldout" else "the text"
    with st.container(border=True):
        for sentence in words.free_sentences(
            describe(result), result.bytes_model, result.bytes_original, before, after, where
        ):
            st.markdown(f"##### {sentence}")
        if note:
            st.caption(note)
        if free.heal is not None:
            st.caption(
                f"Healed factors ({free.heal[0]} steps, step size {free.heal[1]:g}), measured again here."
                if result.healed
                else "This setting has not been healed with these steps and step size yet (Heal above): "
                "the factors as computed."
            )
        # Two rows of three: five metrics side by side beside the controls truncate their values ("102.…").
        cols = [*st.columns(3), *st.columns(3)]
        change = result.bytes_model - result.bytes_original
        card_metric(cols[0], "Model size", words.size_phrase(result.bytes_model),
                    f"{words.size_phrase(change)} ({change / result.bytes_original:+.0%})",
                    f"{words.size_phrase(result.bytes_original)} at fp16",
                    "The whole model's weights: the chosen matrices as stored (factors, codes, scales, offsets), "
                    "every other parameter at fp16.")  # fmt: skip
        if result.outcome is not None:
            out = result.outcome
            saved = out.params_model_after - out.params_model_before
            card_metric(cols[1], "Parameters", f"{out.params_model_after / 1e6:.1f} M",
                        f"{saved / 1e6:+.1f} M ({saved / out.params_model_before:+.0%})",
                        f"{out.params_model_before / 1e6:.1f} M",
                        "Every parameter of the model (tied weights once). Each factored matrix holds k(m+n) "
                        "numbers plus its bias.")  # fmt: skip
            card_metric(cols[2], "Memory fp32", words.size_phrase(out.params_model_after * 4),
                        words.size_phrase(saved * 4), words.size_phrase(out.params_model_before * 4),
                        "Weights only, at 4 bytes per parameter.")  # fmt: skip
        elif result.quant is not None:
            q = result.quant
            card_metric(cols[1], "Chosen matrices", words.size_phrase(q.bytes_chosen),
                        f"{q.bytes_chosen / q.bytes_chosen_fp16 - 1:+.0%}",
                        f"{words.size_phrase(q.bytes_chosen_fp16)} at fp16",
                        "The chosen matrices as stored, against the same matrices at fp16.")  # fmt: skip
            cols[2].metric(
                "Weight error",
                f"{q.weight_error:.3g}",
                help="Σ‖W − Q(W)‖²_F / Σ‖W‖²_F over the chosen matrices: the share of their energy lost.",
            )
        for col, metric in zip((cols[3], cols[5]), metrics_for(after.causal), strict=True):
            quality_metric(col, metric, before, after, len(evalset.sentences))
        if free.needs_factors:
            macs_before, macs_after = cc.cached_macs(free.low_rank(model_key))
            card_metric(cols[4], "Multiply-adds per token", f"{macs_after / 1e6:,.1f} M",
                        f"{macs_after / macs_before - 1:+.0%}", f"{macs_before / 1e6:,.1f} M",
                        "Of the products with weight matrices: mn for a dense matrix, k(m+n) for a factored one. "
                        "Measured latency: below.")  # fmt: skip
        st.caption(f"The words: {words.verdict_scale(after.causal)}")
    if (
        result.outcome is not None
        and result.outcome.params_chosen_after > result.outcome.params_chosen_before
    ):
        st.warning(
            "At these ranks the two factors hold more numbers than the dense matrices (rank above "
            "break-even k* = mn/(m+n)): the model gets bigger, not smaller.",
            icon=":material/warning:",
        )
    if (
        free.needs_factors
        and free.calibration.source == "text"
        and free.eval_source == "text"
        and free.method != "svd"
    ):
        st.info(
            "Calibrated and measured on the same tokens: the activation-aware methods look better here than "
            "they would on new text. Use the shipped calibration set for an honest number.",
            icon=":material/info:",
        )
    if free.needs_factors:
        for note in cc.factorization(model_key, free.method, free.kinds, free.calibration).notes:
            st.info(note, icon=":material/info:")
    if after.causal and evalset.n_tokens < 64:
        st.caption(
            f"Perplexity on {evalset.n_tokens} tokens is noisy: measure on the held-out passage or a longer "
            "text for numbers you can quote."
        )


def draw_free_details(
    result: FreeResult,
    evalset: comp.EvalSet,
    eval_text: str,
    eval_tokens: int,
    loaded: LoadedModel,
    model_key: ModelChoice,
) -> None:
    """Latency, ranks, per-matrix errors and a greedy continuation of the free setting, where they apply."""
    free = result.setting
    if free.store == "lowrank":
        latency_section(model_key, free, eval_text, eval_tokens, loaded.device)
    else:
        st.caption(
            "Latency: not measured for rounded weights. This page runs them de-quantized in floats, so a timing "
            "would say nothing about a 4- or 8-bit kernel."
        )
    if not free.needs_factors:
        return
    st.subheader("Where the ranks go")
    comparison = cc.rank_comparison(
        free.low_rank(model_key), free.rank.share if free.rank.mode == "share" else 0.5
    )
    st.plotly_chart(make_rank_allocation_figure(comparison), width="stretch", key="compression_ranks")
    st.caption(
        "Each cell: one matrix's rank (the colour: its share of the break-even rank mn/(m+n)). The greedy "
        "spends the same parameters as the same share for every matrix, one component at a time where it "
        "removes the most calibration output error per parameter; it may leave a matrix dense."
        + (
            ""
            if free.rank.mode == "share"
            else " (Shown at 50 %: choose ranks by share to follow the slider.)"
        )
    )
    st.subheader("Per-matrix ranks and errors")
    st.caption(
        "Eckart-Young: sqrt(Σ dropped σ²)/‖W‖, the least error any rank-k matrix can have. Weight error: "
        "this method's ‖W−W_k‖/‖W‖ (equal to Eckart-Young for plain SVD). Output error: ‖(W−W_k)X‖/‖WX‖ "
        "on the calibration inputs X, the error the model actually feels."
        + (" Before the factors are rounded to fewer bits." if free.store == "factors" else "")
    )
    st.plotly_chart(
        make_matrix_error_figure(result.rows, method=free.method), width="stretch", key="compression_errors"
    )
    table = pd.DataFrame(
        [
            {
                "matrix": r.name,
                "kind": r.kind,
                "layer": r.layer,
                "shape": f"{r.shape[0]}×{r.shape[1]}",
                "rank k": r.rank,
                "break-even k*": round(r.break_even, 1),
                "params before": r.params_before,
                "params after": r.params_after,
                "Eckart-Young error": r.eckart_young_error,
                "weight error": r.weight_error,
                "output error (calibration)": r.output_error,
            }
            for r in result.rows
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="compression_table",
        column_config={
            c: st.column_config.NumberColumn(format="%.4f")
            for c in ("Eckart-Young error", "weight error", "output error (calibration)")
        },
    )
    st.download_button(
        "Download the per-matrix table (CSV)",
        table.to_csv(index=False),
        file_name=f"compression_matrices_{loaded.id.replace('/', '_')}_{free.method}.csv",
        mime="text/csv",
        key="compression_table_csv",
    )
    if loaded.causal and free.store == "lowrank":
        st.subheader("Greedy continuation, original and compressed")
        n_prompt = min(32, evalset.n_tokens)
        with st.spinner(f"Generating {GENERATION_TOKENS} tokens with both models…"):
            prompt, original_text = cc.cached_original_generation(
                model_key, eval_text, eval_tokens, n_prompt, GENERATION_TOKENS
            )
            compressed_text = cc.cached_compressed_generation(
                free.low_rank(model_key), eval_text, eval_tokens, n_prompt, GENERATION_TOKENS
            )
        st.caption(f"Prompt (the first {n_prompt} tokens of the text): {prompt!r}")
        left, right = st.columns(2)
        with left.container(border=True):
            st.markdown("**Original model**")
            st.text(original_text or "(nothing: it ended the text)")
        with right.container(border=True):
            st.markdown(
                f"**Compressed ({METHOD_LABELS[free.method]}, {result.outcome.share_kept:.0%} of parameters)**"
            )
            st.text(compressed_text or "(nothing: it ended the text)")


@st.fragment
def latency_section(model_key: ModelChoice, free: FreeSetting, eval_text: str, eval_tokens: int, device: str):
    st.markdown("**Latency** (warm-up, then interleaved runs of both models: medians with their spread)")
    args = (free.low_rank(model_key), eval_text, eval_tokens)
    spec = cc.latency_spec(*args)
    if tasks.peek(spec) is None and not st.button(
        "Measure latency", key="compression_latency", icon=":material/timer:"
    ):
        st.caption(
            "Takes a few seconds to a minute: each model runs several times at this text's tokens and at 256 tokens."
        )
        return
    latency = task_view.watch(
        spec, cc.latency_work(*args), label="Latency", failure="The latency measurement failed", wait=True,
        key="compression_latency_task",
    )  # fmt: skip
    if latency is None:
        return
    for sentence in words.latency_sentences(latency, device):
        st.markdown(sentence)
