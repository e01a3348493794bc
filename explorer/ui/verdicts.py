"""Verdicts the pages state in words, from analysis results (the numbers come from explorer.analysis)."""

from __future__ import annotations

from dataclasses import dataclass

from explorer.analysis.directions import DirectionAnalysis

# A share this many standard deviations above random pairs counts as a real direction (well past the ~0.1 %
# one-sided tail of a normal control distribution).
ONE_DIMENSIONAL_Z = 3.0


@dataclass(frozen=True)
class DirectionVerdict:
    """How a concept's first-component share compares with random pairs.

    ``share``, ``control_mean``, ``control_std``: fractions of variance (0..1); ``z``: standard deviations above
    the control mean; ``ratio``: share / control mean (None when the mean is 0); ``sentence``: the verdict.
    """

    share: float
    control_mean: float
    control_std: float
    z: float
    ratio: float | None
    sentence: str


def direction_verdict(result: DirectionAnalysis) -> DirectionVerdict:
    share = float(result.direction.explained)
    mean, std = float(result.control.mean), float(result.control.std)
    z = float(result.control.z_score(share))
    if z > ONE_DIMENSIONAL_Z:
        sentence = f"clearly one-dimensional here: {z:.0f} standard deviations above random pairs"
    else:
        sentence = "not clearly above random pairs: these pairs share no single direction here"
    return DirectionVerdict(share, mean, std, z, share / mean if mean > 0 else None, sentence)
