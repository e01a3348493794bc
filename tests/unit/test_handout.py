"""Handouts (explorer/report/handout.py): the student's sheet opens offline (plotly.js inline, no external
script), holds the prose, figures and exercises but no answers; the teacher's sheet holds the answers."""

import html
from html.parser import HTMLParser

import plotly.graph_objects as go
import pytest

from explorer.analysis import teaching
from explorer.analysis.exercises import Exercise
from explorer.report import handout
from explorer.ui import learn


class _Scripts(HTMLParser):
    """Every <script>'s attributes, and every tag that loads something from elsewhere (src/href on link)."""

    def __init__(self):
        super().__init__()
        self.scripts: list[dict] = []
        self.external: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts.append(attrs)
        if (tag in ("script", "img", "iframe") and "src" in attrs) or (tag == "link" and "href" in attrs):
            self.external.append((tag, attrs))


def _parsed(text: str) -> _Scripts:
    parser = _Scripts()
    parser.feed(text)
    return parser


def _handout(walkthrough: str = "gd", seed: int = 7) -> handout.Handout:
    record = learn.BY_ID[walkthrough]
    prose = record.prose
    return handout.Handout(
        walkthrough=walkthrough,
        title=record.title,
        seed=seed,
        intro=prose.intro,
        formulas=prose.formulas,
        tries=prose.tries,
        exercises=record.exercises(seed),
        figures=record.handout_figures(seed),
        link=f"http://localhost:8501/learn?walkthrough={walkthrough}&seed={seed}",
    )


@pytest.fixture(scope="module")
def sheets():
    h = _handout()
    return h, handout.student_html(h), handout.answers_html(h)


def test_the_students_sheet_opens_offline(sheets):
    h, student, _ = sheets
    parsed = _parsed(student)
    assert not parsed.external, parsed.external  # nothing fetched: no <script src>, no stylesheet link
    assert "<script src" not in student.lower()
    assert len(parsed.scripts) == 1 + len(h.figures)  # plotly.js once, then one script per figure
    assert "Plotly.newPlot" in student and len(student) > 3_000_000  # plotly.js itself is inline
    for number in range(1, len(h.figures) + 1):
        assert f'id="figure-{number}"' in student


def test_the_students_sheet_has_the_prose_and_the_exercises_but_no_answers(sheets):
    h, student, _ = sheets
    assert h.title in student and f"seed {h.seed}" in student
    for formula in h.formulas:
        assert f"<pre class='tex'>{html.escape(formula)}</pre>" in student
    assert handout.FORMULA_NOTE in student
    assert html.escape(handout.FIGURES_NOTE) in student and student.index(
        html.escape(handout.FIGURES_NOTE)
    ) < student.index('id="figure-1"')
    for exercise in h.exercises:
        assert handout.markdown_to_html(exercise.question).removeprefix("<p>").removesuffix("</p>") in student
        assert handout.markdown_to_html(exercise.solution)[3:-4] not in student
        assert handout.markdown_to_html(exercise.hint)[3:-4] not in student
    assert "class='answer'" not in student


def test_the_teachers_sheet_has_every_answer_and_no_plotly(sheets):
    h, _, answers = sheets
    assert not _parsed(answers).scripts and len(answers) < 50_000
    for exercise in h.exercises:
        assert f"<span class='answer'>{html.escape(handout.answer_text(exercise))}</span>" in answers
        assert handout.markdown_to_html(exercise.solution)[3:-4] in answers
    # The answers stated are the exercises' own (2/lambda_max here, recomputed from the instance).
    g = teaching.gd_instance(h.seed)
    assert f"{2 / g.lam_max:.6g} (within ±0.005)" in answers


@pytest.mark.parametrize("walkthrough", ["matrix2x2", "power", "gd", "temperature", "nonnormal", "svd"])
def test_every_first_walkthrough_has_a_handout_with_figures(walkthrough):
    h = _handout(walkthrough, seed=3)
    assert h.figures and all(isinstance(f, go.Figure) for f in h.figures)
    student = handout.student_html(h)
    assert not _parsed(student).external
    assert student.count("class='exercise'") == len(h.exercises) >= 1


def test_answer_text_names_the_choice_or_the_number_with_its_tolerance():
    choice = Exercise("c", "Which?", 1, hint="h", solution="s", choices=("up", "down"))
    number = Exercise("n", "How much?", 0.25, hint="h", solution="s", tolerance=0.01)
    assert handout.answer_text(choice) == "B. down"
    assert handout.answer_text(number) == "0.25 (within ±0.01)"
    assert handout.file_name("svd", 5) == "handout-svd-seed5.html"
    assert handout.file_name("svd", 5, answers=True) == "answers-svd-seed5.html"


def test_markdown_subset_and_escaping():
    assert handout.markdown_to_html("A **bold** and *italic* `a*b*c` $x^2$.") == (
        "<p>A <strong>bold</strong> and <em>italic</em> <code>a*b*c</code> <code class='tex'>x^2</code>.</p>"
    )
    assert handout.markdown_to_html("- one\n  more\n- [two](http://x?a=1&b=2)") == (
        '<ul><li>one more</li><li><a href="http://x?a=1&amp;b=2">two</a></li></ul>'
    )
    assert handout.markdown_to_html("x <script>alert(1)</script>\n\nnext") == (
        "<p>x &lt;script&gt;alert(1)&lt;/script&gt;</p>\n<p>next</p>"
    )
