"""Errors whose message is written for the person using the app: what went wrong and what to do.

The UI shows ``str(error)`` in an ``st.error`` box; anything else is a bug and shows as such.
"""


class ExplorerError(Exception):
    """Base class: the message is meant for the user, complete and actionable."""


class InputError(ExplorerError, ValueError):
    """The text (or another user-provided value) cannot be analysed as given."""


class ModelLoadError(ExplorerError, RuntimeError):
    """The model cannot be found, trusted, fitted in memory or loaded."""


class UnsupportedModelError(ModelLoadError):
    """The model loads, but its architecture is not one whose anatomy the explorer knows."""
