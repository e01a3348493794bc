"""The app relies on one Streamlit internal (explorer/ui/streamlit_internals.py): an upgrade that removes or
renames it must fail here, by name, rather than break every page's first visit."""

import streamlit.testing.v1.app_test as app_test
from streamlit.runtime.pages_manager import PagesManager

from explorer.ui import streamlit_internals


def test_the_internals_the_app_relies_on_are_there():
    missing = streamlit_internals.missing_internals()
    assert not missing, (
        "Streamlit changed what explorer/ui/streamlit_internals.py relies on: "
        + "; ".join(missing)
        + ". Find the new switch for the legacy pages/ mode (or a public option) and update that module."
    )


def test_disable_turns_the_legacy_mode_off():
    before = PagesManager.uses_pages_directory
    try:
        PagesManager.uses_pages_directory = None  # a fresh server: undecided, the folder would switch it on
        assert streamlit_internals.disable_legacy_pages_mode() is True
        assert PagesManager.uses_pages_directory is False
        assert streamlit_internals.disable_legacy_pages_mode() is False  # already off
    finally:
        PagesManager.uses_pages_directory = before


def test_apptest_builds_a_manager_that_stays_in_navigation_mode(tmp_path):
    streamlit_internals.use_navigation_in_apptest()
    streamlit_internals.use_navigation_in_apptest()  # idempotent: one subclass, not a chain
    manager_class = app_test.PagesManager
    assert issubclass(manager_class, PagesManager) and manager_class.__mro__[1] is PagesManager
    (tmp_path / "pages").mkdir()  # the folder that would switch a plain manager to the legacy mode
    script = tmp_path / "app.py"
    script.write_text("")
    before = PagesManager.uses_pages_directory
    try:
        PagesManager.uses_pages_directory = None
        manager_class(str(script))
        assert PagesManager.uses_pages_directory is False
        PagesManager.uses_pages_directory = None
        PagesManager(str(script))  # control: the plain manager does switch on for this folder
        assert PagesManager.uses_pages_directory is True
    finally:
        PagesManager.uses_pages_directory = before
