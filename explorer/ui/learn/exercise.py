"""Drawing an exercise (explorer/analysis/exercises.py) in a walkthrough: predict, check, hint, solution.

The student's seed is a Learn page setting in the link (``seed=``): a teacher hands each student a link with
their own seed and every exercise gives that student their own numbers. Answers and verdicts live in this
browser session only (never in the link: a shared link must not carry the answer).
"""

from __future__ import annotations

import streamlit as st

from explorer.analysis.exercises import Exercise, Verdict
from explorer.ui.learn.walkthrough import PAGE
from explorer.ui.state import Int

#: The student's instance (link param ``seed``); every seed gives other matrices and other answers.
SEED = Int("seed", 1, 1, 999_999, key="seed")


def seed() -> int:
    """This student's seed (from the link, else this session's, else 1)."""
    return PAGE.bind(SEED)


def _key(walkthrough: str, exercise: Exercise, part: str) -> str:
    return f"learn_ex_{walkthrough}_{exercise.id}_{part}"


def verdict_of(walkthrough: str, exercise: Exercise) -> Verdict | None:
    """The verdict of this session's last check of ``exercise`` (None before a check)."""
    return st.session_state.get(_key(walkthrough, exercise, "verdict"))


def forget_verdicts() -> None:
    """Forget every check of this session (all walkthroughs): a student who clears their progress starts over,
    and a walkthrough is not marked done again by checks made before."""
    for key in [
        k for k in st.session_state if str(k).startswith("learn_ex_") and str(k).endswith("_verdict")
    ]:
        del st.session_state[key]


def draw(walkthrough: str, exercise: Exercise, number: int = 1) -> Verdict | None:
    """Draw ``exercise`` of ``walkthrough`` in a bordered box; returns the verdict of the last check.

    A check is kept per instance: a new seed (other numbers) clears it, since the old verdict was about
    another matrix."""
    instance = (exercise.question, exercise.answer)
    verdict_key = _key(walkthrough, exercise, "verdict")
    if st.session_state.get(_key(walkthrough, exercise, "instance")) != instance:
        st.session_state[_key(walkthrough, exercise, "instance")] = instance
        st.session_state.pop(verdict_key, None)
    with st.container(border=True):
        st.markdown(f"**Exercise {number}: predict first.** {exercise.question}")
        answer_key = _key(walkthrough, exercise, "answer")
        if exercise.kind == "choice":
            given = st.radio(
                "Your answer",
                range(len(exercise.choices)),
                format_func=lambda i: exercise.choices[i],
                index=None,
                key=answer_key,
            )
        else:
            given = st.text_input(
                f"Your answer ({exercise.tolerance_text})",
                key=answer_key,
                placeholder="a number: 0.25, 1/4, 2e-3",
            )
        if st.button("Check", key=_key(walkthrough, exercise, "check"), icon=":material/task_alt:"):
            st.session_state[verdict_key] = exercise.check(given)
        verdict = st.session_state.get(verdict_key)
        if verdict is not None:
            if verdict.right:
                st.success(verdict.message, icon=":material/check_circle:")
            else:
                st.error(verdict.message, icon=":material/cancel:")
                if verdict.given is not None:
                    st.info(f"Hint: {exercise.hint}", icon=":material/lightbulb:")
        with st.expander("Worked solution"):
            st.markdown(exercise.solution)
    return verdict


def draw_all(walkthrough: str, exercises: tuple[Exercise, ...]) -> None:
    """A walkthrough's exercises under one heading, numbered from 1 (nothing when there are none)."""
    if not exercises:
        return
    st.markdown("#### Exercises")
    st.caption(
        f"Your instance: seed {seed()} (in the address bar; another seed gives other numbers). Predict, then "
        "check: a wrong answer gets a hint, and the worked solution is there when you want it."
    )
    for number, exercise in enumerate(exercises, start=1):
        draw(walkthrough, exercise, number)
