"""What the compare-mode AppTests of the circuits and attention pages share: opening a page with ``vs=`` until B
is built and compared, and reading the caption that names the head that changed most."""

from __future__ import annotations

import re

import numpy as np

from tests.apptest import rerun_until, run_page

TEXT = "The quick brown fox jumps over the lazy dog. Then the fox sleeps."
HEAD_SECTION = "One head: A and B"
# "Changed most: layer 3 head 1, <quantity> = 0.0128; ..." (the quantity's words differ per page).
CHANGED_MOST = re.compile(r"Changed most: layer (\d+) head (\d+), (.+?) = ([0-9.e+-]+);")


def drawn(at) -> bool:
    """The comparison is on the page (its one-head section)."""
    return any(s.value == HEAD_SECTION for s in at.subheader)


def open_compare(page: str, model: str, vs: str, timeout: float = 600):
    """``page`` (a pages/ path) on TEXT with ``vs=``; B is built and compared in the background, so the page
    draws the comparison on a later run."""
    at = run_page(page, model=model, text=TEXT, vs=vs, timeout=timeout)
    return rerun_until(at, drawn, f"{page} {model} vs {vs}", timeout=timeout)


def changed_most(at) -> tuple[int, int, float]:
    """(layer, head, value) of the caption naming the head that changed most."""
    for caption in at.caption:
        match = CHANGED_MOST.search(caption.value)
        if match:
            return int(match.group(1)), int(match.group(2)), float(match.group(4))
    raise AssertionError(f"no 'Changed most' caption: {[c.value for c in at.caption]}")


def three_digits(value: float) -> float:
    """Half a unit in the last place of ``value`` written with 3 significant digits (the caption's .3g)."""
    return 0.5 * 10.0 ** (np.floor(np.log10(abs(value))) - 2)
