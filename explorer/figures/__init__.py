"""figures"""

# Plotly looks pandas up with sys.modules.get("pandas") (no import) whenever it validates an array. On a fresh
# server, when one session's thread is importing pandas (its first table) while another builds a figure, Plotly
# gets the half-initialised module and the page fails with "AttributeError: partially initialized module
# 'pandas' has no attribute 'Series'" (seen with twelve simultaneous sessions,
# tests/integration/test_concurrent_sessions.py). Importing pandas here, before any figure module runs, makes every
# thread that builds a figure wait until pandas is complete.
import pandas  # noqa: F401
