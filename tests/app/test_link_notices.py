"""Link values a page cannot show as they are (out of range, not a number, NaN, an unknown choice or member, an
unknown stored text) are named in one link notice at the top of the page, the same way on every page, and the
widgets and the link show the fallback the notice names. The notice comes once per incoming link: it stays while
the page shows what it names and goes once the reader changes that setting; a rerun does not repeat it.

Texts too long for a link are kept on the server under their digest and reopen from the link on that server."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from explorer.texts import DEFAULT_EXAMPLE, example_texts
from tests.apptest import assert_page_ok, run_page

TEXT = "The cat sat on the mat because the mat was warm, and the dog watched the cat."
# The embedded models' published shapes (layers, heads): SmolLM2-135M 30 x 9, all-MiniLM-L6-v2 6 x 12.
SHAPES = {"smollm2-135m": (30, 9), "minilm-l6": (6, 12)}


def notices(at: AppTest) -> list[str]:
    return [i.value for i in at.info if i.value.startswith("Link:")]


def parts(at: AppTest) -> list[str]:
    """The notes of the one link notice (none: [])."""
    found = notices(at)
    assert len(found) <= 1, found
    return found[0].removeprefix("Link: ").split(" · ") if found else []


@pytest.mark.slow
@pytest.mark.parametrize("model", list(SHAPES))
def test_attention_notice_names_each_replaced_value(model):
    n_layers, n_heads = SHAPES[model]
    at = run_page(
        "pages/attention.py", model=model, text=TEXT, timeout=600, layer="999", head="-1", tau="1e9",
        metric="bogus",
    )  # fmt: skip
    assert_page_ok(at)
    assert set(parts(at)) == {
        f"layer 999 does not exist (0-{n_layers - 1}); showing layer {n_layers - 1}",
        "head -1 does not exist (0-" + str(n_heads - 1) + "); showing head 0",
        "tau 1e9 is out of range (0.1-5); showing 5",
        "metric 'bogus' is not one of lambda2_abs, spectral_gap, entropy, effective_rank, stable_rank, "
        "numerical_rank, sink_mass; showing lambda2_abs",
    }
    state = at.session_state
    assert (state["attention_layer"], state["attention_head"], state["attention_tau"]) == (
        n_layers - 1,
        0,
        5.0,
    )
    assert state["attention_metric"] == "lambda2_abs"
    assert (at.query_params.get("layer"), at.query_params.get("tau")) == (str(n_layers - 1), "5")
    assert "head" not in at.query_params and "metric" not in at.query_params

    # A rerun does not repeat or add anything; the notice still says what the page shows.
    before = notices(at)
    at.run()
    assert notices(at) == before
    # The reader moves the layer: its note goes, the others stay; moving it back does not bring it back.
    at.number_input(key="attention_layer").set_value(1).run()
    assert not any(p.startswith("layer ") for p in parts(at)) and len(parts(at)) == 3
    at.number_input(key="attention_layer").set_value(n_layers - 1).run()
    assert len(parts(at)) == 3
    at.slider(key="attention_tau").set_value(2.0).run()
    at.number_input(key="attention_head").set_value(1).run()
    at.selectbox(key="attention_metric").set_value("entropy").run()
    assert notices(at) == []
    # A new link from outside brings its own note.
    at.query_params["head"] = str(n_heads)
    at.run()
    assert parts(at) == [f"head {n_heads} does not exist (0-{n_heads - 1}); showing head {n_heads - 1}"]


@pytest.mark.slow
@pytest.mark.parametrize("model", list(SHAPES))
def test_eigenvectors_notice_names_each_replaced_value(model):
    n_layers, n_heads = SHAPES[model]
    kind = (
        "symmetric" if model == "smollm2-135m" else "right"
    )  # the page's default: causal heads read better so
    at = run_page(
        "pages/eigenvectors.py", model=model, text=TEXT, timeout=600, layer="-1", head="1000", k="abc",
        tau="nan", damping="2", vectors="sideways", color="2.5",
    )  # fmt: skip
    assert_page_ok(at)
    assert set(parts(at)) == {
        "layer -1 does not exist (0-" + str(n_layers - 1) + "); showing layer 0",
        f"head 1000 does not exist (0-{n_heads - 1}); showing head {n_heads - 1}",
        "k 'abc' is not a number; showing 6",
        "tau 'nan' is not a number; showing 1",
        "damping 2 is out of range (0.5-0.99); showing 0.99",
        f"vectors 'sideways' is not one of right, symmetric, singular; showing {kind}",
        "color '2.5' is not one of signed, magnitude; showing signed",
    }
    state = at.session_state
    assert (state["eigenvectors_layer"], state["eigenvectors_head"]) == (0, n_heads - 1)
    assert (state["eigenvectors_k"], state["eigenvectors_kind"]) == (6, kind)
    assert state["eigenvectors_tau"] == 1.0 and state["eigenvectors_damping"] == pytest.approx(0.99)


def test_a_number_that_is_not_whole_is_named():
    at = run_page("pages/eigenvectors.py", model="tiny-gpt2", text=TEXT, k="2.5", layer="1e9")
    assert_page_ok(at)
    assert set(parts(at)) == {
        "k '2.5' is not a whole number; showing 6",
        "layer '1e9' is not a whole number; showing layer 0",
    }


def test_valid_link_has_no_notice():
    at = run_page("pages/attention.py", model="tiny-gpt2", text=TEXT, layer="1", head="2", tau="0.5")
    assert_page_ok(at)
    assert notices(at) == []


def test_unknown_text_digest_is_named_and_falls_back_to_the_default_text():
    at = run_page("pages/attention.py", model="tiny-gpt2", text="@0123456789abcdef", layer="1")
    assert_page_ok(at)
    assert parts(at) == [
        "text @0123456789abcdef is not kept on this server (a link from another server, or its cache was "
        "cleaned); showing the 'The quick brown fox' example"
    ]
    assert at.session_state["sidebar_text"] == example_texts()[DEFAULT_EXAMPLE]
    assert "text" not in at.query_params and at.query_params["layer"] == "1"


def test_unknown_example_is_named():
    at = run_page("pages/home.py", model="tiny-gpt2", example="no-such-example")
    assert parts(at) == [
        "example 'no-such-example' is not one of fox, story, repetition, linear_algebra, code; showing the "
        "'The quick brown fox' example"
    ]


def _subset_script():
    from explorer.ui.state import PageState, Subset, open_link_notices

    open_link_notices("demo")  # what the entry script does on every full run
    PageState("demo").checkboxes(Subset("groups", ("q",), ["q", "k", "v"]), str)


@pytest.mark.parametrize(
    ("link", "note", "ticked"),
    [
        ("k,nope,zz", "groups 'nope', 'zz' are not among q, k, v; showing k", ["k"]),
        ("nope", "groups 'nope' is not among q, k, v; showing q", ["q"]),
        (",,", "groups names none of q, k, v; showing q", ["q"]),
        ("v,q", None, ["q", "v"]),
    ],
)
def test_unknown_subset_members_are_named(link, note, ticked):
    at = AppTest.from_function(_subset_script)
    at.query_params["groups"] = link
    at.run()
    assert parts(at) == ([note] if note else [])
    assert [c.label for c in at.checkbox if c.value] == ticked


def test_a_long_text_reopens_from_its_link_on_the_same_server(cache_home):
    """A 5,000-character text is too long for a link: the link names it by its digest, the sidebar says the
    link carries it only on this server, and a new session on the same server (same cache dir) reopens it."""
    long_text = " ".join(f"word{i % 97}" for i in range(900))[:5000]
    assert len(long_text) == 5000
    digest = hashlib.sha256(long_text.encode("utf-8")).hexdigest()[:16]
    at = run_page("pages/home.py", model="tiny-gpt2")
    at.sidebar.text_area(key="sidebar_text").set_value(long_text).run()
    assert at.query_params["text"] == f"@{digest}"
    captions = [c.value for c in at.sidebar.caption]
    assert any(f"@{digest}" in c and "only on this server" in c for c in captions), captions
    from explorer import store
    from explorer.ui import text_store

    assert store.read(text_store.entry(digest).path, str) == long_text  # kept on disk, in the one store

    reopened = run_page("pages/attention.py", model="tiny-gpt2", text=f"@{digest}")
    assert_page_ok(reopened)
    assert reopened.session_state["sidebar_text"] == long_text
    assert reopened.session_state["selection"].text == long_text
    assert reopened.query_params["text"] == f"@{digest}" and notices(reopened) == []


def test_a_stored_text_outlives_the_process(cache_home):
    """A restarted server (a new process, same cache dir) still knows the text; a damaged file reads as
    unknown."""
    from explorer.ui import text_store

    name = text_store.store("ünïcode " * 400)
    code = f"from explorer.ui import text_store; print(repr(text_store.load({name[1:]!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == repr("ünïcode " * 400)
    from explorer import store

    store.save(text_store.entry(name[1:]), "not the text of that digest")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"
    assert text_store.load("../../etc/passwd") is None


def _gap_script():
    from explorer.ui.state import Int, PageState, open_link_notices

    open_link_notices("demo")
    PageState("demo").select_slider(Int("rank", 4, 1, 64), "rank", options=[1, 2, 4, 8, 16, 32, 64])


def test_a_number_in_range_that_is_not_offered_is_named():
    at = AppTest.from_function(_gap_script)
    at.query_params["rank"] = "5"
    at.run()
    assert parts(at) == ["rank 5 is not offered here (1, 2, 4, 8, 16, 32, 64); showing 4"]
    assert at.select_slider[0].value == 4 and "rank" not in at.query_params
    at.select_slider[0].set_value(8).run()  # the reader moves on: the note goes
    assert parts(at) == [] and at.query_params["rank"] == "8"
