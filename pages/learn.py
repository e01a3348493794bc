"""Learn: walkthroughs that make the linear algebra visible, then point to it on the loaded model.

The walkthroughs are records in explorer/ui/learn/ (prose in assets/learn/<id>.md) on one course path; this
page shows the mode (walkthroughs or the guided tour), the picker, and hands the chosen one to the course
(explorer/ui/learn/course.py: progress, handouts, Previous / Next). Every setting is in the link
(``?walkthrough=gd&l1=4&l2=0.5&eta=0.3&seed=7&done=matrix2x2``), so a teacher can share a link to an exact view.
"""

from __future__ import annotations

import streamlit as st

from explorer.ui import learn
from explorer.ui.learn import course
from explorer.ui.state import drop_from_link

st.title("Learn: linear algebra made visible")
st.caption(learn.caption())
mode = learn.PAGE.segmented_control(
    learn.MODE, "Mode", format_func=learn.MODES.get, label_visibility="collapsed"
)
if mode == "tour":
    learn.PAGE.bind(learn.PICKER, link=False)  # kept for the way back, out of the tour's link
    drop_from_link(*learn.stale_params(None))
    course.draw_tour()
else:
    learn.PAGE.bind(course.STOP, link=False)
    current = learn.PAGE.segmented_control(
        learn.PICKER, "Walkthrough", format_func=learn.label, label_visibility="collapsed"
    )
    drop_from_link(*learn.stale_params(current))
    course.draw_walkthrough(learn.BY_ID[current])
