"""Nonsense in a shared link never breaks a page: on every page of the navigation, negative or out-of-range
layer and head numbers, zero or negative ranks, unknown choices, non-numbers and NaN fall back to a default,
the page renders its charts without an exception, and an unknown model id says what to do.

One combined nonsense link per page (not a grid of every bad value on every page) keeps this fast."""

from __future__ import annotations

import pytest

from explorer.models.catalogue import DEFAULT_MODEL_ID
from explorer.ui.navigation import PAGES
from tests.apptest import assert_page_ok, chart_spec, plotly_specs, rerun_until, run_page

PAGE_PATHS = [page.path for page in PAGES]
TEXT = "The cat sat on the mat because the mat was warm, and the dog watched the cat."

# Nonsense every page gets: the sidebar's own params (max tokens, example) and the head/layer pair that most
# pages read.
COMMON = {"max_tokens": "NaN", "example": "no-such-example", "layer": "-3", "head": "99999"}

# Per page: its own query params, each one nonsense (negative, out of range, zero, unknown, non-numeric, NaN);
# how many charts the page must still draw on MiniLM (an encoder: home draws its loss chart only for causal
# models, 6 layers x 12 heads); the fallback each widget must show (by widget key, None: any index >= 0); and
# what the page writes back into the link (None: the key is gone, as a default is left out of the link; a list:
# any of these). Settings of a hidden mode (UMAP's outside the UMAP view, the compression modes not chosen)
# keep their fallback values but are left out of the link.
NONSENSE: dict[str, tuple[dict[str, str], int, dict, dict]] = {
    "pages/home.py": ({}, 0, {}, {}),
    "pages/attention.py": (
        {"metric": "bogus", "tau": "nan", "heat": "bogus"},
        5,
        {
            "attention_layer": 0,
            "attention_head": 11,
            "attention_metric": "lambda2_abs",
            "attention_tau": 1.0,
            "attention_heat_color": "auto",
        },
        {"layer": None, "head": "11", "metric": None, "tau": None, "heat": None},
    ),
    "pages/eigenvectors.py": (
        {"vectors": "sideways", "k": "0", "color": "plaid", "tau": "-inf", "damping": "abc"},
        2,
        {
            "eigenvectors_layer": 0,
            "eigenvectors_head": 11,
            "eigenvectors_kind": "right",
            "eigenvectors_k": 1,
            "eigenvectors_color": "signed",
            "eigenvectors_tau": 0.1,
            "eigenvectors_damping": 0.85,
        },
        {
            "layer": None,
            "head": "11",
            "vectors": None,
            "k": "1",
            "color": None,
            "tau": "0.1",
            "damping": None,
        },
    ),
    "pages/directions.py": (
        {
            "view": "upside-down",
            "proj": "tsne",
            "dims": "7",
            "color": "-1",
            "skip0": "maybe",
            "nn": "NaN",
            "md": "nan",
        },
        2,
        {
            "directions_view": "tokens",
            "directions_state": 0,
            "directions_projection": "pca",
            "directions_dims": 2,
            "directions_color": "position",
            "directions_skip_first": False,
            "directions_neighbors": 15,
            "directions_min_dist": 0.1,
        },
        {"layer": None, "state": "0", "view": None, "nn": None, "md": None},
    ),
    "pages/weights.py": (
        {
            "metric": "nope",
            "kind": "no_such_kind",
            "compare": "-1",
            "ww_metric": "nope",
            "randomize": "maybe",
        },
        5,
        {
            "weights_metric": "alpha",
            "weights_kind": "attn_q",
            "weights_layer": 0,
            "weights_compare": "mlp_down",
            "weights_ww_metric": "alpha_hat",
            "weights_randomize": False,
        },
        {"metric": None, "kind": None, "layer": None, "compare": None, "ww_metric": None, "randomize": None},
    ),
    # MiniLM has no LM head: the lens page says why and binds nothing (its own nonsense on a causal model:
    # tests/app/test_logit_lens_page.py).
    "pages/logit_lens.py": ({}, 0, {}, {}),
    "pages/circuits.py": (
        {"layer": "1e9", "head": "-4"},
        3,
        {"circuits_layer": None, "circuits_head": 0},
        {"layer": [None, *(str(n) for n in range(6))], "head": [None, "0"]},
    ),
    "pages/gershgorin.py": (
        {"source": "bogus", "discs": "diagonal", "layer": "NaN", "head": "-2"},
        1,
        {
            "gershgorin_source": "attention",
            "gershgorin_columns": False,
            "gershgorin_layer": 0,
            "gershgorin_head": 0,
        },
        {"source": None, "discs": None, "layer": None, "head": None},
    ),
    "pages/compression.py": (
        {
            "comp_method": "magic",
            "comp_mode": "rank",
            "comp_groups": "attn_q,,nope",
            "comp_rank_attn_q": "0",
            "comp_share": "nan",
            "comp_energy": "-inf",
            "comp_calib": "moon",
            "comp_eval": "heldout",
            "comp_alloc": "sideways",
            "budget_metric": "kl",  # a causal LM's metric on an encoder
        },
        2,
        {
            "compression_method": "svdllm",
            "compression_mode": "rank",
            "compression_group_attn_q": True,
            "compression_group_mlp_up": False,
            "compression_rank_attn_q": 1,
            "compression_share": 90,
            "compression_energy": 0.5,
            "compression_calib": "shipped",
            "compression_alloc": "uniform",
            "compression_budget_metric": "cosine",
        },
        {
            "comp_method": None,
            "comp_mode": "rank",
            "comp_groups": "attn_q",
            "comp_rank_attn_q": "1",
            "comp_share": None,
            "comp_energy": None,
            "comp_calib": None,
            "comp_alloc": None,
            "budget_metric": None,
        },
    ),
    "pages/curvature.py": (
        {
            "block": "layer:99:mlp",
            "op": "bogus",
            "k": "0",
            "trace": "nope",
            "probes": "NaN",
            "train_on": "moon",
            "opt": "sgd",
            "steps": "-4",
            "eta": "inf",
        },
        5,
        {
            "curvature_block": "layer:3:mlp",
            "curvature_op": "hessian",
            "curvature_k": 1,
            "curvature_trace": "hutchinson",
            "curvature_probes": 16,
            "curvature_train_on": "block",
            "curvature_opt": "gd",
            "curvature_steps": 1,
            "curvature_eta": 1e4,  # eta is a Float up to 1e4 (pages/curvature.py ETA_MAX): inf clamps to it
        },
        {
            "block": None,
            "op": None,
            "k": "1",
            "trace": None,
            "probes": None,
            "train_on": None,
            "opt": None,
            "steps": "1",
            "eta": "10000",
        },
    ),
    "pages/learn.py": (
        {"walkthrough": "temperature", "tau": "NaN", "layer": "-7", "head": "1e400"},
        2,
        {
            "learn_walkthrough": "temperature",
            "learn_temp_layer": 0,
            "learn_temp_head": 0,
            "learn_temp_tau": 1.0,
        },
        {"walkthrough": "temperature", "layer": None, "head": None, "tau": None},
    ),
    "pages/checkpoints.py": (
        {"demo_steps": "99", "lr": "fast"},
        0,
        {"checkpoints_demo_steps": 8, "checkpoints_lr": 1e-4},
        {"demo_steps": "8", "lr": None},
    ),
}


def test_every_page_has_a_nonsense_case():
    assert set(NONSENSE) == set(PAGE_PATHS)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGE_PATHS)
def test_nonsense_params_fall_back_and_the_page_renders(page):
    own, n_charts, fallbacks, link = NONSENSE[page]
    at = run_page(page, model="minilm-l6", text=TEXT, timeout=600, **{**COMMON, **own})
    # A cold cache's compression page draws its charts once the first background measurement is in.
    at = rerun_until(at, lambda at: len(plotly_specs(at)) >= n_charts, f"{page}: {n_charts} charts")
    assert_page_ok(at)
    specs = plotly_specs(at)
    for spec in specs:
        assert spec["data"], f"{page}: an empty chart"
    # The sidebar kept the link's model and text and fell back to the default max tokens.
    chosen = at.session_state["selection"]
    assert (chosen.model_id, chosen.text, chosen.max_tokens) == ("minilm-l6", TEXT, 512)
    # One link notice names what was replaced, the sidebar's params included (tests/app/test_link_notices.py
    # checks each kind of note word for word).
    notices = [i.value for i in at.info if i.value.startswith("Link:")]
    assert len(notices) == 1, notices
    assert "max_tokens 'NaN' is not one of 64, 128, 256, 512; showing 512" in notices[0], notices
    assert "example 'no-such-example' is not one of" in notices[0], notices
    for key, expected in fallbacks.items():
        value = at.session_state[key]
        if expected is None:
            assert isinstance(value, int) and value >= 0, (key, value)
        elif isinstance(expected, float):
            assert value == pytest.approx(expected), (
                key,
                value,
            )  # widget defaults: constants read back as stored
        else:
            assert value == expected, (key, value)
    # What the page wrote back into the link is the fallback, not the nonsense.
    for key, expected in link.items():
        if expected is None:
            assert key not in at.query_params, (key, at.query_params.get(key))
        elif isinstance(expected, list):
            assert at.query_params.get(key) in expected, (key, at.query_params.get(key))
        else:
            assert at.query_params.get(key) == expected, (key, at.query_params.get(key))


# Views and walkthroughs that the one-link-per-page cases above do not reach, each with nonsense in its own
# params: (page, params, charts it must still draw).
OTHER_MODES = [
    ("pages/directions.py", {"view": "embedding", "ewords": ",,,;", "dims": "9", "eunit": "x"}, 2),
    ("pages/directions.py", {"proj": "animate", "layer": "NaN", "dims": "-2", "color": "nan"}, 1),
    ("pages/gershgorin.py", {"source": "ov", "layer": "-1", "head": "1e9", "discs": "NaN"}, 1),
    ("pages/learn.py", {"walkthrough": "matrix2x2", "a": "nan", "b": "inf", "c": "-inf", "d": "x"}, 3),
    (
        "pages/learn.py",
        {"walkthrough": "power", "matrix": "head", "layer": "-1", "head": "NaN", "step": "-1", "lsteps": "0"},
        3,
    ),
    ("pages/learn.py", {"walkthrough": "gd", "l1": "nan", "l2": "-5", "eta": "inf"}, 3),
    ("pages/learn.py", {"walkthrough": "nonnormal", "n": "0", "rho": "nan", "s": "-inf"}, 2),
    (
        "pages/learn.py",
        {"walkthrough": "svd", "source": "weight", "layer": "99", "kind": "nope", "k": "-1"},
        2,
    ),
]


def _case_id(page: str, own: dict) -> str:
    mode = next((own[k] for k in ("walkthrough", "view", "source", "proj") if k in own), "")
    return f"{page.split('/')[-1][:-3]}-{mode}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "own", "n_charts"), OTHER_MODES, ids=[_case_id(page, own) for page, own, _ in OTHER_MODES]
)
def test_nonsense_in_other_views_falls_back(page, own, n_charts):
    at = run_page(page, model="minilm-l6", text=TEXT, timeout=600, **own)
    assert_page_ok(at)
    specs = plotly_specs(at)
    assert len(specs) >= n_charts, (page, own, len(specs))
    assert all(spec["data"] for spec in specs), (page, own)
    for key in ("layer", "head", "k", "n", "step", "lsteps"):
        if key in own and key in at.query_params:
            assert int(at.query_params[key]) >= 0, (key, at.query_params[key])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "own", "says"),
    [
        (
            "pages/gershgorin.py",
            {"source": "matrix", "matrix": "1 2\nabc nan"},
            ("is not a number", "plain numbers like 0.5"),
        ),
        ("pages/gershgorin.py", {"source": "matrix", "matrix": ""}, ("The matrix is empty", "e.g.")),
        (
            "pages/directions.py",
            {"view": "directions", "pairs": "he/,/", "preset": "nope"},
            ("at least two word pairs", "e.g."),
        ),
        (
            "pages/directions.py",
            {"view": "directions", "pairs": "he/she,king/queen", "template": "{}{}"},
            ("exactly once", "e.g."),
        ),
    ],
    ids=["matrix-not-a-number", "matrix-empty", "too-few-pairs", "bad-template"],
)
def test_nonsense_that_is_the_input_itself_gets_a_message_with_an_example(page, own, says):
    """When the link's param is the thing to analyse (a typed matrix, word pairs, a template), there is no
    sensible fallback: the page says what is wrong and gives an example, and raises nothing."""
    at = run_page(page, model="minilm-l6", text=TEXT, timeout=600, **own)
    assert not at.exception, [e.value for e in at.exception]
    messages = [e.value for e in at.error]
    assert len(messages) == 1 and all(part in messages[0] for part in says), messages


@pytest.mark.parametrize("page", PAGE_PATHS)
def test_unknown_model_id_says_what_to_do(page):
    """An unknown id is tried as a local path or hub id, fails, and the page says what would work instead."""
    # The Learn page's default walkthrough needs no model: ask for one that does.
    at = run_page(
        page, model="no-such-model-xyz", text=TEXT, layer="-1", head="NaN", walkthrough="temperature"
    )
    assert not at.exception, [e.value for e in at.exception]
    messages = [e.value for e in at.error]
    if page == "pages/checkpoints.py":  # reads checkpoint folders: no model until a demo is asked for
        assert messages == [], messages
        return
    assert len(messages) == 1, messages
    assert "Unknown model 'no-such-model-xyz'" in messages[0]
    assert "catalogue id" in messages[0] and "minilm-l6" in messages[0] and "local directory" in messages[0]
    assert not at.get("plotly_chart")


@pytest.mark.slow
def test_unknown_model_id_on_a_shared_server_falls_back_and_says_so(monkeypatch):
    """With external models off (a shared server) the link's unknown id is replaced by the default model, and
    the link notice names both."""
    monkeypatch.setenv("EIGEN_EXPLORER_ALLOW_EXTERNAL", "0")
    at = run_page("pages/home.py", model="no-such-model-xyz", text=TEXT, timeout=600)
    assert_page_ok(at)
    assert at.session_state["selection"].model_id == DEFAULT_MODEL_ID
    notices = [i.value for i in at.info if i.value.startswith("Link:")]
    assert len(notices) == 1, notices
    assert "model 'no-such-model-xyz' is not available here" in notices[0] and DEFAULT_MODEL_ID in notices[0]
    assert plotly_specs(at), "the default (causal) model's home page draws its loss chart"


# Arrow keys held on the attention page's temperature slider (drawn in an @st.fragment): up, a wiggle back and
# forth, down through the default (which leaves the link), then a head change outside the fragment.
TAU_PRESSES = [1.05, 1.1, 1.15, 1.1, 1.15, 1.1, 1.05, 1.0, 0.95, 0.9, 0.85]


@pytest.mark.parametrize("lag", [2, 3])
def test_rapid_temperature_changes_keep_slider_chart_and_link_together(monkeypatch, lag):
    """The slider, the value the charts are drawn with and the link agree after every press, while the browser
    applies the link updates ``lag`` runs late (see tests/unit/test_state.py's LaggingBrowser)."""
    from tests.unit.test_state import LaggingBrowser

    at = run_page("pages/attention.py", model="tiny-gpt2", text=TEXT)
    browser = LaggingBrowser(at, monkeypatch, lag)
    steps = [("attention_tau", tau) for tau in TAU_PRESSES] + [("attention_head", 2), ("attention_tau", 1.2)]
    want = {"attention_tau": 1.0, "attention_head": 0}
    for key, value in steps:
        want[key] = value
        widget = at.slider(key=key) if key == "attention_tau" else at.number_input(key=key)
        widget.set_value(value)
        browser.run()
        assert_page_ok(at)
        tau, head = at.slider(key="attention_tau").value, at.number_input(key="attention_head").value
        assert (tau, head) == (want["attention_tau"], want["attention_head"])
        title = chart_spec(at, "attention_heatmap")["layout"]["title"]["text"]
        drawn = f"Layer 0 · head {head}" + ("" if tau == 1.0 else f" · τ = {tau:g}")
        assert title.startswith(drawn + ":"), (title, drawn)
        link = browser.eventual_url()
        assert link.get("tau") == (None if tau == 1.0 else f"{tau:g}"), (key, value, browser.url, link)
        assert link.get("head") == (None if head == 0 else str(head)), (key, value, link)
