"""The Learn page's walkthroughs, as records (explorer/ui/learn/walkthrough.py says what a record holds).

Adding a walkthrough: write ``assets/learn/<id>.md`` (intro, formulas, "What to try"), a module here with its
settings and a ``render(prose)`` that draws it (maths from explorer.analysis.teaching, figures from
explorer.figures.learn, widgets through ``PAGE``), ending in ``WALKTHROUGH = Walkthrough(...)``, and list it
in ``WALKTHROUGHS`` below. The page (pages/learn.py) only shows the picker and calls the record.
"""

from __future__ import annotations

from explorer.ui.learn import gd, matrix2x2, nonnormal, power, svd, temperature
from explorer.ui.learn.exercise import SEED
from explorer.ui.learn.walkthrough import PAGE, Prose, Walkthrough
from explorer.ui.state import Choice

#: In the picker's order (the numbers shown are positions in this tuple).
WALKTHROUGHS: tuple[Walkthrough, ...] = (
    matrix2x2.WALKTHROUGH,
    power.WALKTHROUGH,
    gd.WALKTHROUGH,
    temperature.WALKTHROUGH,
    nonnormal.WALKTHROUGH,
    svd.WALKTHROUGH,
)
BY_ID: dict[str, Walkthrough] = {w.id: w for w in WALKTHROUGHS}

#: The page's own setting: which walkthrough (link param ``walkthrough``; the first one by default).
PICKER = Choice("walkthrough", WALKTHROUGHS[0].id, list(BY_ID))
#: Link params of the page itself; no walkthrough may own one of these.
PAGE_PARAMS = (PICKER.param, SEED.param)


def label(walkthrough_id: str) -> str:
    """The picker's label: ``"3 · Gradient descent"``."""
    number = list(BY_ID).index(walkthrough_id) + 1
    return f"{number} · {BY_ID[walkthrough_id].title}"


def stale_params(current: str) -> set[str]:
    """The link params owned by the other walkthroughs and not by ``current``: dropped from the link on a
    switch, so a shared link names only what its view uses."""
    own = set(BY_ID[current].params)
    return {param for w in WALKTHROUGHS if w.id != current for param in w.params} - own


__all__ = [
    "BY_ID",
    "PAGE",
    "PAGE_PARAMS",
    "PICKER",
    "SEED",
    "WALKTHROUGHS",
    "Prose",
    "Walkthrough",
    "label",
    "stale_params",
]
