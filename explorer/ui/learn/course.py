"""The course around the walkthroughs: the path, the student's progress, Previous / Next, handouts, and the
guided tour of the real pages.

- **Path**: ``learn.ORDER``, every walkthrough after the ones it builds on (``Walkthrough.prerequisites``).
- **Progress**: a walkthrough is done once every one of its exercises has been checked right in this session
  (for the student's seed). Done walkthroughs are kept in the session and in the link (``done=matrix2x2,power``),
  so a student's link carries their progress and a teacher can hand out a "start here" link
  (``?walkthrough=power&done=matrix2x2``). The answers themselves never go into the link.
- **Handouts**: the walkthrough as a standalone HTML file for the student's seed, and the answers on a separate
  sheet for the teacher (explorer/report/handout.py builds both, when the button is pressed).
- **Guided tour**: ``TOUR_STOPS``, the real pages in order, each with the link params that show the point and
  one sentence on what to look at (link param ``stop``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st

from explorer.report import handout
from explorer.ui import learn
from explorer.ui.learn.exercise import SEED, draw_all, forget_verdicts, seed, verdict_of
from explorer.ui.learn.walkthrough import PAGE, Walkthrough, link
from explorer.ui.navigation import PAGES
from explorer.ui.sidebar import MAX_TOKENS
from explorer.ui.state import Int

#: The overview's ticks: Streamlit's bundled icon font (emoji need a font the reader's system may lack).
DONE_MARK = ":green[:material/check_circle:]"
TODO_MARK = ":gray[:material/radio_button_unchecked:]"
#: The sidebar's link params: a tour stop carries them, so the page opens on the same model and text.
SIDEBAR_PARAMS = ("model", "text", "example", MAX_TOKENS.param)


@dataclass(frozen=True)
class TourStop:
    """One stop of the guided tour. page: the page's url path (``attention``); params: the link params that
    show the point there; title; look: one sentence on what to look at; walkthrough: the id of the walkthrough
    that explains it (None: none does yet)."""

    page: str
    title: str
    look: str
    params: Mapping[str, str] = field(default_factory=dict)
    walkthrough: str | None = None


#: The real pages in the order a class meets the ideas (layer and head choices valid on both embedded models).
TOUR_STOPS: tuple[TourStop, ...] = (
    TourStop(
        "gershgorin",
        "Where the eigenvalues can be",
        "Every eigenvalue of the head lies in the union of the discs: centres a_ii, radii 1 − a_ii, all inside the "
        "unit disc because each row of attention sums to 1.",
        walkthrough="matrix2x2",
    ),
    TourStop(
        "attention",
        "|λ₂| of every head",
        "Each cell is one head: |λ₂| near 1 marks a head that keeps groups of tokens apart, near 0 one that "
        "forgets in a single step where attention started.",
        {"metric": "lambda2_abs"},
        walkthrough="power",
    ),
    TourStop(
        "eigenvectors",
        "Where attention flow ends up",
        "The stationary distribution is the left Perron vector of the head: the tokens that repeated attention "
        "keeps returning to, the limit power iteration on Aᵀ converges to.",
        walkthrough="power",
    ),
    TourStop(
        "attention",
        "Sharper attention, slower mixing",
        "At τ = 0.3 every head is replayed sharper: watch |λ₂| move toward 1 as rows become nearly one-hot.",
        {"metric": "lambda2_abs", "tau": "0.3"},
        walkthrough="temperature",
    ),
    TourStop(
        "weights",
        "How unevenly a weight stretches",
        "σ₁/σ_min of each weight matrix: the same condition number κ that slows gradient descent on a "
        "quadratic.",
        {"metric": "condition_number"},
        walkthrough="gd",
    ),
    TourStop(
        "weights",
        "How many directions carry the energy",
        "k₉₀ is the fewest singular values that keep 90 % of ‖W‖_F²: the rank Eckart-Young needs for a 10 % "
        "energy error.",
        {"metric": "k90"},
        walkthrough="svd",
    ),
    TourStop(
        "compression",
        "What low rank costs",
        "The best rank-k weights by Eckart-Young, measured on the model's own output: perplexity (or embedding "
        "agreement) against parameters saved.",
        walkthrough="svd",
    ),
    TourStop(
        "circuits",
        "Eigenvalues of a head's OV circuit",
        "The OV circuit W_V W_O is a non-symmetric matrix: mostly positive real eigenvalues mean the head copies "
        "what it attends to.",
        walkthrough="nonnormal",
    ),
    TourStop(
        "curvature",
        "The real loss's λ_max",
        "The top Hessian eigenvalue of the whole model's loss, and 2/λ_max: the largest stable gradient-descent "
        "step near these weights.",
        {"block": "all"},
        walkthrough="gd",
    ),
    TourStop(
        "directions",
        "Principal directions of hidden states",
        "PCA of one layer's hidden states: the eigenvectors of their covariance, ordered by the variance each "
        "explains.",
        {"view": "tokens"},
    ),
)
STOP = Int(learn.TOUR_STOP_PARAM, 1, 1, len(TOUR_STOPS), key="tour_stop")


# ---------------------------------------------------------------------------------------------- progress


def completed(walkthrough: Walkthrough, student_seed: int) -> bool:
    """Whether every exercise of ``walkthrough`` (for this seed) has been checked right in this session."""
    if walkthrough.exercises is None:
        return False
    exercises = walkthrough.exercises(student_seed)
    verdicts = [verdict_of(walkthrough.id, ex) for ex in exercises]
    return bool(exercises) and all(v is not None and v.right for v in verdicts)


def record_progress(walkthrough: Walkthrough) -> tuple[str, ...]:
    """The done walkthroughs (from the link, else this session), with ``walkthrough`` added once its exercises
    are all right; written back to the session and the link."""
    done = PAGE.bind(learn.DONE)
    if walkthrough.id not in done and completed(walkthrough, seed()):
        done = PAGE.set(learn.DONE, (*done, walkthrough.id))
        st.toast(f"{learn.label(walkthrough.id)}: every exercise right. Progress saved in the link.")
    return tuple(done)


def _go_to(walkthrough_id: str) -> None:
    # A button's callback: set the picker before the next run draws it (the link follows).
    PAGE.set(learn.MODE, "walkthroughs")
    PAGE.set(learn.PICKER, walkthrough_id)


def _clear_progress() -> None:
    PAGE.set(learn.DONE, ())
    forget_verdicts()


def neighbours(current: str) -> tuple[str | None, str | None]:
    """The walkthroughs before and after ``current`` on the course path (None at either end)."""
    i = learn.ORDER.index(current)
    return (learn.ORDER[i - 1] if i > 0 else None, learn.ORDER[i + 1] if i + 1 < len(learn.ORDER) else None)


def overview_lines(current: str, done: tuple[str, ...]) -> list[str]:
    """The course as a markdown list: a tick for each done walkthrough, the current one in bold, and what each
    builds on."""
    lines = []
    for walkthrough_id in learn.ORDER:
        w = learn.BY_ID[walkthrough_id]
        name = learn.label(walkthrough_id)
        name = f"**{name}** (here)" if walkthrough_id == current else name
        needs = [str(learn.ORDER.index(p) + 1) for p in w.prerequisites if p in learn.BY_ID]
        after = f" · builds on {', '.join(needs)}" if needs else ""
        lines.append(f"- {DONE_MARK if walkthrough_id in done else TODO_MARK} {name}{after}")
    return lines


def _overview(current: str, done: tuple[str, ...]) -> None:
    with st.expander(f"Course path · {len(done)} of {len(learn.ORDER)} done", icon=":material/route:"):
        st.markdown("\n".join(overview_lines(current, done)))
        st.caption(
            "A walkthrough is done when every one of its exercises is checked right. Your progress is in the "
            "address bar (done=…): keep the link to carry on later. A teacher can hand out a link that starts at "
            "a walkthrough, with the earlier ones marked done."
        )
        st.button("Clear progress", key="learn_course_clear", on_click=_clear_progress, disabled=not done)


def _prerequisite_note(walkthrough: Walkthrough, done: tuple[str, ...]) -> None:
    missing = [p for p in walkthrough.prerequisites if p in learn.BY_ID and p not in done]
    if missing:
        names = ", ".join(learn.label(p) for p in missing)
        st.caption(f"Builds on {names}: not done yet in this course (the picker above opens it).")


def _prev_next(current: str) -> None:
    """Buttons to the walkthroughs before and after ``current`` on the course path (none at either end)."""
    before, after = neighbours(current)
    steps = (("Previous", before, "prev", "arrow_back"), ("Next", after, "next", "arrow_forward"))
    for column, (word, target, key, icon) in zip(st.columns(2), steps, strict=True):
        if target is not None:
            column.button(f"{word}: {learn.label(target)}", key=f"learn_course_{key}", icon=f":material/{icon}:",
                          on_click=_go_to, args=(target,), width="stretch")  # fmt: skip


# ---------------------------------------------------------------------------------------------- handouts


def _live_link(walkthrough_id: str, student_seed: int) -> str | None:
    """This app's address of the walkthrough with the seed (None when the browser's address is unknown)."""
    try:
        url = st.context.url
    except Exception:  # noqa: BLE001 (no browser context, e.g. a test run: the handout goes without it)
        return None
    if not url:
        return None
    parts = urlsplit(url)
    query = {learn.PICKER.param: walkthrough_id, SEED.param: str(student_seed)}
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def handout_of(walkthrough: Walkthrough, student_seed: int, live: str | None = None) -> handout.Handout:
    """The handout of ``walkthrough`` for this seed: its prose, exercises and figures."""
    prose = walkthrough.prose
    return handout.Handout(
        walkthrough=walkthrough.id,
        title=walkthrough.title,
        seed=student_seed,
        intro=prose.intro,
        formulas=prose.formulas,
        tries=prose.tries,
        exercises=walkthrough.exercises(student_seed) if walkthrough.exercises else (),
        figures=walkthrough.handout_figures(student_seed) if walkthrough.handout_figures else (),
        link=live,
    )


def _handouts(walkthrough: Walkthrough, student_seed: int) -> None:
    st.markdown("#### Handout")
    st.caption(
        f"This walkthrough as one HTML file that opens offline (figures included; formulas as LaTeX source), "
        f"with the exercises for seed {student_seed}; the answers are on a separate sheet for the teacher."
    )
    live = _live_link(walkthrough.id, student_seed)

    # The files are built when a button is pressed (a callable, in Streamlit's own thread), not on every run:
    # the figures take a moment and plotly.js alone is 4.6 MB.
    def student() -> str:
        return handout.student_html(handout_of(walkthrough, student_seed, live))

    def answers() -> str:
        return handout.answers_html(handout_of(walkthrough, student_seed, live))

    sheets = (
        ("Handout (HTML)", student, False, "student", "description"),
        ("Answer sheet for the teacher (HTML)", answers, True, "answers", "key"),
    )
    for column, (label, html, for_teacher, key, icon) in zip(st.columns(2), sheets, strict=True):
        column.download_button(
            label,
            data=html,
            file_name=handout.file_name(walkthrough.id, student_seed, answers=for_teacher),
            mime="text/html",
            key=f"learn_handout_{key}",
            icon=f":material/{icon}:",
            on_click="ignore",
            width="stretch",
        )


# ---------------------------------------------------------------------------------------------- drawing


def draw_walkthrough(walkthrough: Walkthrough) -> None:
    """The walkthrough with the course around it: the course overview (drawn last, above it, so it shows this
    run's progress), what it builds on, the record itself, the handouts and Previous / Next."""
    slot = st.container()
    done = PAGE.bind(learn.DONE)
    st.subheader(walkthrough.title)
    _prerequisite_note(walkthrough, done)
    walkthrough.render(walkthrough.prose)
    if walkthrough.exercises is not None:  # pure maths: drawn even when the part on the model is not
        draw_all(walkthrough.id, walkthrough.exercises(seed()))
    done = record_progress(walkthrough)
    _handouts(walkthrough, seed())
    st.divider()
    _prev_next(walkthrough.id)
    with slot:
        _overview(walkthrough.id, done)


def _stop_query(stop: TourStop) -> dict[str, str]:
    """The stop's link params, with the sidebar's (same model and text) from the current link."""
    current = st.query_params.to_dict()
    return {**{k: v for k, v in current.items() if k in SIDEBAR_PARAMS}, **stop.params}


def _set_stop(number: int) -> None:
    PAGE.set(STOP, number)


def draw_tour() -> None:
    """The guided tour: one stop at a time (the page to open, with the link that shows the point, and what to
    look at there), Previous / Next, and every stop listed."""
    number = PAGE.bind(STOP)
    stop = TOUR_STOPS[number - 1]
    st.subheader(f"Stop {number} of {len(TOUR_STOPS)}: {stop.title}")
    st.markdown(stop.look)
    link([stop.page], "Open it", query_params=_stop_query(stop))
    if stop.walkthrough in learn.BY_ID:
        st.button(
            f"Explained in walkthrough {learn.label(stop.walkthrough)}",
            key="learn_tour_walkthrough",
            icon=":material/school:",
            on_click=_go_to,
            args=(stop.walkthrough,),
        )
    left, right = st.columns(2)
    if number > 1:
        left.button(
            f"Previous stop: {TOUR_STOPS[number - 2].title}",
            key="learn_tour_prev",
            icon=":material/arrow_back:",
            on_click=_set_stop,
            args=(number - 1,),
            width="stretch",
        )
    if number < len(TOUR_STOPS):
        right.button(
            f"Next stop: {TOUR_STOPS[number].title}",
            key="learn_tour_next",
            icon=":material/arrow_forward:",
            on_click=_set_stop,
            args=(number + 1,),
            width="stretch",
        )
    st.markdown("#### The tour")
    st.markdown(
        "\n".join(
            f"{i}. {'**' if i == number else ''}{s.title}{'**' if i == number else ''} · {page_title(s.page)}"
            for i, s in enumerate(TOUR_STOPS, start=1)
        )
    )
    st.caption(
        "Open each stop's page (the sidebar's model and text go with it), look at what the sentence names, then "
        "come back here for the next stop. The stop is in the address bar, so a class can follow one link."
    )


def page_title(stem: str) -> str:
    """The navigation title of the page with url path ``stem`` (the stem itself when this build lacks it)."""
    return next((p.title for p in PAGES if p.url_path == stem), stem)
