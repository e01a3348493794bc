"""What every Learn walkthrough is made of: its record, its prose (a markdown file) and the pieces they share.

A walkthrough is a ``Walkthrough`` record: an id (the link's ``walkthrough=`` value), a title, the link params
it owns, the link params that put it on the loaded model (if it can use one), and a render function. Its prose,
the intro, the formulas and the "What to try" list, is ``assets/learn/<id>.md`` (format in ``parse_prose``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from explorer.analysis.exercises import Exercise
from explorer.models import Capture, LoadedModel
from explorer.paths import ASSETS_DIR
from explorer.ui.navigation import PAGES
from explorer.ui.session import require_capture
from explorer.ui.state import LAYER_HELP, Choice, Int, PageState, head_picker

PROSE_DIR = ASSETS_DIR / "learn"
TRY_HEADING = "**What to try**"

#: The Learn page's settings: widget keys ``learn_<key>``.
PAGE = PageState("learn")


@dataclass(frozen=True)
class Prose:
    """A walkthrough's text. intro: markdown (paragraphs separated by a blank line); formulas: LaTeX, one
    display formula each (shown one per line: long LaTeX does not wrap); tries: markdown, one item each."""

    intro: str
    formulas: tuple[str, ...]
    tries: tuple[str, ...]


def parse_prose(text: str, *, source: str = "prose") -> Prose:
    """Read a walkthrough's markdown: intro paragraphs, then display formulas each between two ``$$`` lines,
    then a ``**What to try**`` line followed by a ``- `` list (an item may go on over indented lines).

    Lines of a paragraph or an item are joined by one space, as markdown shows them; the lines of a formula
    too (LaTeX ignores the space). Raises ValueError naming ``source`` when a part is missing or a formula is
    not closed."""
    paragraphs: list[list[str]] = [[]]
    formulas: list[list[str]] = []
    tries: list[list[str]] = []
    in_formula = in_tries = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line == "$$":
            if in_tries:
                raise ValueError(f"{source}, line {number}: a formula after the '{TRY_HEADING}' list")
            in_formula = not in_formula
            if in_formula:
                formulas.append([])
        elif in_formula:
            if line:
                formulas[-1].append(line)
        elif line == TRY_HEADING:
            in_tries = True
        elif in_tries:
            if line.startswith("- "):
                tries.append([line[2:].strip()])
            elif line and tries:
                tries[-1].append(line)
            elif line:
                raise ValueError(f"{source}, line {number}: the '{TRY_HEADING}' list must start with '- '")
        elif formulas and line:
            raise ValueError(f"{source}, line {number}: text between the formulas and '{TRY_HEADING}'")
        elif line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    if in_formula:
        raise ValueError(f"{source}: a formula is not closed with '$$'")
    if not all(formulas):
        raise ValueError(f"{source}: an empty formula")
    intro = "\n\n".join(" ".join(p) for p in paragraphs if p)
    parts = (("an intro", intro), ("a formula", formulas), (f"a '{TRY_HEADING}' list", tries))
    missing = [name for name, part in parts if not part]
    if missing:
        raise ValueError(f"{source}: missing {', '.join(missing)}")
    return Prose(
        intro=intro,
        formulas=tuple(" ".join(f) for f in formulas),
        tries=tuple(" ".join(t) for t in tries),
    )


@cache
def load_prose(path: Path) -> Prose:
    """The prose in ``path`` (read once per process: the assets do not change while the app runs)."""
    return parse_prose(path.read_text(encoding="utf-8"), source=str(path))


@dataclass(frozen=True)
class Walkthrough:
    """One walkthrough of the Learn page.

    id: its link value (``?walkthrough=<id>``) and the name of its prose file ``assets/learn/<id>.md``.
    title: shown as the page's subheader and, numbered, on the picker. params: the link params it owns (a
    param may be owned by several: ``layer`` and ``head`` follow one choice across walkthroughs); switching
    to another walkthrough drops the rest from the link. model_link: the link params that make it use the
    loaded model (``{}``: it always does; None: it never does), for the tests and the docs.
    render: draws it below the subheader, given its prose. exercises: the student's exercises from their seed
    (pure maths on small matrices, no model: the same function serves the page, the handouts and the tests;
    the course draws them below the walkthrough with explorer.ui.learn.exercise.draw_all). prerequisites: the ids of the walkthroughs it
    builds on (the course path, explorer/ui/learn/course.py, puts them first). handout_figures: the figures of
    its printed handout for a student's seed (Plotly figures from explorer.figures, no model: a handout opens
    offline), None when it has none.
    """

    id: str
    title: str
    params: tuple[str, ...]
    render: Callable[[Prose], None]
    model_link: Mapping[str, str] | None = None
    exercises: Callable[[int], tuple[Exercise, ...]] | None = None
    prerequisites: tuple[str, ...] = ()
    handout_figures: Callable[[int], list] | None = None

    @property
    def prose_path(self) -> Path:
        return PROSE_DIR / f"{self.id}.md"

    @property
    def prose(self) -> Prose:
        return load_prose(self.prose_path)


def from_module(module: ModuleType) -> Walkthrough:
    """The record of the walkthrough module ``explorer/ui/learn/<id>.py``, read from the names it defines (one
    convention in place of the same constructor call at the end of every module): id, the module's own name
    (its ``ID``, if it has one, must agree); ``TITLE``; ``PARAMS``; ``render(prose)``; and, where it has them,
    ``MODEL_LINK`` (absent: it never uses the loaded model), ``exercises(seed)``, ``PREREQUISITES`` and
    ``handout_figures(seed)``. The fields are those of ``Walkthrough``, which says what each holds."""
    walkthrough_id = module.__name__.rpartition(".")[2]
    if getattr(module, "ID", walkthrough_id) != walkthrough_id:
        raise ValueError(
            f"{module.__name__} says ID = {module.ID!r}; a walkthrough's id is its module's name"
        )
    return Walkthrough(
        id=walkthrough_id,
        title=module.TITLE,
        params=module.PARAMS,
        render=module.render,
        model_link=getattr(module, "MODEL_LINK", None),
        exercises=getattr(module, "exercises", None),
        prerequisites=getattr(module, "PREREQUISITES", ()),
        handout_figures=getattr(module, "handout_figures", None),
    )


def course_order(walkthroughs: Sequence[Walkthrough]) -> tuple[str, ...]:
    """The course path: every walkthrough after the ones it builds on (``prerequisites``), otherwise in the
    order given (a stable topological sort: records nobody placed keep their listed order). A prerequisite
    that is not among ``walkthroughs`` is ignored here (the tests name it); a cycle raises ValueError."""
    ids = [w.id for w in walkthroughs]
    known = set(ids)
    needs = {w.id: {p for p in w.prerequisites if p in known and p != w.id} for w in walkthroughs}
    order: list[str] = []
    while len(order) < len(ids):
        ready = next((i for i in ids if i not in order and needs[i] <= set(order)), None)
        if ready is None:
            stuck = [i for i in ids if i not in order]
            raise ValueError(f"the prerequisites of {', '.join(stuck)} form a cycle")
        order.append(ready)
    return tuple(order)


# ------------------------------------------------------------------------------------ shared pieces


def intro(prose: Prose) -> None:
    """The intro, the formulas one per line, and the "What to try" list."""
    st.markdown(prose.intro)
    for formula in prose.formulas:
        st.latex(formula)
    st.markdown(TRY_HEADING + "\n" + "\n".join(f"- {t}" for t in prose.tries))


def link(stems: list[str], text: str, query_params: dict | None = None) -> None:
    """st.page_link to the first of ``stems`` that this build has (pages still being built are skipped),
    opening it with ``query_params`` when given."""
    for stem in stems:
        page = next((p for p in PAGES if p.url_path == stem), None)
        if page is not None:
            st.page_link(
                page.file, label=f"{text} → **{page.title}**", icon=page.icon, query_params=query_params
            )
            return


def head_pickers(prefix: str, n_layers: int, n_heads: int) -> tuple[int, int]:
    """The walkthroughs on a head share one choice of head (link params layer, head)."""
    return head_picker(PAGE, n_layers, n_heads, shared="learn", prefix=f"{prefix}_")


def causal_note(model_id: str) -> None:
    st.info(
        f"**{model_id} is causal**: each token attends only to itself and earlier tokens, so A is "
        "lower-triangular and its eigenvalues are exactly its diagonal entries a_ii (how much each token "
        "attends to itself). λ = 1 always comes from the first token, which can attend only to itself.",
        icon=":material/south_west:",
    )


def layout(prose: Prose) -> DeltaGenerator:
    """Every walkthrough's page: two columns (3 : 2), the intro drawn in the left one; returns the right
    one, where the walkthrough puts its controls and figures (``with layout(prose): ...``)."""
    left, right = st.columns([3, 2], gap="large")
    with left:
        intro(prose)
    return right


@dataclass(frozen=True)
class SourceSwitch:
    """A walkthrough's choice between its own small example and the loaded model: the link param ``setting``
    (values ``example`` and the model's value), with a label for each value."""

    setting: Choice
    labels: Mapping[str, str]

    @property
    def param(self) -> str:
        return self.setting.param

    @property
    def model_link(self) -> dict[str, str]:
        """The link params that put the walkthrough on the loaded model (its record's ``model_link``)."""
        return {self.param: next(v for v in self.labels if v != "example")}

    def pick(self, label: str, *, where=st) -> str:
        """The switch as a segmented control titled ``label``, drawn in ``where``; returns the value."""
        return PAGE.segmented_control(self.setting, label, where=where, format_func=self.labels.get)

    def beside_intro(
        self,
        prose: Prose,
        label: str,
        example: Callable[[DeltaGenerator], None],
        model: Callable[[DeltaGenerator], None],
    ) -> str:
        """A walkthrough with its switch beside the intro (``layout``): the switch titled ``label`` in the right
        column, then ``example(right)`` or ``model(right)`` as it says (each draws its settings in ``right``,
        its figures below); returns the value chosen."""
        right = layout(prose)
        source = self.pick(label, where=right)
        (example if source == "example" else model)(right)
        return source


def source_switch(prefix: str, example: str, model: str, *, model_value: str = "model") -> SourceSwitch:
    """The switch of the walkthrough whose settings start with ``prefix``: link param and widget key
    ``<prefix>_on``, ``example`` (labelled ``example``) by default, else ``model_value`` (labelled ``model``)."""
    labels = {"example": example, model_value: model}
    return SourceSwitch(Choice(f"{prefix}_on", "example", labels, key=f"{prefix}_on"), labels)


def small_first(
    prose: Prose, controls: Callable[[], tuple], small: Callable[..., None], model: Callable[[], None]
) -> None:
    """The walkthroughs that show a small matrix, then the loaded model: the intro beside the small matrix's
    settings (``controls()`` draws them and returns them), the small matrix drawn from them
    (``small(*settings)``) under "On a small matrix", then ``model()`` (its "On <model>" part: on_model)."""
    with layout(prose):
        settings = controls()
    st.markdown("#### On a small matrix")
    small(*settings)
    model()


def layer_picker(prefix: str, n_layers: int, label: str = "Layer", *, where=st) -> int:
    """The walkthroughs on one layer share one choice of layer (link param ``layer``; widget key
    ``learn_<prefix>_layer``), 0 … n_layers − 1, drawn in ``where`` (a column; the page by default)."""
    setting = Int("layer", 0, 0, n_layers - 1, key=f"{prefix}_layer", shared="learn_layer")
    return PAGE.slider(setting, label, where=where, help=LAYER_HELP)


def on_model(
    min_tokens: int, too_short: str, icon: str | None = None
) -> Callable[[Callable[[LoadedModel, Capture], None]], Callable[[], None]]:
    """Decorator for the "On <model>" part of a walkthrough on the sidebar text: the decorated
    ``part(loaded, capture)`` becomes ``part()``, which draws the heading and then calls it; or, when the text
    has fewer than ``min_tokens`` tokens, the warning ``too_short`` (with ``icon``) instead (the walkthrough
    then shows nothing more on the model, but the rest of the page stays)."""

    def decorate(part: Callable[[LoadedModel, Capture], None]) -> Callable[[], None]:
        @functools.wraps(part)
        def drawn() -> None:
            loaded, cap = require_capture()
            st.markdown(f"#### On {loaded.id}")
            if cap.n_tokens < min_tokens:
                st.warning(too_short, icon=icon)
            else:
                part(loaded, cap)

        return drawn

    return decorate
