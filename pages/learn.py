"""Learn: walkthroughs that make the linear algebra visible, then point to it on the loaded model.

The walkthroughs are records in explorer/ui/learn/ (prose in assets/learn/<id>.md); this page shows the picker
and draws the chosen one. Every setting is in the link (``?walkthrough=gd&l1=4&l2=0.5&eta=0.3``), so a teacher
can share a link to an exact view.
"""

from __future__ import annotations

import streamlit as st

from explorer.ui import learn
from explorer.ui.state import drop_from_link

st.title("Learn: linear algebra made visible")
st.caption(
    "Six short walkthroughs. Each explains one idea, lets you play with it, and points to the page where the "
    "same idea shows up on the loaded model. Every setting is in the address bar: copy it to share this exact view."
)
current = learn.PAGE.segmented_control(
    learn.PICKER, "Walkthrough", format_func=learn.label, label_visibility="collapsed"
)
drop_from_link(*learn.stale_params(current))
walkthrough = learn.BY_ID[current]
st.subheader(walkthrough.title)
walkthrough.render(walkthrough.prose)
