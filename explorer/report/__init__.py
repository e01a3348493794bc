"""Headless report (metrics.json + report.html)."""
