"""The six matrix-theory walkthroughs (charpoly, psd, rayleigh, pca, weyl, conditioning) under AppTest: each renders
on a causal and an encoder model (the embedded ones in slow tests), what it states about the loaded model is
checked against the capture or the weights with numpy, and an exercise is answered on the page."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from explorer.analysis import teaching_matrices as tm
from explorer.analysis.matrices import weight_matrices
from explorer.models import capture
from explorer.spectra.quantization import fake_quantize
from explorer.ui import learn
from tests.apptest import assert_page_ok, chart_spec, plotly_specs, run_page
from tests.conftest import get_model
from tests.tolerances import backward_error, symmetric_tolerance

PAGE = "pages/learn.py"
TEXT = "The quick brown fox jumps over the lazy dog. Then the fox sleeps."
#: Charts each record draws: small matrix, then model.
CHARTS = {"charpoly": 4, "psd": 2, "rayleigh": 4, "pca": 3, "weyl": 3, "conditioning": 2}
EXERCISES = {
    "charpoly": tm.charpoly_exercises,
    "psd": tm.psd_exercises,
    "rayleigh": tm.rayleigh_exercises,
    "pca": tm.pca_exercises,
    "weyl": tm.weyl_exercises,
    "conditioning": tm.conditioning_exercises,
}


def _open(walkthrough: str, model: str, **params):
    at = run_page(PAGE, model=model, text=TEXT, walkthrough=walkthrough, **params)
    assert_page_ok(at)
    return at


def _shown(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def _check_render(walkthrough: str, model: str) -> None:
    at = _open(walkthrough, model)
    assert len(plotly_specs(at)) == CHARTS[walkthrough]
    shown = _shown(at)
    assert "#### On a small matrix" in shown and f"#### On {model}" in shown
    prose = learn.BY_ID[walkthrough].prose
    assert prose.intro in shown
    # The exercises are the record's own for the default seed, in order.
    questions = [e.question for e in EXERCISES[walkthrough](1)]
    assert all(any(q in m for m in shown.split("\n")) for q in questions)


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-bert"])
@pytest.mark.parametrize("walkthrough", list(CHARTS))
def test_every_walkthrough_renders_on_tiny_models(walkthrough, model):
    _check_render(walkthrough, model)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2-135m", "minilm-l6"])
@pytest.mark.parametrize("walkthrough", list(CHARTS))
def test_every_walkthrough_renders_on_embedded_models(walkthrough, model):
    _check_render(walkthrough, model)


def test_records_are_registered_with_their_own_params():
    others = {p for w in learn.WALKTHROUGHS if w.id not in CHARTS for p in w.params} - {"layer", "head"}
    for wid in CHARTS:
        w = learn.BY_ID[wid]
        assert w.exercises is EXERCISES[wid] and w.model_link == {}
        assert not set(w.params) & set(learn.PAGE_PARAMS)
        assert not set(w.params) & others, (
            wid
        )  # owned params are unique, apart from the shared layer and head
        assert w.handout_figures is not None and len(w.handout_figures(1)) >= 1
        assert set(w.prerequisites) <= set(learn.BY_ID)


def _hidden(model: str, layer: int) -> np.ndarray:
    return capture(get_model(model), TEXT).hidden_states[layer + 1].astype(np.float64)


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-bert"])
def test_psd_states_the_covariance_eigenvalues_of_the_capture(model):
    at = _open("psd", model)
    X = _hidden(model, 0)
    n, d = X.shape
    C = np.cov(X, rowvar=False)
    lam = np.sort(np.linalg.eigvalsh(C))[::-1]
    spec = chart_spec(at, "learn_psd_model")
    plotted = np.asarray(spec["data"][1]["customdata"], dtype=float)
    assert spec["data"][1]["name"].startswith("covariance")
    np.testing.assert_allclose(plotted, lam, atol=symmetric_tolerance(C))
    shown = _shown(at)
    zeros = int(re.search(r"\*\*(\d+)\*\* are \(\|λ\|", shown).group(1))
    rank = np.linalg.matrix_rank(C, tol=tm.SAFETY * max(n, d) * tm.EPS64 * lam[0])
    assert zeros == d - rank  # the sentence counts what the figure shows below its line
    assert f"at most n − 1 = {n - 1} directions" in shown


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-bert"])
def test_pca_routes_agree_with_sklearn_on_the_page(model):
    from sklearn.decomposition import PCA

    at = _open("pca", model)
    X = _hidden(model, 0)
    ref = PCA(n_components=min(10, X.shape[0] - 1, X.shape[1]), svd_solver="full").fit(X)
    spec = chart_spec(at, "learn_pca_explained")
    bars = [t for t in spec["data"] if t["type"] == "bar"]
    assert len(bars) == 3
    for bar in bars:  # each route's explained-variance ratios, as plotted
        np.testing.assert_allclose(
            np.asarray(bar["y"], dtype=float), ref.explained_variance_ratio_, atol=1e-9
        )
    Xc = X - X.mean(axis=0)
    s = np.linalg.svd(Xc, compute_uv=False)
    ratios = s**2 / np.sum(s**2)
    np.testing.assert_allclose(np.asarray(bars[1]["y"], dtype=float), ratios[: len(bars[1]["y"])], atol=1e-9)


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-bert"])
def test_rayleigh_interlacing_on_the_capture(model):
    at = _open("rayleigh", model, ry_dim=1)
    C = np.cov(_hidden(model, 0), rowvar=False)
    keep = [i for i in range(C.shape[0]) if i != 1]
    lam = np.sort(np.linalg.eigvalsh(C))[::-1]
    mu = np.sort(np.linalg.eigvalsh(C[np.ix_(keep, keep)]))[::-1]
    spec = chart_spec(at, "learn_ry_model")
    np.testing.assert_allclose(
        np.asarray(spec["data"][1]["x"], dtype=float),
        mu[: len(spec["data"][1]["x"])],
        atol=symmetric_tolerance(C),
    )
    n = C.shape[0]
    assert f"**{2 * (n - 1)}** hold" in _shown(at) or f"of the {2 * (n - 1)} inequalities" in _shown(at)
    tol = symmetric_tolerance(C)
    assert np.all(lam[:-1] >= mu - tol) and np.all(mu >= lam[1:] - tol)
    assert ": all of them, as the theorem says." in _shown(at)


def test_weyl_table_matches_numpy_on_the_weights():
    at = _open("weyl", "tiny-gpt2")
    model = get_model("tiny-gpt2")
    shown = _shown(at)
    for m in weight_matrices(model.model):
        if m.layer != 0 or m.kind not in ("attn_q", "attn_o", "mlp_down"):
            continue
        W = m.weight.detach().to(torch.float64).numpy().copy()
        s = np.linalg.svd(W, compute_uv=False)
        for scheme in tm.WEYL_SCHEMES:
            E = fake_quantize(torch.from_numpy(W.copy()), scheme).numpy() - W
            e_norm = np.linalg.norm(E, 2)
            shift = np.abs(np.linalg.svd(W + E, compute_uv=False) - s).max()
            assert shift <= e_norm + 2 * backward_error(W)
            assert f"| {m.name} | {W.shape[0]}×{W.shape[1]} | {scheme.name} | {e_norm:.4g} |" in shown
    assert "holds for **6 of 6** (matrix, quantization) pairs" in shown


def test_charpoly_states_kappa_of_the_head():
    at = _open("charpoly", "tiny-bert", layer=1, head=0)
    A = capture(get_model("tiny-bert"), TEXT).attentions[1, 0].astype(np.float64)
    w, V = np.linalg.eig(A)
    kappa = np.linalg.cond(V / np.linalg.norm(V, axis=0))
    stated = float(re.search(r"κ\(V\) = \*\*([0-9.e+-]+)\*\*", _shown(at)).group(1))
    # kappa(V) is itself ill-conditioned when V is: compare to two digits unless V is far from singular.
    assert stated == pytest.approx(kappa, rel=0.01 if kappa < 1e6 else 0.5)


@pytest.mark.parametrize("walkthrough", list(CHARTS))
def test_an_exercise_answered_wrong_then_right(walkthrough):
    at = _open(walkthrough, "tiny-gpt2", seed=7)
    exercises = EXERCISES[walkthrough](7)
    index = next(i for i, e in enumerate(exercises) if e.kind == "number")
    ex = exercises[index]
    key = f"learn_ex_{walkthrough}_{ex.id}"
    at.text_input(key=f"{key}_answer").input(f"{ex.answer + 10 * ex.tolerance + 1:.6g}")
    at.button(key=f"{key}_check").click()
    at.run()
    assert not at.exception
    assert any("Not quite" in e.value for e in at.error)
    assert any(ex.hint in i.value for i in at.info)
    at.text_input(key=f"{key}_answer").input(f"{ex.answer:.10g}")
    at.button(key=f"{key}_check").click()
    at.run()
    assert not at.exception and not at.error
    assert any(s.value.startswith("Right") for s in at.success)


@pytest.mark.parametrize("walkthrough", list(CHARTS))
def test_a_single_token_text_is_explained_not_an_exception(walkthrough):
    at = run_page(PAGE, model="tiny-gpt2", text="a", walkthrough=walkthrough)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    if walkthrough in ("psd", "rayleigh", "pca", "conditioning"):
        assert any("single token" in w.value or "at least three tokens" in w.value for w in at.warning)
    assert "#### Exercises" in _shown(at)  # the exercises are there whatever the text
