"""Learn handouts: a walkthrough as one standalone HTML file for the student, and its answers on a second one
for the teacher. No Streamlit here: the Learn page (explorer/ui/learn) gathers the content and offers both as
downloads; the tests build them from plain data.

The student's sheet opens offline: plotly.js is inlined once in the head (nothing is fetched, no
``<script src=...>``). Formulas are shown as their LaTeX source in a ``<pre>`` block: a formula renderer
(KaTeX, MathJax) would have to be fetched or inlined with its fonts, and a handout must open on a laptop
without a network. The prose is the walkthrough's markdown, converted by ``markdown_to_html`` (the small
subset the prose and the exercises use: paragraphs, ``- `` lists, ``**bold**``, ``*italic*``, ``code``,
``$tex$`` and links). The answers, hints and worked solutions are only on the teacher's sheet.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from explorer.analysis.exercises import Exercise

__all__ = ["Handout", "answer_text", "answers_html", "file_name", "markdown_to_html", "student_html"]

FORMULA_NOTE = "Formulas are shown as LaTeX source: the handout opens offline, without a formula renderer."
FIGURES_NOTE = (
    "The figures show the walkthrough's default settings (the same for every student: the exercises' numbers are "
    "your own). On the page you can change them; here you can zoom and hover."
)

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #1f2328; }
h1 { margin-bottom: 0.2rem; } .meta { color: #59636e; margin-top: 0; }
pre.tex { background: #f6f8fa; padding: 0.5rem 0.75rem; border-radius: 6px; overflow-x: auto; }
code { background: #f6f8fa; padding: 0 0.2rem; border-radius: 4px; }
.exercise { border: 1px solid #d1d9e0; border-radius: 8px; padding: 0.5rem 1rem; margin: 0.75rem 0; }
.blank { display: inline-block; min-width: 12rem; border-bottom: 1px solid #59636e; }
.answer { color: #1a7f37; font-weight: 600; }
.figure { page-break-inside: avoid; }
@media print { .figure { max-width: 100%; } }
"""


@dataclass(frozen=True)
class Handout:
    """What a handout holds.

    walkthrough: its id (``?walkthrough=<id>``); title; seed: the student's instance. intro: markdown
    paragraphs; formulas: LaTeX, one display formula each; tries: markdown items ("What to try").
    exercises: the student's exercises (for ``seed``). figures: Plotly figures (the student's sheet only).
    link: the address that opens the walkthrough live with this seed (None: not known, e.g. in tests)."""

    walkthrough: str
    title: str
    seed: int
    intro: str
    formulas: tuple[str, ...]
    tries: tuple[str, ...]
    exercises: tuple[Exercise, ...]
    figures: Sequence[go.Figure] = field(default_factory=tuple)
    link: str | None = None


# ------------------------------------------------------------------------------------------ markdown


_CODE = re.compile(r"`([^`]+)`")
_TEX = re.compile(r"\$([^$\n]+)\$")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def _inline(text: str) -> str:
    """One line or paragraph of markdown to HTML. Code spans and $tex$ are kept verbatim (escaped, no bold
    inside them); everything else is escaped before the markup is applied, so no raw HTML gets through."""
    out, last = [], 0
    protected = sorted(
        [(m.start(), m.end(), f"<code>{html.escape(m.group(1))}</code>") for m in _CODE.finditer(text)]
        + [
            (m.start(), m.end(), f"<code class='tex'>{html.escape(m.group(1))}</code>")
            for m in _TEX.finditer(text)
        ]
    )
    for start, end, rendered in protected:
        if start < last:  # a $ inside a code span (or the reverse): the first one found wins
            continue
        out.append(_markup(text[last:start]))
        out.append(rendered)
        last = end
    out.append(_markup(text[last:]))
    return "".join(out)


def _anchor(address: str, label: str) -> str:
    quoted = address.replace('"', "&quot;")
    return f'<a href="{quoted}">{label}</a>'


def _markup(text: str) -> str:
    # Escaped first: a link's address is already escaped (& as &amp;) when it is put in the attribute.
    text = html.escape(text, quote=False)
    text = _LINK.sub(lambda m: _anchor(m.group(2), m.group(1)), text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    return _ITALIC.sub(r"<em>\1</em>", text)


def markdown_to_html(text: str) -> str:
    """Markdown (the prose's subset) to HTML: blank-line-separated blocks; a block whose lines start with
    ``- `` is a list (an item goes on over indented lines), any other block a paragraph."""
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    parts = []
    for block in blocks:
        lines = block.splitlines()
        if lines[0].lstrip().startswith("- "):
            items: list[list[str]] = []
            for line in lines:
                if line.lstrip().startswith("- "):
                    items.append([line.lstrip()[2:].strip()])
                elif items:
                    items[-1].append(line.strip())
            parts.append("<ul>" + "".join(f"<li>{_inline(' '.join(i))}</li>" for i in items) + "</ul>")
        else:
            parts.append(f"<p>{_inline(' '.join(line.strip() for line in lines))}</p>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------ the sheets


def answer_text(exercise: Exercise) -> str:
    """The right answer as the teacher's sheet states it: "B. It diverges" or "0.4 (within ±0.005)"."""
    if exercise.kind == "choice":
        index = int(exercise.answer)
        return f"{_letter(index)}. {exercise.choices[index]}"
    return f"{float(exercise.answer):.6g} ({exercise.tolerance_text})"


def _letter(index: int) -> str:
    return chr(ord("A") + index)


def file_name(walkthrough: str, seed: int, *, answers: bool = False) -> str:
    """``handout-gd-seed7.html`` or ``answers-gd-seed7.html``."""
    return f"{'answers' if answers else 'handout'}-{walkthrough}-seed{seed}.html"


def _document(title: str, body: list[str], *, plotly: bool) -> str:
    script = f"<script type='text/javascript'>{get_plotlyjs()}</script>" if plotly else ""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>{script}</head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _meta(handout: Handout, what: str) -> str:
    live = (
        f' · live: <a href="{html.escape(handout.link)}">{html.escape(handout.link)}</a>'
        if handout.link
        else ""
    )
    return f"<p class='meta'>{what} · seed {handout.seed}{live}</p>"


def _question(number: int, exercise: Exercise) -> str:
    return f"<p><strong>Exercise {number}.</strong> {_inline(exercise.question)}</p>"


def student_html(handout: Handout) -> str:
    """The student's sheet: title, prose (formulas as LaTeX source), figures, and the exercises for their seed
    with room for the answer. No answers, hints or solutions."""
    body = [f"<h1>{html.escape(handout.title)}</h1>", _meta(handout, "Learn handout")]
    body.append(markdown_to_html(handout.intro))
    body.append(f"<p class='meta'>{html.escape(FORMULA_NOTE)}</p>")
    body += [f"<pre class='tex'>{html.escape(f)}</pre>" for f in handout.formulas]
    body.append("<h2>What to try</h2>" + markdown_to_html("\n".join(f"- {t}" for t in handout.tries)))
    if handout.figures:
        body.append(f"<h2>Figures</h2><p class='meta'>{html.escape(FIGURES_NOTE)}</p>")
    for number, fig in enumerate(handout.figures, start=1):
        chart = pio.to_html(
            fig,
            include_plotlyjs=False,
            full_html=False,
            div_id=f"figure-{number}",
            config={"displaylogo": False},
        )
        body.append(f"<div class='figure'>{chart}</div>")
    if handout.exercises:
        body.append("<h2>Exercises</h2><p>Predict first, then work it out. Your answers:</p>")
    for number, exercise in enumerate(handout.exercises, start=1):
        parts = [_question(number, exercise)]
        if exercise.kind == "choice":
            parts.append(
                "<ol type='A'>" + "".join(f"<li>{_inline(c)}</li>" for c in exercise.choices) + "</ol>"
                "<p>Your choice: <span class='blank'></span></p>"
            )
        else:
            parts.append(f"<p>Your answer ({exercise.tolerance_text}): <span class='blank'></span></p>")
        body.append(f"<div class='exercise'>{''.join(parts)}</div>")
    return _document(f"{handout.title} (seed {handout.seed})", body, plotly=bool(handout.figures))


def answers_html(handout: Handout) -> str:
    """The teacher's sheet: every exercise of this seed with its answer, tolerance, hint and worked solution
    (no figures and no plotly.js: it is a small page to print)."""
    body = [f"<h1>Answers: {html.escape(handout.title)}</h1>", _meta(handout, "For the teacher")]
    for number, exercise in enumerate(handout.exercises, start=1):
        body.append(
            "<div class='exercise'>"
            + _question(number, exercise)
            + f"<p>Answer: <span class='answer'>{html.escape(answer_text(exercise))}</span></p>"
            + f"<p>Hint: {_inline(exercise.hint)}</p>"
            + f"<p>Solution: {_inline(exercise.solution)}</p></div>"
        )
    if not handout.exercises:
        body.append("<p>This walkthrough has no exercises.</p>")
    return _document(f"Answers: {handout.title} (seed {handout.seed})", body, plotly=False)
