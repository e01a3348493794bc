"""The Learn page under AppTest: every walkthrough renders, links restore settings, controls write the link."""

import numpy as np
import pytest

from explorer.analysis import teaching
from explorer.ui import learn
from explorer.ui.learn.walkthrough import parse_prose
from explorer.ui.sidebar import MAX_TOKENS
from tests.apptest import assert_page_ok, chart_spec, plotly_specs, run_page
from tests.tolerances import backward_error

PAGE = "pages/learn.py"
CHARTS = {"matrix2x2": 3, "power": 3, "gd": 3, "temperature": 2, "nonnormal": 2, "svd": 2}


def _array(value) -> np.ndarray:
    """A data array from figure JSON: plain lists, or Plotly's base64 typed arrays ({"dtype", "bdata"})."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return data.reshape(value["shape"]) if "shape" in value else data
    return np.asarray(value, dtype=float)


@pytest.mark.parametrize("walkthrough", list(CHARTS))
def test_every_walkthrough_renders(walkthrough):
    at = run_page(PAGE, model="tiny-gpt2", walkthrough=walkthrough)
    assert_page_ok(at)
    assert at.segmented_control(key="learn_walkthrough").value == walkthrough
    assert len(plotly_specs(at)) == CHARTS[walkthrough]
    # The prose shown is the record's markdown: its intro, every formula in order, every item to try.
    prose = learn.BY_ID[walkthrough].prose
    # (st.latex sends its body between $$ lines)
    assert [m.value for m in at.latex][: len(prose.formulas)] == [f"$$\n{f}\n$$" for f in prose.formulas]
    shown = [m.value for m in at.markdown]
    assert prose.intro in shown
    assert "**What to try**\n" + "\n".join(f"- {t}" for t in prose.tries) in shown
    # The default walkthrough is left out of the link (defaults are).
    assert at.query_params.get("walkthrough") == (None if walkthrough == "matrix2x2" else walkthrough)


def test_records_have_prose_and_own_their_params():
    # The link values of the first six, in the picker's order (the course path; later records come after).
    assert list(learn.ORDER[: len(CHARTS)]) == list(CHARTS)
    assert list(learn.PICKER.choices) == list(learn.ORDER)
    assert len(learn.BY_ID) == len(learn.WALKTHROUGHS)
    page_params = {
        *learn.PAGE_PARAMS,
        "model",
        "text",
        "example",
        MAX_TOKENS.param,
    }  # the page's, the sidebar's
    for w in learn.WALKTHROUGHS:
        assert w.prose_path.is_file(), w.prose_path
        assert w.prose.intro and w.prose.formulas and w.prose.tries, w.id
        assert w.params and not set(w.params) & page_params, (w.id, w.params)
        assert set(w.model_link or {}) <= set(w.params), w.id  # the params that put it on a model are its own
    # Switching to gd drops every other walkthrough's params; layer and head stay while shared.
    assert learn.stale_params("gd") == {p for w in learn.WALKTHROUGHS if w.id != "gd" for p in w.params}
    assert {"layer", "head"} - learn.stale_params("temperature") == {"layer", "head"}
    assert learn.label("gd") == "3 · Gradient descent"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Intro.\n\n$$\nx\n$$\n", "missing a '**What to try**' list"),
        ("Intro.\n\n$$\nx\n\n**What to try**\n- a\n", "not closed"),
        ("$$\nx\n$$\n**What to try**\n- a\n", "missing an intro"),
        ("Intro.\n$$\nx\n$$\nMore.\n**What to try**\n- a\n", "line 5: text between"),
        ("Intro.\n$$\nx\n$$\n**What to try**\nno dash\n", "must start with '- '"),
    ],
)
def test_prose_format_errors_name_the_file_and_the_problem(text, problem):
    with pytest.raises(ValueError, match="my.md") as err:
        parse_prose(text, source="my.md")
    assert problem in str(err.value)


def test_prose_joins_wrapped_lines():
    prose = parse_prose(
        "One\nparagraph.\n\nTwo.\n\n$$\na +\nb\n$$\n\n**What to try**\n\n- first\n  item\n- second\n"
    )
    assert prose.intro == "One paragraph.\n\nTwo." and prose.formulas == ("a + b",)
    assert prose.tries == ("first item", "second")


def test_link_restores_a_2x2_matrix():
    at = run_page(PAGE, walkthrough="matrix2x2", a=0.8, b=-0.6, c=0.6, d=0.8)
    assert_page_ok(at)
    assert [at.slider(key=f"learn_m_{n}").value for n in "abcd"] == [0.8, -0.6, 0.6, 0.8]
    points = chart_spec(at, "learn_m_eigvals")["data"][1]
    expected = np.linalg.eigvals([[0.8, -0.6], [0.6, 0.8]])
    # A rotation by 0.6435 rad scaled by 1: a normal matrix, eigenvalues well-conditioned (kappa = 1), so the
    # page's eigvals and numpy's agree to a few eps; the default rtol 1e-7 is far above that.
    np.testing.assert_allclose(sorted(_array(points["y"])), sorted(expected.imag))
    assert any("complex-conjugate pair" in m.value for m in at.markdown)


def test_preset_fills_the_sliders_and_the_link():
    at = run_page(PAGE, walkthrough="matrix2x2")
    at.selectbox(key="learn_m_preset").set_value("jordan").run()
    assert_page_ok(at)
    (a, b), (c, d) = teaching.PRESETS_2X2["jordan"][1]
    assert [at.slider(key=f"learn_m_{n}").value for n in "abcd"] == [a, b, c, d]
    # Entries equal to the sliders' defaults (2, 1, 1, 2) are left out of the link.
    defaults = dict(zip("abcd", ("2", "1", "1", "2"), strict=True))
    assert [float(at.query_params.get(n, defaults[n])) for n in "abcd"] == [a, b, c, d]
    assert any("defective" in m.value for m in at.markdown)


def test_link_restores_gradient_descent_and_buttons_set_eta():
    at = run_page(PAGE, walkthrough="gd", l1=2, l2=1, eta=0.25)
    assert_page_ok(at)
    assert at.slider(key="learn_gd_l1").value == 2.0 and at.slider(key="learn_gd_eta").value == 0.25
    path = next(t for t in chart_spec(at, "learn_gd_contour")["data"] if t.get("name") == "GD iterates x_t")
    drawn = np.stack([_array(path["x"]), _array(path["y"])], axis=1)
    # The theorem: x_t = (I - eta H)^t x_0 with H = V diag(2, 1) V^T, V the rotation the quadratic is drawn in.
    angle = np.deg2rad(teaching.GD_ROTATION_DEG)
    V = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    H = (V * [2.0, 1.0]) @ V.T
    step = np.eye(2) - 0.25 * H
    x0 = np.asarray(teaching.GD_START)
    expected = np.array([np.linalg.matrix_power(step, t) @ x0 for t in range(len(drawn))])
    # ||step||_2 = 0.75 < 1: t products round by at most (t + 1) c n eps ||x_0|| each way (both sides); H formed
    # twice differs by c n eps ||H||, moving x_t by t eta of that. JSON keeps every float64 digit.
    t_max = len(drawn) - 1
    tol = 2 * (t_max + 1) * (backward_error(step) + 0.25 * backward_error(H)) * np.linalg.norm(x0)
    np.testing.assert_allclose(drawn, expected, rtol=0, atol=tol)
    at.button(key="learn_gd_opt").click().run()
    # 2/(l1 + l2) = 2/3 as a slider value and as the link's text (10 significant digits: error <= 5e-11).
    assert at.slider(key="learn_gd_eta").value == pytest.approx(2 / 3, rel=1e-12)
    assert float(at.query_params["eta"]) == pytest.approx(2 / 3, abs=1e-10)
    at.button(key="learn_gd_past").click().run()
    assert_page_ok(at)
    assert at.slider(key="learn_gd_eta").value > 1.0  # past 2 / lambda_max = 1
    assert any("diverges" in w.value for w in at.warning)


def test_nonsense_params_fall_back():
    at = run_page(PAGE, walkthrough="bogus", a="foo", b="nan", c="1e9")
    assert not at.exception
    assert at.segmented_control(key="learn_walkthrough").value == "matrix2x2"
    assert at.slider(key="learn_m_a").value == 2.0  # default
    assert at.slider(key="learn_m_b").value == 1.0  # NaN -> default
    assert at.slider(key="learn_m_c").value == 3.0  # clamped to the slider's range
    at = run_page(PAGE, walkthrough="temperature", layer=99, head=-4, tau="hot")
    assert not at.exception
    assert at.slider(key="learn_temp_layer").value == 1 and at.slider(key="learn_temp_head").value == 0
    assert at.select_slider(key="learn_temp_tau").value == pytest.approx(1.0)  # a grid value, stored as given


def test_switching_walkthrough_keeps_the_link_clean():
    at = run_page(PAGE, walkthrough="gd", l1=3)
    at.segmented_control(key="learn_walkthrough").set_value("nonnormal").run()
    assert_page_ok(at)
    params = dict(at.query_params)
    assert params["walkthrough"] == "nonnormal" and "l1" not in params and "eta" not in params
    assert params["model"] == "tiny-gpt2"
    at.slider(key="learn_nn_s").set_value(0.0).run()
    assert at.query_params["s"] == "0"
    metric = next(m for m in at.metric if m.label == "κ(V)")
    assert float(metric.value) == pytest.approx(1.0, abs=1e-6)  # normal matrix


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-bert"])
def test_head_walkthroughs_on_tiny_models(model):
    at = run_page(PAGE, model=model, walkthrough="temperature", layer=1, head=2, tau=0.316)
    assert_page_ok(at)
    assert at.select_slider(key="learn_temp_tau").value == pytest.approx(0.316, abs=1e-3)
    fig = chart_spec(at, "learn_temperature")
    # tau_i = 10^(-1 + i/12): 0.316 = 10^-0.5 is frame 6.
    assert len(fig["frames"]) == 25 and fig["layout"]["sliders"][0]["active"] == 6
    causal_notes = [i for i in at.info if "is causal" in i.value]
    assert bool(causal_notes) == (model == "tiny-gpt2")
    at.segmented_control(key="learn_walkthrough").set_value("power").run()
    at.segmented_control(key="learn_power_matrix").set_value("head").run()
    assert_page_ok(at)
    assert (
        at.query_params["layer"] == "1" and at.query_params["head"] == "2"
    )  # shared with the temperature view
    assert next(m for m in at.metric if m.label == "λ₁").value == "1"
    at.segmented_control(key="learn_walkthrough").set_value("svd").run()
    at.segmented_control(key="learn_svd_source").set_value("weight").run()
    assert_page_ok(at)
    assert len(plotly_specs(at)) == 2 and at.query_params["source"] == "weight"


def test_short_text_falls_back_with_a_warning():
    at = run_page(PAGE, model="tiny-gpt2", text="a", walkthrough="power", matrix="head")
    assert not at.exception
    assert any("at least 3" in w.value for w in at.warning)
    assert len(plotly_specs(at)) == 3  # the example matrix is shown instead


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m"])
def test_head_walkthroughs_on_embedded_models(model):
    at = run_page(PAGE, model=model, walkthrough="temperature", layer=3, head=1, timeout=300)
    assert_page_ok(at)
    assert len(plotly_specs(at)) == 2
    for walkthrough, control, value in [
        ("power", "learn_power_matrix", "head"),
        ("svd", "learn_svd_source", "weight"),
    ]:
        at.segmented_control(key="learn_walkthrough").set_value(walkthrough).run()
        at.segmented_control(key=control).set_value(value).run()
        assert_page_ok(at)
        assert len(plotly_specs(at)) == CHARTS[walkthrough]
    assert "layers.3" in " ".join(m.value for m in at.markdown) or "layer.3" in " ".join(
        m.value for m in at.markdown
    )


def _curvature_links(at) -> list:
    return [link.proto for link in at.get("page_link") if "Loss curvature" in link.proto.label]


def test_gd_walkthrough_links_to_curvature_and_shows_a_computed_lambda_max(tmp_path, monkeypatch):
    """Before the loaded model's whole-model λ_max is computed the walkthrough only links to the Curvature
    page (block=all); once that page has computed it (jobs board, then the disk cache in a fresh process)
    the walkthrough shows the same λ_max and 2/λ_max, and still computes nothing itself."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty disk cache for this test
    text = "A text only this test uses, so no other test has computed its curvature."
    at = run_page(PAGE, model="tiny-gpt2", text=text, walkthrough="gd")
    assert_page_ok(at)
    links = _curvature_links(at)
    assert len(links) == 1 and "compute its λ_max" in links[0].label and links[0].query_string == "block=all"
    assert not any(m.label == "λ_max (model)" for m in at.metric)

    curvature = run_page("pages/curvature.py", model="tiny-gpt2", text=text, block="all")
    assert_page_ok(curvature)
    lam = chart_spec(curvature, "curvature_top")["data"][0]["y"][0]

    at = run_page(PAGE, model="tiny-gpt2", text=text, walkthrough="gd")
    assert_page_ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["λ_max (model)"] == f"{lam:.4g}" and metrics["2/λ_max (model)"] == f"{2 / lam:.4g}"
    assert metrics["2/λ_max (this quadratic)"] == metrics["2/λ_max"]  # the quadratic's own, unchanged
    assert "Its whole spectrum" in _curvature_links(at)[0].label

    # A new process finds it on disk: empty the task board (explorer/tasks.py) and ask again.
    from explorer import tasks

    tasks.clear()
    at = run_page(PAGE, model="tiny-gpt2", text=text, walkthrough="gd")
    assert_page_ok(at)
    assert {m.label: m.value for m in at.metric}["λ_max (model)"] == f"{lam:.4g}"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2-135m", "minilm-l6"])
# The first six; the later records open on both embedded models in their own files
# (tests/app/test_learn_matrices.py, tests/app/test_learn_models.py), which await their background tasks.
@pytest.mark.parametrize("walkthrough", [w for w in CHARTS if learn.BY_ID[w].model_link is not None])
def test_every_model_walkthrough_renders_on_embedded_models(walkthrough, model):
    """Each walkthrough that uses the loaded model, opened on it by its own link params."""
    record = learn.BY_ID[walkthrough]
    at = run_page(PAGE, model=model, walkthrough=walkthrough, timeout=300, **record.model_link)
    assert_page_ok(at)
    assert len(plotly_specs(at)) == CHARTS[walkthrough]
    assert {k: at.query_params.get(k) for k in record.model_link} == dict(record.model_link)
