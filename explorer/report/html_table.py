"""The report's small HTML tables (class "card", styled by report.html)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence


def card_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """``<table class='card'>``: one header row of ``headers``, then one row per item of ``rows`` (a sequence
    of cells, each written with str() and HTML-escaped)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='card'><tr>{head}</tr>{body}</table>"
