"""The Learn page's walkthroughs, as records (explorer/ui/learn/walkthrough.py says what a record holds).

Adding a walkthrough: write ``assets/learn/<id>.md`` (intro, formulas, "What to try"), a module ``<id>.py`` here
with its settings and a ``render(prose)`` that draws it (maths from explorer.analysis.teaching, figures from
explorer.figures.learn, widgets through ``PAGE``), its ``TITLE`` and ``PARAMS`` (and, as it needs them,
``MODEL_LINK``, ``PREREQUISITES``, ``exercises``, ``handout_figures``: walkthrough.from_module reads its record
from these names), and list it in ``WALKTHROUGHS`` below (a record's ``prerequisites`` place it on the course
path: ``ORDER``). The page (pages/learn.py) only shows the picker and calls explorer/ui/learn/course.py, which
draws the record with the course around it (its exercises from the record's ``exercises``, progress, Previous / Next, handouts) or the
guided tour. Shared pieces in walkthrough.py: ``layout`` (intro beside the controls), ``source_switch`` (an
example or the loaded model), ``small_first`` (a small matrix, then the model), ``on_model`` (the "On
<model>" part, skipped with a warning on a too-short text), ``layer_picker`` and ``head_pickers``.
"""

from __future__ import annotations

from explorer.ui.learn import (
    charpoly,
    conditioning,
    gd,
    hessian,
    laplacian,
    lipschitz,
    lora,
    markov,
    matrix2x2,
    nonnormal,
    pca,
    power,
    psd,
    rayleigh,
    recurrent,
    svd,
    temperature,
    weyl,
)
from explorer.ui.learn.exercise import SEED
from explorer.ui.learn.walkthrough import PAGE, Prose, Walkthrough, course_order, from_module
from explorer.ui.state import Choice, Subset

#: Every record; the course path and the picker follow ``ORDER`` (this order, each after its prerequisites).
WALKTHROUGHS: tuple[Walkthrough, ...] = tuple(
    from_module(module)
    for module in (
        matrix2x2,
        power,
        gd,
        temperature,
        nonnormal,
        svd,
        charpoly,
        psd,
        rayleigh,
        pca,
        weyl,
        conditioning,
        markov,
        laplacian,
        recurrent,
        hessian,
        lora,
        lipschitz,
    )
)
#: The course path: every id, each after the ones it builds on (the numbers shown are positions here).
ORDER: tuple[str, ...] = course_order(WALKTHROUGHS)
BY_ID: dict[str, Walkthrough] = {i: next(w for w in WALKTHROUGHS if w.id == i) for i in ORDER}

#: The page's own settings: which walkthrough (link param ``walkthrough``; the course's first by default),
#: the walkthroughs whose exercises this student got right (``done=matrix2x2,power``: progress a student keeps
#: and a teacher can hand out), and the mode (the walkthroughs or the guided tour of the real pages).
PICKER = Choice("walkthrough", ORDER[0], ORDER)
DONE = Subset("done", (), ORDER, key="done")
MODES = {"walkthroughs": "Walkthroughs", "tour": "Guided tour"}
MODE = Choice("mode", "walkthroughs", MODES, key="mode")
TOUR_STOP_PARAM = "stop"  # the guided tour's stop (explorer/ui/learn/course.py declares its range)
#: Link params of the page itself; no walkthrough may own one of these.
PAGE_PARAMS = (PICKER.param, SEED.param, DONE.param, MODE.param, TOUR_STOP_PARAM)


def label(walkthrough_id: str) -> str:
    """The picker's label: ``"3 · Gradient descent"`` (its position on the course path)."""
    number = ORDER.index(walkthrough_id) + 1
    return f"{number} · {BY_ID[walkthrough_id].title}"


def caption() -> str:
    """The page's caption, counted from the records."""
    count = len(WALKTHROUGHS)
    return (
        f"{count} short walkthroughs on one course path. Each explains one idea, lets you play with it, asks you "
        "to predict before it checks your answer, and points to the page where the same idea shows up on the "
        "loaded model. Every setting is in the address bar: copy it to share this exact view."
    )


def stale_params(current: str | None) -> set[str]:
    """The link params owned by the other walkthroughs and not by ``current``: dropped from the link on a
    switch, so a shared link names only what its view uses (None: no walkthrough is shown, all are stale)."""
    own = set(BY_ID[current].params) if current is not None else set()
    return {param for w in WALKTHROUGHS if w.id != current for param in w.params} - own


__all__ = [
    "BY_ID",
    "DONE",
    "MODE",
    "MODES",
    "ORDER",
    "PAGE",
    "PAGE_PARAMS",
    "PICKER",
    "SEED",
    "TOUR_STOP_PARAM",
    "WALKTHROUGHS",
    "Prose",
    "Walkthrough",
    "caption",
    "label",
    "stale_params",
]
