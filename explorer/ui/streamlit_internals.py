"""The one place that touches Streamlit internals: the legacy `pages/`-folder mode, switched off.

Why: a `pages/` folder beside the entry script makes Streamlit start every new server (and every AppTest run)
in its legacy folder-based multipage mode. The first script run then executes inside that mode, shows the
folder's file names as navigation and, for a page URL, runs the page file without the entry script (no sidebar).
`st.navigation` switches the mode off, but only from the next run on. Streamlit offers no public switch for
this (checked up to the locked version; its own `st.navigation` sets the same class attribute), so the app sets
``PagesManager.uses_pages_directory = False`` itself, here and nowhere else:

- `eigen-explorer serve` calls :func:`disable_legacy_pages_mode` before the server starts;
- the entry script calls :func:`leave_legacy_pages_mode` first thing (a run that started in legacy mode is
  switched and rerun at once);
- tests call :func:`use_navigation_in_apptest` before building an AppTest (AppTest resets the attribute to None
  before every run).

:func:`missing_internals` names what an upgrade removed or renamed; tests/unit/test_streamlit_internals.py fails
with that message, so an upgrade breaks one test with a clear reason instead of every page silently.
"""

from __future__ import annotations

ATTRIBUTE = "uses_pages_directory"


def _pages_manager():
    from streamlit.runtime.pages_manager import PagesManager

    return PagesManager


def missing_internals() -> list[str]:
    """What this module relies on and the installed Streamlit lacks (empty when all is there)."""
    missing = []
    try:
        manager = _pages_manager()
    except ImportError:
        return ["streamlit.runtime.pages_manager.PagesManager (module or class gone)"]
    if ATTRIBUTE not in vars(manager):
        missing.append(f"PagesManager.{ATTRIBUTE} (class attribute gone or renamed)")
    try:
        import streamlit.testing.v1.app_test as app_test
    except ImportError:
        missing.append("streamlit.testing.v1.app_test (module gone)")
    else:
        if getattr(app_test, "PagesManager", None) is None:
            missing.append("streamlit.testing.v1.app_test.PagesManager (no longer imported there)")
    return missing


def disable_legacy_pages_mode() -> bool:
    """Turn the legacy folder mode off for this process; True if it was on or not yet decided."""
    try:
        manager = _pages_manager()
    except ImportError:  # internals moved: nothing to undo (missing_internals says so in the tests)
        return False
    was_on = getattr(manager, ATTRIBUTE, None) is not False
    setattr(manager, ATTRIBUTE, False)
    return was_on


def leave_legacy_pages_mode() -> None:
    """In the entry script: if this run started in legacy mode, switch it off and rerun at once."""
    import streamlit as st

    try:
        manager = _pages_manager()
    except ImportError:
        return
    if getattr(manager, ATTRIBUTE, False):
        disable_legacy_pages_mode()
        st.rerun()


def use_navigation_in_apptest() -> None:
    """Make AppTest run the app as a server does after its first run: navigation mode, never the folder mode.

    AppTest resets the attribute to None before every run and builds its PagesManager from the name it imported;
    a subclass that switches the mode off on construction is put in that name's place. Idempotent.
    """
    import streamlit.testing.v1.app_test as app_test

    base = _pages_manager()
    if getattr(app_test.PagesManager, "_eigen_explorer_navigation", False):
        return

    class NavigationPagesManager(base):
        _eigen_explorer_navigation = True

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            setattr(base, ATTRIBUTE, False)

    app_test.PagesManager = NavigationPagesManager
