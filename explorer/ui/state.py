"""Page settings, their widgets and the link (st.query_params), bound one way on every page and the sidebar.

A page declares each setting once (its link param, default, and bounds or choices) and draws its widget through
a ``PageState``::

    page = PageState("attention")
    tau = page.slider(Float("tau", 1.0, 0.1, 5.0), "Temperature τ", step=0.05)

The widget key is the page's name and the setting's key (``attention_tau``); the link param keeps its old name
(``tau``). Before the widget is drawn the setting takes, in this order:

1. the link's value, when the link was changed from outside this session's own writes (a link just opened, a
   page link with params, an edited address) or when the widget is not on the page yet and the link has one;
2. the widget's value, when the widget was on the page in the previous run (the reader moved it);
3. the value this session last had for it (Streamlit forgets a widget's state when its page is left, and
   navigation clears the link, so this is what makes a page come back as it was left);
4. the default.

A link value that is not a value of the setting (not a number, NaN, an unknown choice) falls back to the
default; a number out of range is clamped. The value shown is written back to the link, and a default is left
out of it, so the address bar always says what the page shows and stays short.

Streamlit facts this relies on (checked on 1.67): a widget created with ``key=`` and no ``value=`` or
``index=`` takes its value from ``st.session_state[key]`` when that is set before the widget is created (the
helpers also pass that value as the default: the browser gets a session-state value once, with the run that set
it, and a run interrupted before its messages were sent would leave the widget at its default); the
state of a widget that is not drawn in a run is dropped at the end of that run; callbacks (``on_change``,
``on_click``) run before the script, so a value they write to session state is what the script sees; inside an
``@st.fragment`` rerun only the fragment's code runs, and it may read and write st.query_params like the full
script.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

_WRITTEN = "_state_link_written"  # {param: the text this session last wrote for it, None once removed}
_MEMORY = "_state_memory"  # {memory name: the last value of a setting in this session}


# ------------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One setting: its link param (``param``), its default, and how its values are read and written.

    ``key``: the widget key's suffix (the page's name is put in front); the param by default.
    ``aliases``: older param names read when ``param`` is absent (then removed from the link).
    ``shared``: a memory name shared with settings of other pages, so they follow each other in a session.
    """

    param: str
    default: Any
    key: str = ""
    aliases: tuple[str, ...] = ()
    shared: str | None = None

    @property
    def suffix(self) -> str:
        return self.key or self.param

    def parse(self, raw: str) -> Any:
        """The value a link's text stands for, or None when it is nonsense."""
        return self.clean(raw)

    def clean(self, value: Any) -> Any:
        """``value`` made valid (clamped), or None when it cannot be."""
        return value

    def format(self, value: Any) -> str:
        """The link's text for ``value``."""
        return str(value)

    def is_default(self, value: Any) -> bool:
        return self.format(value) == self.format(self.default)


def _clamp(value, low, high):
    return min(max(value, low), high)


@dataclass(frozen=True, kw_only=True)
class _Int(Setting):
    low: int
    high: int

    def parse(self, raw: str) -> int | None:
        try:
            return self.clean(int(str(raw)))
        except (TypeError, ValueError):
            return None

    def clean(self, value: Any) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        return int(_clamp(int(value), self.low, self.high))


@dataclass(frozen=True, kw_only=True)
class _Float(Setting):
    low: float
    high: float
    digits: int = 10

    def parse(self, raw: str) -> float | None:
        try:
            return self.clean(float(str(raw)))
        except (TypeError, ValueError):
            return None

    def clean(self, value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            return None
        return float(_clamp(float(value), self.low, self.high))

    def format(self, value: Any) -> str:
        return f"{float(value):.{self.digits}g}"


@dataclass(frozen=True, kw_only=True)
class _Choice(Setting):
    choices: tuple

    def parse(self, raw: str) -> Any:
        return next((c for c in self.choices if str(c) == str(raw)), None)

    def clean(self, value: Any) -> Any:
        return value if value in self.choices else None


@dataclass(frozen=True, kw_only=True)
class _Flag(Setting):
    on: str = "1"
    off: str = "0"

    def parse(self, raw: str) -> bool | None:
        return {self.on: True, self.off: False}.get(str(raw))

    def clean(self, value: Any) -> bool | None:
        return value if isinstance(value, bool) else None

    def format(self, value: Any) -> str:
        return self.on if value else self.off


@dataclass(frozen=True, kw_only=True)
class _Text(Setting):
    from_link: Callable[[str], str | None] | None = field(default=None, compare=False)
    to_link: Callable[[str], str] | None = field(default=None, compare=False)

    def parse(self, raw: str) -> str | None:
        return self.from_link(raw) if self.from_link else str(raw)

    def clean(self, value: Any) -> str | None:
        return value if isinstance(value, str) else None

    def format(self, value: Any) -> str:
        return self.to_link(value) if self.to_link else str(value).strip()


@dataclass(frozen=True, kw_only=True)
class _Subset(Setting):
    choices: tuple

    def parse(self, raw: str) -> tuple | None:
        chosen = set(str(raw).split(","))
        return tuple(c for c in self.choices if str(c) in chosen) or None

    def clean(self, value: Any) -> tuple | None:
        if not isinstance(value, tuple | list):
            return None
        return tuple(c for c in self.choices if c in value)

    def format(self, value: Any) -> str:
        return ",".join(str(c) for c in value)


def Int(param: str, default: int, low: int, high: int, **kw) -> Setting:  # noqa: N802 (reads as a type)
    """An integer in [low, high]; the default is clamped into the range too (ranges can depend on the model)."""
    high = max(low, high)
    return _Int(param=param, default=int(_clamp(default, low, high)), low=low, high=high, **kw)


def Float(param: str, default: float, low: float, high: float, **kw) -> Setting:  # noqa: N802
    """A float in [low, high]; ``digits=``: significant digits in the link (10 unless said)."""
    return _Float(param=param, default=float(_clamp(default, low, high)), low=low, high=high, **kw)


def Choice(param: str, default: Any, choices: Sequence, **kw) -> Setting:  # noqa: N802
    """One of ``choices`` (any values whose str() is their link text; a dict's keys)."""
    choices = tuple(choices)
    return _Choice(param=param, default=default if default in choices else choices[0], choices=choices, **kw)


def Flag(param: str, default: bool, *, on: str = "1", off: str = "0", **kw) -> Setting:  # noqa: N802
    """True or False, written ``on`` or ``off`` in the link."""
    return _Flag(param=param, default=bool(default), on=on, off=off, **kw)


def Subset(param: str, default: Sequence, choices: Sequence, **kw) -> Setting:  # noqa: N802
    """Any of ``choices`` (written ``a,b`` in the link, in the order of ``choices``); drawn as checkboxes."""
    choices = tuple(choices)
    return _Subset(param=param, default=tuple(c for c in choices if c in default), choices=choices, **kw)


def Text(  # noqa: N802
    param: str,
    default: str,
    *,
    from_link: Callable[[str], str | None] | None = None,
    to_link: Callable[[str], str] | None = None,
    **kw,
) -> Setting:
    """Free text. ``from_link`` turns the link's text into the widget's (None: nonsense), ``to_link`` back; the
    default is left out of the link when both have the same link text."""
    return _Text(param=param, default=default, from_link=from_link, to_link=to_link, **kw)


# -------------------------------------------------------------------------------------------- link access


def link_value(param: str) -> str | None:
    """The link's text for ``param`` (None: absent)."""
    raw = st.query_params.get(param)
    return None if raw is None else str(raw)


def incoming(param: str, key: str) -> str | None:
    """The link's text for ``param`` when it should set widget ``key``: the link changed from outside this
    session's own writes, or the widget is not on the page yet. None otherwise."""
    raw = link_value(param)
    if raw is None:
        return None
    written = st.session_state.get(_WRITTEN, {})
    if key not in st.session_state or written.get(param, None) != raw:
        return raw
    return None


def write_link(param: str, text: str | None) -> None:
    """Set ``param`` to ``text`` in the link (None removes it), and remember this session wrote it."""
    st.session_state.setdefault(_WRITTEN, {})[param] = text
    if text is None:
        if param in st.query_params:
            del st.query_params[param]
    elif st.query_params.get(param) != text:
        st.query_params[param] = text


def drop_from_link(*names: str) -> None:
    """Remove params from the link (a mode that is left takes its own params with it)."""
    for name in names:
        write_link(name, None)


def link_with(**overrides) -> dict[str, str]:
    """The link's params with ``overrides`` (for st.page_link(query_params=...): carry the view to a page)."""
    return {**st.query_params.to_dict(), **{k: str(v) for k, v in overrides.items()}}


# ----------------------------------------------------------------------------------------------- binding


def _memory() -> dict:
    return st.session_state.setdefault(_MEMORY, {})


class PageState:
    """The settings of one page (or the sidebar): widget keys ``<name>_<setting key>``."""

    def __init__(self, name: str):
        self.name = name

    def key(self, setting: Setting) -> str:
        return f"{self.name}_{setting.suffix}"

    def _memory_name(self, setting: Setting) -> str:
        return setting.shared or self.key(setting)

    def bind(self, setting: Setting, *, link: bool = True) -> Any:
        """The setting's value for this run (see the module docstring for the order); seeds the widget's state
        with it and writes it to the link. Call before drawing the widget (the helpers below do).

        ``link=False``: a setting whose widget is hidden in this mode keeps its value (read from the link
        once, like any other) but is left out of the link, so the link names only what the view uses."""
        key = self.key(setting)
        value = None
        for param in (setting.param, *setting.aliases):
            raw = incoming(param, key)
            if raw is not None:
                value = setting.parse(raw)
                if value is None:
                    value = setting.default
                break
        if value is None and key in st.session_state:
            value = setting.clean(st.session_state[key])
        if value is None:
            remembered = _memory().get(self._memory_name(setting))
            value = None if remembered is None else setting.clean(remembered)
        if value is None:
            value = setting.default
        self._store(setting, value, link=link)
        return value

    def set(self, setting: Setting, value: Any) -> Any:
        """Give a setting a value from the page (a click on a chart), before its widget is drawn."""
        value = setting.clean(value)
        value = setting.default if value is None else value
        self._store(setting, value)
        return value

    def _store(self, setting: Setting, value: Any, *, link: bool = True) -> None:
        key = self.key(setting)
        if st.session_state.get(key) != value or key not in st.session_state:
            st.session_state[key] = value
        _memory()[self._memory_name(setting)] = value
        shown = setting.format(value) if link and not setting.is_default(value) else None
        write_link(setting.param, shown)
        for alias in setting.aliases:
            if link_value(alias) is not None:
                write_link(alias, None)

    # --- widgets: bind, then draw with the setting's key, bounds or options. ``where``: a column, st.sidebar…

    def slider(self, setting: Setting, label: str, *, where=st, **kw):
        value = self.bind(setting)
        if getattr(setting, "low", None) == getattr(setting, "high", None):  # no range: nothing to choose
            where.caption(f"{label}: {setting.low}")
            return value
        return where.slider(label, setting.low, setting.high, value, key=self.key(setting), **kw)

    def number_input(self, setting: Setting, label: str, *, where=st, **kw):
        value = self.bind(setting)
        return where.number_input(label, setting.low, setting.high, value, key=self.key(setting), **kw)

    def select_slider(self, setting: Setting, label: str, options: Sequence | None = None, *, where=st, **kw):
        value = self.bind(setting)
        options = list(setting.choices if options is None else options)
        if value not in options:  # a value inside the bounds that is not an option (a gap)
            value = self.set(setting, setting.default if setting.default in options else options[0])
        return where.select_slider(label, options, value, key=self.key(setting), **kw)

    def _choice_widget(self, widget: str, setting: Setting, label: str, where, kw):
        value = self.bind(setting)
        choices = list(setting.choices)
        default = {"default": value} if widget == "segmented_control" else {"index": choices.index(value)}
        return getattr(where, widget)(label, choices, key=self.key(setting), **default, **kw)

    def selectbox(self, setting: Setting, label: str, *, where=st, **kw):
        return self._choice_widget("selectbox", setting, label, where, kw)

    def radio(self, setting: Setting, label: str, *, where=st, **kw):
        return self._choice_widget("radio", setting, label, where, kw)

    def segmented_control(self, setting: Setting, label: str, *, where=st, **kw):
        # required=True: a click on the chosen segment must not empty the setting.
        return self._choice_widget("segmented_control", setting, label, where, {"required": True, **kw})

    def toggle(self, setting: Setting, label: str, *, where=st, **kw) -> bool:
        value = self.bind(setting)
        return where.toggle(label, bool(value), key=self.key(setting), **kw)

    def checkbox(self, setting: Setting, label: str, *, where=st, **kw) -> bool:
        value = self.bind(setting)
        return where.checkbox(label, bool(value), key=self.key(setting), **kw)

    def checkboxes(self, setting: Setting, label: Callable[[Any], str], *, where=st, **kw) -> list:
        """One checkbox per choice of a Subset setting (keys ``<page>_<key>_<choice>``); returns the ticked."""
        keys = {choice: f"{self.key(setting)}_{choice}" for choice in setting.choices}
        if all(key in st.session_state for key in keys.values()):  # the boxes' own state is the widget value
            st.session_state[self.key(setting)] = tuple(c for c, key in keys.items() if st.session_state[key])
        value = self.bind(setting)
        for choice, key in keys.items():
            if st.session_state.get(key) != (choice in value):
                st.session_state[key] = choice in value
        return [c for c, key in keys.items() if where.checkbox(label(c), c in value, key=key, **kw)]

    def text_area(self, setting: Setting, label: str, *, where=st, **kw) -> str:
        value = self.bind(setting)
        return where.text_area(label, value, key=self.key(setting), **kw)

    def text_input(self, setting: Setting, label: str, *, where=st, **kw) -> str:
        value = self.bind(setting)
        return where.text_input(label, value, key=self.key(setting), **kw)


# --------------------------------------------------------------------------------------- layer and head

LAYER_HELP = (
    "Transformer block, counted from 0: block l reads the hidden state after l blocks and writes the one "
    "after l + 1 (every page uses this meaning of layer)."
)


def head_picker(
    page: PageState,
    n_layers: int,
    n_heads: int,
    *,
    default: tuple[int, int] = (0, 0),
    shared: str | None = None,
    widget: str = "slider",
    prefix: str = "",
) -> tuple[int, int]:
    """Layer (a block index 0..L-1, the same on every page) and head (0..H-1), side by side; link params
    ``layer`` and ``head``. ``shared``: pages with the same name follow each other's choice in a session.
    ``widget``: "slider" or "number" (number inputs, for pages where a chart click also picks the head).
    ``prefix``: put before the widget keys' ``layer`` and ``head`` (a page with several pickers)."""
    layer_setting, head_setting = head_settings(
        n_layers, n_heads, default=default, shared=shared, prefix=prefix
    )
    left, right = st.columns(2)
    if widget == "number":
        layer = page.number_input(layer_setting, "Layer", where=left, step=1, help=LAYER_HELP)
        head = page.number_input(head_setting, "Head", where=right, step=1, help="Head, counted from 0.")
    else:
        layer = page.slider(layer_setting, "Layer", where=left, help=LAYER_HELP)
        head = page.slider(head_setting, "Head", where=right, help="Head, counted from 0.")
    return int(layer), int(head)


def head_settings(
    n_layers: int,
    n_heads: int,
    *,
    default: tuple[int, int] = (0, 0),
    shared: str | None = None,
    prefix: str = "",
) -> tuple[Setting, Setting]:
    """The two settings behind head_picker (for a page that sets the head from elsewhere, a chart click)."""
    return (
        Int("layer", default[0], 0, n_layers - 1, key=f"{prefix}layer", shared=shared and f"{shared}_layer"),
        Int("head", default[1], 0, n_heads - 1, key=f"{prefix}head", shared=shared and f"{shared}_head"),
    )
