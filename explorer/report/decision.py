"""A compression decision as a standalone page and a table: data in, text out (no Streamlit, no model).

``decision_html`` writes one HTML document that opens offline (plotly.js is inlined, nothing is fetched): the
chart the page drew, the chosen setting, the measured quality with how it was measured (passage, tokens, each
metric's definition), and the compared rows. ``decision_csv`` writes the same rows as CSV. Numbers are written
with ``format_value`` (6 significant digits), in both.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#1c2541}
h1{color:#3b5bdb} table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #d0d7e8;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef2fb} td.num{text-align:right;font-family:monospace} .note{color:#5c6784}
"""


def format_value(value) -> str:
    """How a cell is written: floats to 6 significant digits, None and non-finite as empty / 'nan', lists
    joined by ', ', everything else as str."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else "nan"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def _columns(rows: Sequence[Mapping]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def decision_csv(rows: Sequence[Mapping]) -> str:
    """The rows as CSV: one header (every key, in order of first appearance), one line per row."""
    columns = _columns(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_value(row.get(c)) for c in columns])
    return buffer.getvalue()


def _cell(value) -> str:
    cls = " class='num'" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return f"<td{cls}>{html.escape(format_value(value))}</td>"


def _table(rows: Sequence[Mapping], columns: list[str] | None = None) -> str:
    columns = columns or _columns(rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pairs(mapping: Mapping) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th>{_cell(v if not isinstance(v, Mapping) else _flat(v))}</tr>"
        for k, v in mapping.items()
    )
    return f"<table><tbody>{body}</tbody></table>"


def _flat(mapping: Mapping) -> str:
    return "; ".join(f"{k}: {format_value(v)}" for k, v in mapping.items())


def _quality_section(quality: Mapping) -> str:
    """The measured metrics (original, compressed, definition) and how they were measured."""
    metrics = quality.get("metrics") or {}
    rows = [
        {
            "metric": name,
            "original": m.get("original"),
            "compressed": m.get("compressed"),
            "definition": m.get("definition"),
        }
        for name, m in metrics.items()
    ]
    how = {k: v for k, v in quality.items() if k != "metrics"}
    parts = ["<h2>Measured quality</h2>"]
    if rows:
        parts.append(_table(rows, ["metric", "original", "compressed", "definition"]))
    if how:
        parts.append("<h3>How it was measured</h3>" + _pairs(how))
    return "".join(parts)


def decision_html(
    fig: go.Figure,
    rows: Sequence[Mapping],
    *,
    title: str,
    setting: Mapping,
    quality: Mapping,
    notes: Sequence[str] = (),
) -> str:
    """One standalone HTML document: ``title``; ``setting`` (name -> value: the decision); ``quality`` as
    explorer.analysis.export.quality_record writes it (``metrics``: name -> original / compressed / definition,
    plus passage, tokens, ...); ``fig``, the page's chart, with plotly.js inlined; ``rows``, the compared
    settings (the CSV's rows); ``notes``, sentences shown under the title."""
    chart = pio.to_html(fig, include_plotlyjs=False, full_html=False, config={"displaylogo": False})
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]
    parts.append("<h2>Setting</h2>" + _pairs(setting))
    parts.append(_quality_section(quality))
    parts.append("<h2>Chart</h2>" + chart)
    if rows:
        parts.append("<h2>Compared settings</h2>" + _table(rows))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )


__all__ = ["decision_csv", "decision_html", "format_value"]
