"""Read and write st.query_params safely: a bad value in a shared link never raises, it falls back."""

from __future__ import annotations

import streamlit as st


def get_int(name: str, default: int, low: int, high: int) -> int:
    """Integer query param clamped to [low, high]; nonsense gives ``default``."""
    raw = st.query_params.get(name)
    try:
        value = int(str(raw))
    except (TypeError, ValueError):
        return default
    return min(max(value, low), high)


def get_float(name: str, default: float, low: float, high: float) -> float:
    raw = st.query_params.get(name)
    try:
        value = float(str(raw))
    except (TypeError, ValueError):
        return default
    if value != value:  # NaN
        return default
    return min(max(value, low), high)


def get_choice(name: str, default: str, choices) -> str:
    raw = st.query_params.get(name)
    return raw if raw in choices else default


def set_params(**values) -> None:
    """Write values that changed (None removes the key); untouched keys stay."""
    for key, value in values.items():
        if value is None:
            if key in st.query_params:
                del st.query_params[key]
            continue
        text = str(value)
        if st.query_params.get(key) != text:
            st.query_params[key] = text
