"""Quality metrics as values: what each number is, which way is better, how it compares with the original,
how it is written, and the budget that bounds one of them.

A ``Metric`` reads one field of a measured ``Quality`` (explorer.analysis.compression). Two ways to compare
with the original:

- "ratio" (perplexity): the loss is after / before - 1, a relative change; a budget's limit is the largest
  relative increase accepted (0.10: +10 %).
- "difference" (KL, embedding cosine, similarity-ranking correlation): the original's value is fixed by
  definition (``origin``: KL(p || p) = 0, cos(x, x) = 1, a ranking's correlation with itself = 1), the loss is
  the distance from it in the better direction, and a budget's limit is a bound on the value itself (KL at
  most 0.05 nats per token, cosine at least 0.99).

The loss is 0 for the original and grows as quality drops, in every metric, so points of different metrics'
budgets sort the same way; it is infinite when a model gives no usable number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    """One quality metric.

    name: the budget's key ("perplexity", "kl", "cosine", "spearman"; links carry it); field: the Quality
    attribute it reads (None, the default: ``name``); causal: measured on causal LMs (True) or encoders
    (False); label: the budget selector's words; noun: the metric in a sentence; unit: of the value ("" when
    none, the default); better: "lower" (default) or "higher"; compare: "ratio" or "difference" (default;
    module docstring); origin: the original's value for a "difference" metric (default 0.0; nan for a "ratio"
    metric, which compares with the measured original); fmt: format spec of a value; definition: what is
    measured, for manifests and reports. Each declaration below states only what is its own.

    Sentences (str.format templates): ``bound_words`` names a budget ({limit}: its limit), ``describe_words``
    the same for the report, ``cost_words`` what a measured quality costs ({value}: the value formatted with
    ``fmt``, {before}: the original's, {change}: the relative change as ``change_text`` writes it)."""

    name: str
    causal: bool
    label: str
    noun: str
    fmt: str
    definition: str
    bound_words: str
    describe_words: str
    cost_words: str
    field: str | None = None
    unit: str = ""
    better: str = "lower"
    compare: str = "difference"
    origin: float = 0.0

    def __post_init__(self) -> None:
        # Derived defaults, set once here (frozen): the field a metric reads is its name unless it says
        # otherwise, and a ratio metric has no fixed origin.
        if self.field is None:
            object.__setattr__(self, "field", self.name)
        if self.compare == "ratio":
            object.__setattr__(self, "origin", float("nan"))

    def value(self, quality) -> float | None:
        """The metric's value in ``quality`` (a compression.Quality), None when not measured."""
        return getattr(quality, self.field)

    def plotted(self, quality) -> float:
        """The value as a chart plots it: a float, nan when not measured or not finite."""
        value = self.value(quality)
        return float(value) if value is not None and np.isfinite(value) else float("nan")

    def with_unit(self, quality) -> str:
        """ "KL divergence 0.012 nats/token", "similarity-ranking correlation 0.9812": a hover's line."""
        text = f"{self.noun} {self.formatted(self.value(quality))}"
        return f"{text} {self.unit}" if self.unit else text

    def formatted(self, value: float | None) -> str:
        """``value`` written with ``fmt``; "not finite" for None, nan and inf."""
        if value is None or not np.isfinite(value):
            return "not finite"
        return format(value, self.fmt)

    def loss(self, before, after) -> float:
        """How far ``after`` is from the original ``before`` (0 = unchanged, larger = worse): the relative
        change for a ratio metric, the distance from ``origin`` in the better direction for a difference
        metric; infinite when ``after`` gives no usable number."""
        value = self.value(after)
        if value is None or not np.isfinite(value):
            return float("inf")
        if self.compare == "ratio":
            return float(value / self.value(before) - 1)
        return float(value - self.origin) if self.better == "lower" else float(self.origin - value)

    def loss_limit(self, limit: float) -> float:
        """The largest ``loss`` a budget of ``limit`` accepts."""
        if self.compare == "ratio":
            return float(limit)
        return float(limit - self.origin) if self.better == "lower" else float(self.origin - limit)

    def bound(self, before, limit: float) -> float:
        """The value a budget of ``limit`` lets the metric reach: (1 + limit) x the original's for a ratio
        metric, ``limit`` itself for a difference metric."""
        return (1 + limit) * self.value(before) if self.compare == "ratio" else float(limit)

    def fits(self, before, after, limit: float) -> bool:
        """``after`` within a budget of ``limit``, compared on the value itself (perplexity <= (1 + limit) x
        the original's, not ratio - 1 <= limit), so a value exactly at the limit fits whatever the rounding of
        a ratio."""
        if not np.isfinite(self.loss(before, after)):
            return False
        value, bound = self.value(after), self.bound(before, limit)
        return value <= bound if self.better == "lower" else value >= bound

    def cost(self, before, after) -> str:
        """What ``after`` costs in this metric, in words: "+6.0% perplexity (27.6 → 29.3)", "a KL divergence of
        0.012 nats/token", ...; "a model that gives no usable numbers" when the loss is not finite."""
        loss = self.loss(before, after)
        if not np.isfinite(loss):
            return "a model that gives no usable numbers"
        return self.cost_words.format(
            value=self.formatted(self.value(after)),
            before=self.formatted(self.value(before)),
            change=change_text(loss),
        )


def change_text(loss: float) -> str:
    """A relative change that stays readable: "+6.0%" below x10, then the factor: "×12.3", "×8,041"."""
    if loss < 9:
        return f"{loss:+.1%}"
    ratio = 1 + loss
    return f"×{ratio:,.1f}" if ratio < 100 else f"×{ratio:,.0f}"


PERPLEXITY = Metric(
    name="perplexity",
    causal=True,
    label="Perplexity increase (%)",
    noun="perplexity",
    compare="ratio",
    fmt=",.4g",
    definition="exp(mean next-token cross-entropy) on the passage's tokens",
    bound_words="{limit:+.0%} perplexity",
    describe_words="perplexity at most {limit:+.0%} over the original",
    cost_words="{change} perplexity ({before} → {value})",
)
KL = Metric(
    name="kl",
    causal=True,
    label="KL divergence (nats per token)",
    noun="KL divergence",
    unit="nats/token",
    fmt=".3g",
    definition="mean over positions of KL(original || compressed) of the next-token distributions, nats per "
    "token",
    bound_words="KL ≤ {limit:g} nats/token",
    describe_words="KL divergence at most {limit:g} nats per token",
    cost_words="a KL divergence of {value} nats/token",
)
COSINE = Metric(
    name="cosine",
    field="embedding_cosine",
    causal=False,
    label="Embedding cosine",
    noun="embedding cosine",
    better="higher",
    origin=1.0,
    fmt=".4f",
    definition="mean cosine between the original's and the compressed model's mean-pooled embeddings of "
    "[the passage] + the shipped sentence set",
    bound_words="embedding cosine ≥ {limit:g}",
    describe_words="mean embedding cosine to the original at least {limit:g}",
    cost_words="an embedding cosine of {value} with the original",
)
SPEARMAN = Metric(
    name="spearman",
    field="similarity_spearman",
    causal=False,
    label="Similarity-ranking correlation",
    noun="similarity-ranking correlation (Spearman)",
    better="higher",
    origin=1.0,
    fmt=".4f",
    definition="Spearman correlation of the pairwise cosine similarities of the shipped sentences, original "
    "against compressed",
    bound_words="similarity-ranking correlation ≥ {limit:g}",
    describe_words="similarity-ranking correlation with the original at least {limit:g}",
    cost_words="a similarity-ranking correlation of {value} with the original",
)

METRICS = {m.name: m for m in (PERPLEXITY, KL, COSINE, SPEARMAN)}


def metrics_for(causal: bool) -> tuple[Metric, ...]:
    """The metrics measured on a causal LM (perplexity, KL) or an encoder (cosine, Spearman), the headline
    one first."""
    return tuple(m for m in METRICS.values() if m.causal == causal)


def headline_metric(causal: bool) -> Metric:
    """The metric a model is judged by first: perplexity (causal LM) or embedding cosine (encoder)."""
    return metrics_for(causal)[0]


def metric_named(name: str, causal: bool) -> Metric:
    """The metric called ``name``, checked against the model kind."""
    kind = "a causal LM" if causal else "an encoder"
    allowed = metrics_for(causal)
    for metric in allowed:
        if metric.name == name:
            return metric
    raise ValueError(
        f"Budget metric '{name}' does not apply to {kind}; choose one of {', '.join(m.name for m in allowed)}."
    )


def quality_values(quality) -> dict:
    """The measured metrics of ``quality`` as (Quality field -> value), headline first: perplexity and KL
    (causal LM) or embedding_cosine and similarity_spearman (encoder); the report's and the exports' keys."""
    return {m.field: m.value(quality) for m in metrics_for(quality.causal)}


# Default limits: +10 % perplexity, KL 0.05 nats/token, cosine 0.99, Spearman 0.98.
DEFAULT_LIMITS = {"perplexity": 0.10, "kl": 0.05, "cosine": 0.99, "spearman": 0.98}


@dataclass(frozen=True)
class Budget:
    """The quality loss a decision accepts: ``metric`` within ``limit`` (Metric's units: a relative increase
    for perplexity, a bound on the value for the others)."""

    metric: Metric
    limit: float

    @classmethod
    def default(cls, causal: bool, name: str | None = None) -> Budget:
        """The budget of ``name`` (default: the headline metric) at its default limit."""
        metric = headline_metric(causal) if name is None else metric_named(name, causal)
        return cls(metric, DEFAULT_LIMITS[metric.name])

    @property
    def causal(self) -> bool:
        return self.metric.causal

    def loss(self, before, after) -> float:
        """``Metric.loss`` of this budget's metric."""
        return self.metric.loss(before, after)

    @property
    def loss_limit(self) -> float:
        """The largest ``loss`` the budget accepts."""
        return self.metric.loss_limit(self.limit)

    def fits(self, before, after) -> bool:
        """Within the budget (``Metric.fits``)."""
        return self.metric.fits(before, after, self.limit)

    def bound(self, before) -> float:
        """The value of the metric at the budget's edge (a chart's budget line)."""
        return self.metric.bound(before, self.limit)

    def phrase(self) -> str:
        """The budget as the page's headline names it: "+10% perplexity", "KL ≤ 0.05 nats/token", ..."""
        return self.metric.bound_words.format(limit=self.limit)

    def describe(self) -> str:
        """The report's label of the budget: "perplexity at most +10% over the original", ..."""
        return self.metric.describe_words.format(limit=self.limit)

    def cost(self, before, after) -> str:
        """``Metric.cost`` in this budget's metric."""
        return self.metric.cost(before, after)


__all__ = [
    "COSINE",
    "DEFAULT_LIMITS",
    "KL",
    "METRICS",
    "PERPLEXITY",
    "SPEARMAN",
    "Budget",
    "Metric",
    "change_text",
    "headline_metric",
    "metric_named",
    "metrics_for",
    "quality_values",
]
