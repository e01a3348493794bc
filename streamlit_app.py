"""eigen-explorer: entry point. The shared sidebar, then the page the navigation picks."""

import streamlit as st

from explorer.paths import ASSETS_DIR
from explorer.ui.navigation import PAGES
from explorer.ui.streamlit_internals import leave_legacy_pages_mode
from explorer.ui.warmup import IMPORT_LOCK

leave_legacy_pages_mode()
st.set_page_config(page_title="eigen-explorer", page_icon=":material/scatter_plot:", layout="wide")
st.logo(str(ASSETS_DIR / "logo.svg"), size="large")

sections: dict[str, list] = {}
for i, page in enumerate(PAGES):
    sections.setdefault(page.section, []).append(
        st.Page(page.file, title=page.title, icon=page.icon, url_path=page.url_path, default=(i == 0))
    )
navigation = st.navigation(sections)

# torch and transformers take seconds to import on a cold server: show that something is happening. The lock:
# no two threads import the app at once (the server's warm-up may be importing it now; see warmup.py).
with st.spinner("Starting eigen-explorer (loading torch and transformers)…"), IMPORT_LOCK:
    from explorer.ui.sidebar import draw_deferred, render_sidebar
    from explorer.ui.state import close_link_notices, open_link_notices

# One notice at the top of the page names every link value that was replaced (the sidebar's and the page's).
open_link_notices(navigation.url_path)
render_sidebar()
try:
    navigation.run()
finally:  # the sidebar's cost caption, where the page did not draw it after its model load (sidebar._defer)
    draw_deferred()
close_link_notices()
