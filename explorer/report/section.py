"""What every report section returns (its own module, so section modules and build.py import it without a cycle)."""

from __future__ import annotations

from dataclasses import dataclass, field

import plotly.graph_objects as go


@dataclass
class ReportSection:
    """One capability's part of the report: ``data`` goes to metrics.json under ``key`` (top level
    when ``key`` is None), ``figures`` to report.html."""

    title: str
    key: str | None
    data: dict
    figures: list[tuple[str, go.Figure]] = field(default_factory=list)
    text: str = ""
