"""Exercises for the Learn walkthroughs: predict first, then check. Pure data and checking, no Streamlit.

An exercise is a question with one right answer: a number (right within an absolute tolerance stated with the
question) or one of several choices. Each walkthrough builds its exercises from a per-student seed
(``instance_rng``), so a class handed links with different seeds gets different matrices, and the answer is
computed for each instance by numpy/scipy in the walkthrough's maths, never typed in by hand.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["Exercise", "Verdict", "instance_rng", "parse_number"]


@dataclass(frozen=True)
class Verdict:
    """The result of checking one answer. right: whether it is accepted; message: what the student reads
    (markdown); given: the parsed answer (None when it could not be read)."""

    right: bool
    message: str
    given: float | int | None


@dataclass(frozen=True)
class Exercise:
    """One question of a walkthrough.

    id: unique within its walkthrough (widget keys are built from it). question: markdown, ending in what to
    give (the tolerance is added for numbers). answer: the right number (``choices`` empty) or the index of the
    right choice. tolerance: absolute, for numbers; choose it from what a careful hand or mental computation
    can reach (e.g. two decimals), never from a run. hint: shown after a wrong answer. solution: the worked
    solution (markdown), shown on request."""

    id: str
    question: str
    answer: float | int
    hint: str
    solution: str
    choices: tuple[str, ...] = ()
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.choices:
            if not 0 <= int(self.answer) < len(self.choices):
                raise ValueError(f"exercise {self.id}: answer {self.answer} is not one of the choices")
        elif not (math.isfinite(float(self.answer)) and self.tolerance > 0):
            raise ValueError(f"exercise {self.id}: a number needs a finite answer and a positive tolerance")

    @property
    def kind(self) -> str:
        """ "choice" or "number"."""
        return "choice" if self.choices else "number"

    @property
    def tolerance_text(self) -> str:
        """How close a number must be, as the question states it: "within ±0.01"."""
        return f"within ±{self.tolerance:.3g}"

    def check(self, given: str | int | None) -> Verdict:
        """Check an answer: a choice index (int) or the text typed for a number (see ``parse_number``)."""
        if self.kind == "choice":
            if given is None or isinstance(given, str) or not 0 <= int(given) < len(self.choices):
                return Verdict(False, "Pick one of the choices first.", None)
            right = int(given) == int(self.answer)
            return Verdict(right, "Right." if right else "Not quite.", int(given))
        value = parse_number(given if isinstance(given, str) else str(given))
        if value is None:
            return Verdict(
                False,
                f"'{str(given)[:40]}' is not a number: type a decimal like 0.25, a fraction like 1/4, or "
                "a power like 2e-3.",
                None,
            )
        right = abs(value - float(self.answer)) <= self.tolerance
        if right:
            return Verdict(True, f"Right: {_shown(float(self.answer))} ({self.tolerance_text}).", value)
        return Verdict(
            False, f"Not quite: {_shown(value)} is not {self.tolerance_text} of the answer.", value
        )


def _shown(x: float) -> str:
    return f"{x:.6g}"


_FRACTION = re.compile(r"^\s*([-+]?[\d.]+(?:e[-+]?\d+)?)\s*/\s*([-+]?[\d.]+(?:e[-+]?\d+)?)\s*$", re.I)


def parse_number(text: str | None) -> float | None:
    """A typed number: "0.25", "-1.5e-3", "1/4", "1,234.5" (thousands commas), or a decimal comma "0,25".
    None when it is not a finite number."""
    if text is None:
        return None
    raw = text.strip().replace(" ", "").replace("−", "-")
    if not raw:
        return None
    match = _FRACTION.match(raw)
    try:
        if match:
            denominator = float(match.group(2))
            value = float(match.group(1)) / denominator if denominator != 0 else math.nan
        elif re.fullmatch(r"[-+]?\d+,\d+", raw) and not re.fullmatch(r"[-+]?\d{1,3},\d{3}", raw):
            value = float(raw.replace(",", "."))  # a decimal comma: "0,25"
        else:
            value = float(raw.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def instance_rng(seed: int, walkthrough: str, exercise: str = "") -> np.random.Generator:
    """The random generator of one student's instance of an exercise: the same (seed, walkthrough, exercise)
    always gives the same numbers (on every machine: the key is hashed with SHA-256, not Python's ``hash``),
    and different exercises of one seed are independent."""
    digest = hashlib.sha256(f"{int(seed)}|{walkthrough}|{exercise}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))
