"""Page settings, their widgets and the link (st.query_params), bound one way on every page and the sidebar.

A page declares each setting once (its link param, default, and bounds or choices) and draws its widget through
a ``PageState``::

    page = PageState("attention")
    tau = page.slider(Float("tau", 1.0, 0.1, 5.0), "Temperature τ", step=0.05)

The widget key is the page's name and the setting's key (``attention_tau``); the link param keeps its old name
(``tau``). Before the widget is drawn the setting takes, in this order:

1. the link's value, when the link was changed from outside this session's own writes (a link just opened, a
   page link with params, the browser's back and forward buttons) or when the widget is not on the page yet and
   the link has one;
2. the widget's value, when the widget was on the page in the previous run (the reader moved it);
3. the value this session last had for it (Streamlit forgets a widget's state when its page is left, and
   navigation clears the link, so this is what makes a page come back as it was left);
4. the default.

A link value that is not a value of the setting (not a number, NaN, an unknown choice) falls back to the
default; a number out of range is clamped. Each such replacement is named in one notice at the top of the page
(``open_link_notices``, ``close_link_notices``, ``link_notice``). The value shown is written back to the link, and a default is left
out of it, so the address bar always says what the page shows and stays short.

Fast input (checked in Chromium: arrow keys held on a slider). The browser sends each rerun request with the URL
it has at that moment, and Streamlit rebuilds ``st.query_params`` from it at the start of every run; the
browser applies the URL updates of earlier runs only when they arrive, which can be after it sent the next
request. Three rules keep widget, figures and link together however fast the input:

- A link text this session wrote itself is an echo of its own earlier state, never a change from outside: it
  does not override the widget (it once did, and the page jumped back to the value of two key presses ago
  while the slider showed the newest). Only the browser's back and forward buttons bring an old link back on
  purpose, and Streamlit says so (``is_history_navigation``).
- The link is sent again when the browser may be about to apply an older one: the run's query params are the
  browser's URL when it sent the request, not the URL it will have once messages in flight arrive, so "already
  says so" is judged against the last link this session sent, not against the run's query params.
- A run that a newer widget event has superseded stops before it writes anything: with ``runner.fastReruns``
  Streamlit starts the new run at once and the old thread goes on to its next yield point, sharing this
  session's state; every bind and link write is such a yield point.

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
from typing import Any, ClassVar

import streamlit as st

_WRITTEN = "_state_link_written"  # {param: the text this session last wrote for it, None once removed}
_OWN = "_state_link_own"  # {param: the texts this session wrote for it lately, oldest first}
_SENT = "_state_link_sent"  # the link's params as this session last sent them to the browser
_MEMORY = "_state_memory"  # {memory name: the last value of a setting in this session}
_NOTES = "_state_link_notes"  # {note id: LinkNote}, the link values replaced and not yet moved on from
_SLOT = "_state_link_notice_slot"  # this full run's placeholder for the notice (top of the main area)
_PAGE = "_state_link_page"  # the page the notes were drawn on last
_PENDING = "_state_link_notice_pending"  # notes were added where they could not be drawn at once
OWN_TEXTS_KEPT = 32  # echoes come from a few runs back; 32 texts per param is plenty and stays small


# ------------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One setting: its link param (``param``), its default, and how its values are read and written.

    ``key``: the widget key's suffix (the page's name is put in front); the param by default.
    ``aliases``: older param names read when ``param`` is absent (then removed from the link).
    ``shared``: a memory name shared with settings of other pages, so they follow each other in a session.
    ``hint``: added to the link notice when a link's value is not one of this setting's (what values look like).
    """

    param: str
    default: Any
    key: str = ""
    aliases: tuple[str, ...] = ()
    shared: str | None = None
    hint: str = field(default="", compare=False)

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

    def problem(self, raw: str) -> str | None:
        """What is wrong with a link's text for this setting, as the notice says it after the param's name
        (e.g. "999 does not exist (0-29)"); None when the text stands for a value as it is."""
        return None if self.parse(raw) is not None else f"'{_short(raw)}' is not a value here"

    def shown(self, value: Any) -> str:
        """How the notice names the value shown instead (the link's text for it)."""
        return self.format(value)


def _clamp(value, low, high):
    return min(max(value, low), high)


def _short(raw: str, limit: int = 40) -> str:
    """A link's text as a notice quotes it: one line, at most ``limit`` characters."""
    text = " ".join(str(raw).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


LISTED_CHOICES = 12  # a notice lists the choices of a setting that has at most this many


def _listed(choices: Sequence, limit: int = LISTED_CHOICES) -> str:
    """Choices as a notice lists them: all of a few, else the first few and how many more."""
    names = [str(c) for c in choices]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", … ({len(names)} in all)"


def _number(raw: str) -> float | None:
    try:
        return float(str(raw))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, kw_only=True)
class _Number(Setting):
    """A number of type ``KIND`` clamped into [low, high]. A value that is not a number (a bool is not one),
    or that KIND cannot hold (``usable`` false: NaN, and infinities for int), reads as missing."""

    KIND: ClassVar[type]
    low: float
    high: float

    def usable(self, value: float) -> bool:
        return not math.isnan(value)

    def parse(self, raw: str) -> Any:
        try:
            return self.clean(self.KIND(str(raw)))
        except (TypeError, ValueError):
            return None

    def clean(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or not self.usable(value):
            return None
        return self.KIND(_clamp(self.KIND(value), self.low, self.high))


@dataclass(frozen=True, kw_only=True)
class _Int(_Number):
    KIND: ClassVar[type] = int
    low: int
    high: int
    counts: bool = False  # an index of things (layers, heads): out of range reads "does not exist"

    def usable(self, value: float) -> bool:
        return math.isfinite(value)

    def problem(self, raw: str) -> str | None:
        number = _number(raw)
        if number is None or math.isnan(number):
            return f"'{_short(raw)}' is not a number"
        try:
            whole = int(str(raw))
        except ValueError:
            return f"'{_short(raw)}' is not a whole number"
        if self.low <= whole <= self.high:
            return None
        missing = "does not exist" if self.counts else "is out of range"
        return f"{_short(raw)} {missing} ({self.low}-{self.high})"

    def shown(self, value: Any) -> str:
        return f"{self.param} {self.format(value)}" if self.counts else self.format(value)


@dataclass(frozen=True, kw_only=True)
class _Float(_Number):
    KIND: ClassVar[type] = float
    digits: int = 10

    def problem(self, raw: str) -> str | None:
        number = _number(raw)
        if number is None or math.isnan(number):
            return f"'{_short(raw)}' is not a number"
        if self.low <= number <= self.high:
            return None
        return f"{_short(raw)} is out of range ({self.format(self.low)}-{self.format(self.high)})"

    def format(self, value: Any) -> str:
        return f"{float(value):.{self.digits}g}"


@dataclass(frozen=True, kw_only=True)
class _Choice(Setting):
    choices: tuple

    def parse(self, raw: str) -> Any:
        return next((c for c in self.choices if str(c) == str(raw)), None)

    def clean(self, value: Any) -> Any:
        return value if value in self.choices else None

    def problem(self, raw: str) -> str | None:
        if self.parse(raw) is not None:
            return None
        if len(self.choices) > LISTED_CHOICES:  # e.g. a model's parameter blocks: a hint says what they are
            return f"'{_short(raw)}' is not a choice here"
        return f"'{_short(raw)}' is not one of {_listed(self.choices)}"


@dataclass(frozen=True, kw_only=True)
class _Flag(Setting):
    on: str = "1"
    off: str = "0"

    def parse(self, raw: str) -> bool | None:
        return {self.on: True, self.off: False}.get(str(raw))

    def clean(self, value: Any) -> bool | None:
        return value if isinstance(value, bool) else None

    def problem(self, raw: str) -> str | None:
        return None if self.parse(raw) is not None else f"'{_short(raw)}' is not {self.on} or {self.off}"

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

    def problem(self, raw: str) -> str | None:
        return None if self.parse(raw) is not None else f"'{_short(raw)}' could not be read"

    def shown(self, value: Any) -> str:
        return "the default" if self.is_default(value) else f"'{_short(self.format(value))}'"

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

    def problem(self, raw: str) -> str | None:
        known = {str(c) for c in self.choices}
        unknown = [m for m in dict.fromkeys(str(raw).split(",")) if m and m not in known]
        if not unknown and self.parse(raw) is not None:
            return None
        if not unknown:
            return "names none of " + _listed(self.choices)
        names = ", ".join(f"'{_short(m, 20)}'" for m in unknown[:4]) + (" …" if len(unknown) > 4 else "")
        verb = "is" if len(unknown) == 1 else "are"
        return f"{names} {verb} not among {_listed(self.choices)}"

    def shown(self, value: Any) -> str:
        return self.format(value) or "none"


def Int(param: str, default: int, low: int, high: int, **kw) -> Setting:  # noqa: N802 (reads as a type)
    """An integer in [low, high]; the default is clamped into the range too (ranges can depend on the model).
    ``counts=True``: the integer numbers things (layers, heads), and a link's number outside the range "does
    not exist"."""
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


def _run_context():
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return get_script_run_ctx(suppress_warning=True)


def stop_if_superseded() -> None:
    """Stop this run here when a newer one has been asked for (a widget event since it started).

    Streamlit checks this at every element it draws; state writes are not such points, and with fast reruns the
    superseded run's thread goes on sharing the session's state with the new run until it draws something. Bind
    and link writes call this first, so a superseded run never writes a stale value over the new run's."""
    check = getattr(_run_context(), "yield_check", None)
    if check is not None:
        check()


def _history_navigation() -> bool:
    """True when this run was started by the browser's back or forward button (the URL is the reader's)."""
    return bool(getattr(_run_context(), "is_history_navigation", False))


def _params() -> tuple:
    """The link's params now, as a comparable value."""
    return tuple(sorted(st.query_params.to_dict().items()))


def incoming(param: str, key: str) -> str | None:
    """The link's text for ``param`` when it should set widget ``key``: the widget is not on the page yet, or
    the link changed from outside this session's own writes. None otherwise.

    A text this session wrote for ``param`` itself is an echo (a request sent before the browser had applied a
    later write), not a change, except after the back or forward button."""
    raw = link_value(param)
    if raw is None:
        return None
    state = st.session_state
    if key not in state:
        return raw
    if _history_navigation():
        return raw if state.get(_WRITTEN, {}).get(param) != raw else None
    return None if raw in state.get(_OWN, {}).get(param, ()) else raw


def write_link(param: str, text: str | None) -> None:
    """Set ``param`` to ``text`` in the link (None removes it), and remember this session wrote it.

    The link is sent to the browser when it changes, and also when this run's params (the browser's URL when it
    sent the request) differ from the last link this session sent: a message of an earlier run may still be on
    its way and would otherwise leave the address bar at that run's link."""
    stop_if_superseded()
    state = st.session_state
    state.setdefault(_WRITTEN, {})[param] = text
    if text is not None:
        own = state.setdefault(_OWN, {}).setdefault(param, [])
        if text in own:
            own.remove(text)
        own.append(text)
        del own[:-OWN_TEXTS_KEPT]
    if _SENT not in state:  # the session's first write: the browser has this URL, nothing of ours on its way
        state[_SENT] = _params()
    params = st.query_params
    if text is None and param in params:
        del params[param]
    elif text is not None and params.get(param) != text:
        params[param] = text
    elif _params() != state[_SENT]:
        params.update()  # send the link as it is now
    state[_SENT] = _params()


def drop_from_link(*names: str) -> None:
    """Remove params from the link (a mode that is left takes its own params with it)."""
    for name in names:
        write_link(name, None)


def link_with(**overrides) -> dict[str, str]:
    """The link's params with ``overrides`` (for st.page_link(query_params=...): carry the view to a page)."""
    return {**st.query_params.to_dict(), **{k: str(v) for k, v in overrides.items()}}


# ------------------------------------------------------------------------------------------- link notices


@dataclass(frozen=True)
class LinkNote:
    """One link value that was replaced, as the notice names it.

    ``text``: e.g. "layer 999 does not exist (0-29); showing layer 29". ``key`` (a session-state key, a widget's)
    and ``memory`` (a session-memory name, for a widget not drawn now): where the value shown lives; ``shows``:
    that value. The note goes once the reader changes it. ``page``: the page it belongs to (None: every page, the
    sidebar's notes)."""

    text: str
    key: str | None = None
    memory: str | None = None
    shows: Any = None
    page: str | None = None


def _notes() -> dict[str, LinkNote]:
    return st.session_state.setdefault(_NOTES, {})


def _still_shown(note: LinkNote) -> bool:
    """The page still shows the value the note names (the reader has not changed that setting)."""
    state = st.session_state
    if note.key is None and note.memory is None:
        return True
    if note.key is not None and note.key in state:
        return state[note.key] == note.shows
    memory = _memory()
    return note.memory in memory and memory[note.memory] == note.shows


def _in_fragment() -> bool:
    """True while a fragment's code runs (in a full run too). Writing the notice from there would make the
    fragment own it: Streamlit clears a fragment's writes outside its body on the fragment's next rerun, so the
    whole notice went with the first move of a slider in the fragment (seen in Chromium)."""
    try:
        from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState

        return ThreadState.get().fragment_id is not None
    except (ImportError, AttributeError):  # another Streamlit: draw at the end of the run (always safe)
        return True


def _draw_notices() -> None:
    """Draw the kept notes, one notice, in this full run's slot. A note added in a fragment's code is drawn by
    ``close_link_notices`` at the end of the run; one added in a fragment's own rerun (whose slot belongs to the
    last full run) by the next full run."""
    slot = st.session_state.get(_SLOT)
    if slot is None or getattr(_run_context(), "fragment_ids_this_run", None):
        return
    if _in_fragment():
        st.session_state[_PENDING] = True
        return
    st.session_state[_PENDING] = False
    notes = list(_notes().values())
    if notes:
        slot.info("Link: " + " · ".join(note.text for note in notes), icon=":material/link_off:")
    else:
        slot.empty()


def open_link_notices(page: str) -> None:
    """Reserve the link notice's place here (the top of the main area) for this full run, and draw the notes
    kept from earlier runs that still hold: a note goes when the reader changes its setting or leaves its page.
    ``streamlit_app.py`` calls this on every full run, before the sidebar; ``page`` names the page it runs."""
    stop_if_superseded()
    state = st.session_state
    state[_PAGE] = page
    state[_NOTES] = {
        name: note for name, note in _notes().items() if note.page in (None, page) and _still_shown(note)
    }
    state[_SLOT] = st.empty()
    _draw_notices()


def close_link_notices() -> None:
    """Draw the notes added in fragments during this full run (``streamlit_app.py`` calls this after the
    page; a page that stops early shows them on its next full run)."""
    if st.session_state.get(_PENDING):
        _draw_notices()


def link_notice(
    text: str,
    *,
    key: str | None = None,
    memory: str | None = None,
    shows: Any = None,
    every_page: bool = False,
    about: str | None = None,
) -> None:
    """Name a link value that was replaced in the page's one link notice (``text`` without "Link:", e.g. "model
    'x' is not available here; showing smollm2-135m"). ``key``/``memory`` and ``shows``: the setting and the
    value shown instead (the note goes once the reader changes it). ``every_page``: keep it across pages (the
    sidebar's). ``about``: what the note is about (the link param), so a later note about it replaces it; the
    key by default. Bound settings call this themselves; a page calls it only for a check of its own."""
    page = None if every_page else st.session_state.get(_PAGE)
    name = about or key or memory or text
    _notes()[name] = LinkNote(text=text, key=key, memory=memory, shows=shows, page=page)
    _draw_notices()


# ----------------------------------------------------------------------------------------------- binding


def _memory() -> dict:
    return st.session_state.setdefault(_MEMORY, {})


class PageState:
    """The settings of one page (or the sidebar): widget keys ``<name>_<setting key>``. ``every_page``: its
    settings are on every page (the sidebar's), and so are their link notes."""

    def __init__(self, name: str, *, every_page: bool = False):
        self.name = name
        self.every_page = every_page

    def key(self, setting: Setting) -> str:
        return f"{self.name}_{setting.suffix}"

    def _memory_name(self, setting: Setting) -> str:
        return setting.shared or self.key(setting)

    def bind(self, setting: Setting, *, link: bool = True) -> Any:
        """The setting's value for this run (see the module docstring for the order); seeds the widget's state
        with it and writes it to the link. Call before drawing the widget (the helpers below do).

        ``link=False``: a setting whose widget is hidden in this mode keeps its value (read from the link
        once, like any other) but is left out of the link, so the link names only what the view uses."""
        return self._bind(setting, link=link)[0]

    def _note(self, setting: Setting, param: str, problem: str, value: Any) -> None:
        hint = f" ({setting.hint})" if setting.hint else ""
        link_notice(
            f"{param} {problem}; showing {setting.shown(value)}{hint}",
            key=self.key(setting),
            memory=self._memory_name(setting),
            shows=value,
            every_page=self.every_page,
        )

    def _bind(self, setting: Setting, *, link: bool = True) -> tuple[Any, tuple[str, str] | None]:
        """bind's value, and (param, the link's text) when the value came from the link in this run."""
        stop_if_superseded()
        key = self.key(setting)
        value = None
        origin = None
        for param in (setting.param, *setting.aliases):
            raw = incoming(param, key)
            if raw is not None:
                origin = (param, raw)
                value = setting.parse(raw)
                if value is None:
                    value = setting.default
                problem = setting.problem(raw)
                if problem is not None:
                    self._note(setting, param, problem, value)
                break
        if value is None and key in st.session_state:
            value = setting.clean(st.session_state[key])
        if value is None:
            remembered = _memory().get(self._memory_name(setting))
            value = None if remembered is None else setting.clean(remembered)
        if value is None:
            value = setting.default
        self._store(setting, value, link=link)
        return value, origin

    def widget_value(self, suffix: str) -> Any:
        """The current value of this page's widget ``<page>_<suffix>`` that is not a link setting (a picker whose
        callback loads settings: Streamlit passes a callback no value), or None before it is drawn."""
        return st.session_state.get(f"{self.name}_{suffix}")

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
        value, origin = self._bind(setting)
        options = list(setting.choices if options is None else options)
        if value not in options:  # a value inside the bounds that is not an option (a gap)
            value = self.set(setting, setting.default if setting.default in options else options[0])
            if origin is not None:
                param, raw = origin
                self._note(setting, param, f"{_short(raw)} is not offered here ({_listed(options)})", value)
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

    def _box_keys(self, setting: Setting) -> dict:
        return {choice: f"{self.key(setting)}_{choice}" for choice in setting.choices}

    def ticked(self, setting: Setting) -> tuple:
        """A Subset's ticked choices before its checkboxes are drawn (a view above them uses them): the boxes'
        own state once they exist, else the setting's value (link, memory or default)."""
        keys = self._box_keys(setting)
        if all(key in st.session_state for key in keys.values()):
            return tuple(choice for choice, key in keys.items() if st.session_state[key])
        return tuple(self.bind(setting))

    def checkboxes(self, setting: Setting, label: Callable[[Any], str], *, where=st, **kw) -> list:
        """One checkbox per choice of a Subset setting (keys ``<page>_<key>_<choice>``); returns the ticked."""
        keys = self._box_keys(setting)
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


def new_chart_selection(chart_key: str, read: Callable[[dict], Any]) -> Any | None:
    """What a chart's newest selection says (``read`` of its selection state, e.g. the first clicked point's
    cell), or None where there is none or it was already applied.

    Read at the top of the rerun the selection caused, once: a selection already applied is ignored, so a later
    change of the page's inputs is not undone by the stale selection. A cleared selection (``read`` raising
    KeyError/IndexError/TypeError/ValueError) forgets the applied one, so the next click counts even on the same
    cell."""
    applied = f"{chart_key}_applied"
    try:
        selected = read(st.session_state.get(chart_key)["selection"])
    except (TypeError, KeyError, IndexError, ValueError):
        st.session_state.pop(applied, None)
        return None
    if st.session_state.get(applied) == selected:
        return None
    st.session_state[applied] = selected
    return selected


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

    def counted(name: str, value: int, count: int) -> Setting:
        return Int(name, value, 0, count - 1, key=f"{prefix}{name}", shared=shared and f"{shared}_{name}",
                   counts=True)  # fmt: skip

    return counted("layer", default[0], n_layers), counted("head", default[1], n_heads)
