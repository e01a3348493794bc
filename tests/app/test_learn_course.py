"""The course on the Learn page under AppTest: exercises answered right and wrong, progress in the link and the
overview, Previous / Next along the course path, the handout downloads, and the guided tour."""

import numpy as np
import pytest

from explorer.analysis import teaching
from explorer.ui import learn
from explorer.ui.learn import course
from tests.apptest import assert_page_ok, run_page

PAGE = "pages/learn.py"
SEED = 7


def _answer(at, walkthrough: str, exercise: str, given) -> None:
    """Type (or pick) an answer and press Check, as a student does."""
    key = f"learn_ex_{walkthrough}_{exercise}"
    if isinstance(given, int):
        at.radio(key=f"{key}_answer").set_value(given)
    else:
        at.text_input(key=f"{key}_answer").input(given)
    at.button(key=f"{key}_check").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]  # a wrong answer's error box is expected


def _gd_answers(seed: int) -> dict:
    """The right answers for gd, recomputed here from the student's instance with numpy."""
    g = teaching.gd_instance(seed)
    lam = np.linalg.eigvalsh(np.diag([g.lam_max, g.lam_min]))
    etas = np.linspace(0, 2 / lam.max(), 100_001)
    best = np.abs(1 - etas[:, None] * lam[None, :]).max(axis=1).min()
    return {
        "eta_max": f"{2 / lam.max():.4f}",
        "best_rate": f"{best:.4f}",
        "converges": int(g.eta * lam.max() > 2),
    }


def _overview(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("- ") and "1 · A 2×2 matrix" in m.value)


def test_right_answers_mark_the_walkthrough_done_in_the_link_and_the_overview():
    at = run_page(PAGE, walkthrough="gd", seed=SEED)
    assert_page_ok(at)
    assert at.query_params.get(
        "done"
    ) is None and f"{course.TODO_MARK} **3 · Gradient descent** (here)" in _overview(at)
    answers = _gd_answers(SEED)
    # One wrong first: refused, with a hint; nothing marked done.
    _answer(at, "gd", "eta_max", str(float(answers["eta_max"]) + 0.1))
    assert [e.value for e in at.error] and all(e.value.startswith("Not quite") for e in at.error)
    assert any(i.value.startswith("Hint:") for i in at.info)
    assert at.query_params.get("done") is None
    # Then every answer right.
    for exercise, given in answers.items():
        _answer(at, "gd", exercise, given)
    assert not at.error and len(at.success) == len(answers)
    assert at.query_params.get("done") == "gd"
    assert f"{course.DONE_MARK} **3 · Gradient descent** (here)" in _overview(at)
    # Next goes along the course path and keeps the progress in the link.
    at.button(key="learn_course_next").click().run()
    assert_page_ok(at)
    after = learn.ORDER[learn.ORDER.index("gd") + 1]
    assert at.segmented_control(key="learn_walkthrough").value == after
    assert at.query_params.get("walkthrough") == after and at.query_params.get("done") == "gd"
    at.button(key="learn_course_prev").click().run()
    assert at.segmented_control(key="learn_walkthrough").value == "gd"
    # Clear progress empties it.
    at.button(key="learn_course_clear").click().run()
    assert at.query_params.get(
        "done"
    ) is None and f"{course.TODO_MARK} **3 · Gradient descent**" in _overview(at)


def test_a_start_here_link_opens_with_the_progress_it_carries():
    at = run_page(PAGE, walkthrough="svd", done="matrix2x2,power", seed=3)
    assert_page_ok(at)
    lines = _overview(at).splitlines()
    assert lines[learn.ORDER.index("matrix2x2")].startswith(f"- {course.DONE_MARK}")
    assert lines[learn.ORDER.index("power")].startswith(f"- {course.DONE_MARK}")
    assert lines[learn.ORDER.index("gd")].startswith(f"- {course.TODO_MARK}")
    assert at.query_params.get("done") == "matrix2x2,power"
    # svd builds on matrix2x2 only, which is done: no "builds on" note.
    assert not any("not done yet" in c.value for c in at.caption)
    at = run_page(PAGE, walkthrough="nonnormal")
    assert any("Builds on 1 · A 2×2 matrix, 2 · Power iteration" in c.value for c in at.caption)


def test_an_unknown_id_in_done_is_named_and_dropped():
    at = run_page(PAGE, walkthrough="gd", done="power,nonsense")
    assert not at.exception
    assert at.query_params.get("done") == "power"
    shown = [w.value for w in at.warning] + [i.value for i in at.info] + [m.value for m in at.markdown]
    assert any("nonsense" in text for text in shown)


def test_a_wrong_choice_is_refused_and_a_right_one_accepted():
    at = run_page(PAGE, walkthrough="nonnormal", seed=SEED)
    right = int(np.linalg.norm(np.linalg.matrix_power(teaching.nonnormal_instance(SEED).matrix, 2000), 2) > 1)
    _answer(at, "nonnormal", "long_run", 2)  # "stays bounded": never right for rho != 1
    assert at.error and not at.success
    _answer(at, "nonnormal", "long_run", right)
    assert at.success and not at.error


@pytest.mark.parametrize("walkthrough", ["matrix2x2", "svd"])
def test_the_handout_downloads_are_offered_with_the_students_seed(walkthrough):
    at = run_page(PAGE, walkthrough=walkthrough, seed=11)
    assert_page_ok(at)
    buttons = {b.key: b for b in at.get("download_button")}
    assert set(buttons) == {"learn_handout_student", "learn_handout_answers"}
    assert "seed 11" in next(c.value for c in at.caption if "opens offline" in c.value)
    record = learn.BY_ID[walkthrough]
    sheet = course.handout_of(record, 11)
    assert sheet.exercises == record.exercises(11) and len(sheet.figures) >= 1
    assert sheet.seed == 11 and sheet.title == record.title


def test_the_caption_counts_the_records():
    at = run_page(PAGE)
    assert_page_ok(at)
    assert at.caption[0].value.startswith(f"{len(learn.WALKTHROUGHS)} short walkthroughs")


def test_the_guided_tour_walks_the_pages_in_order():
    at = run_page(PAGE, mode="tour", stop=2)
    assert_page_ok(at)
    n = len(course.TOUR_STOPS)
    assert any(h.value == f"Stop 2 of {n}: {course.TOUR_STOPS[1].title}" for h in at.subheader)
    assert course.TOUR_STOPS[1].look in [m.value for m in at.markdown]
    links = at.get("page_link")
    assert links and links[0].proto.page.endswith("attention.py") or "attention" in str(links[0].proto)
    at.button(key="learn_tour_next").click().run()
    assert_page_ok(at)
    assert at.query_params.get("stop") == "3" and at.query_params.get("mode") == "tour"
    assert any(h.value.startswith(f"Stop 3 of {n}") for h in at.subheader)
    assert at.query_params.get("walkthrough") is None  # the walkthrough's params stay out of the tour's link
    # The stop's walkthrough button leaves the tour for the walkthrough that explains it.
    at.button(key="learn_tour_walkthrough").click().run()
    assert_page_ok(at)
    assert at.query_params.get("mode") is None and at.query_params.get("stop") is None
    assert at.segmented_control(key="learn_walkthrough").value == course.TOUR_STOPS[2].walkthrough


def test_every_tour_stop_names_a_real_page_and_a_known_walkthrough():
    from explorer.ui.navigation import PAGES

    stems = {p.url_path for p in PAGES}
    for stop in course.TOUR_STOPS:
        assert stop.page in stems, stop
        assert stop.walkthrough is None or stop.walkthrough in learn.BY_ID, stop
        assert stop.look.endswith(".")
    assert course.STOP.param in learn.PAGE_PARAMS
