"""The Learn page's figures show exactly the analysis results they are given, with titled axes."""

import numpy as np
import pytest

from explorer.analysis import teaching
from explorer.figures import learn as figures
from tests.tolerances import SAFETY, eig_tolerances, eps, sum_rtol


def _softmax(S):
    E = np.exp(S - S.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def _axis_titles(fig):
    layout = fig.to_plotly_json()["layout"]
    return [
        v["title"]["text"] for k, v in layout.items() if k.startswith(("xaxis", "yaxis")) and "title" in v
    ]


def _finite(values):
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def test_plane_figure_draws_the_map():
    res = teaching.plane_2x2(teaching.PRESETS_2X2["symmetric"][1])
    fig = figures.make_plane_figure(res)
    by_name = {t.name: t for t in fig.data}
    # exact: the trace holds this array
    np.testing.assert_array_equal(by_name["M × unit circle"].x, res.circle_image[0])
    # exact: the trace holds this array
    np.testing.assert_array_equal(by_name["M × unit circle"].y, res.circle_image[1])
    eig_lines = [t for t in fig.data if t.name and t.name.startswith("eigenvector line")]
    assert len(eig_lines) == 2
    for trace, v in zip(eig_lines, res.eigvecs, strict=True):  # each line points along its eigenvector
        direction = np.array([trace.x[1], trace.y[1]])
        # parallel: a 2-term dot product vs a norm, c n eps
        assert abs(direction @ v) == pytest.approx(np.linalg.norm(direction), rel=2 * sum_rtol(2))
    tips = next(t for t in fig.data if t.mode == "text")
    np.testing.assert_array_equal(tips.x, res.matrix[0] * 1.12)  # labels at M e1, M e2: the same product
    assert fig.layout.yaxis.scaleanchor == "x"
    assert set(_axis_titles(fig)) == {"x", "y"}


def test_plane_figure_without_real_eigenvectors():
    res = teaching.plane_2x2(teaching.PRESETS_2X2["rotation"][1])
    fig = figures.make_plane_figure(res)
    assert not [t for t in fig.data if t.name and t.name.startswith("eigenvector")]


def test_eigenvalue_and_charpoly_figures():
    res = teaching.plane_2x2([[0.9, 0.1], [0.4, 0.6]])
    fig = figures.make_eigenvalue_plane_figure(res.eigvals)
    points = fig.data[1]
    # exact: the same eigvals call on the same matrix
    np.testing.assert_array_equal(sorted(points.x), sorted(np.linalg.eigvals(res.matrix).real))
    assert _axis_titles(fig) == ["Re λ", "Im λ"]
    poly = figures.make_charpoly_figure(res)
    curve, roots = poly.data[0], poly.data[1]
    # p(lambda_hat) = p'(lambda) (lambda_hat - lambda) + Horner's rounding c n eps sum |a_k| |x|^k.
    w, tol = eig_tolerances(res.matrix)
    slope = np.abs(np.polyval(np.polyder(res.charpoly), w)).max()
    horner = SAFETY * 3 * eps() * np.polyval(np.abs(res.charpoly), np.abs(w).max())
    np.testing.assert_allclose(np.polyval(res.charpoly, roots.x), 0.0, atol=slope * tol.max() + horner)
    # The same 3-term polynomial in another evaluation order: c n eps sum of |terms|, both sides.
    x = np.array(curve.x)
    terms = np.max(x**2 + abs(res.trace) * np.abs(x) + abs(res.det))
    np.testing.assert_allclose(curve.y, x**2 - res.trace * x + res.det, rtol=0, atol=2 * sum_rtol(3) * terms)
    assert "λ² − 1.5λ + 0.5" in poly.layout.title.text


def test_power_figures():
    res = teaching.power_iteration(teaching.example_symmetric(40, 0.8), 60)
    fig = figures.make_power_convergence_figure(res, step=30)
    assert len(fig.data) == 4 and fig.layout.yaxis.type == "log"
    assert all(len(t.x) == 31 for t in fig.data)
    # exact: the trace holds this array
    np.testing.assert_array_equal(_finite(fig.data[0].y), res.tan_angle[:31][res.tan_angle[:31] > 0])
    assert "bound" in fig.data[1].name  # symmetric: a true upper bound
    vec = figures.make_power_vector_figure(res, step=30)
    np.testing.assert_array_equal(np.abs(vec.data[0].y), np.abs(res.iterates[30]))  # exact: the same np.abs
    assert np.dot(vec.data[0].y, vec.data[1].y) > 0  # drawn with the same sign as v1
    np.testing.assert_array_equal(vec.data[1].y, res.v1)  # exact: drawn as computed
    A = _softmax(np.random.default_rng(0).normal(size=(6, 6)))
    nonsym = teaching.power_iteration(A.T, 20)
    assert "slope" in figures.make_power_convergence_figure(nonsym, step=5).data[1].name


def test_lanczos_figure():
    run = teaching.lanczos(teaching.example_symmetric(30, 0.9), 20)
    fig = figures.make_lanczos_figure(run, steps=12)
    ritz = fig.data[0]
    assert len(ritz.x) == 12 * 13 // 2  # step j has j Ritz values
    # exact: the trace holds these Ritz values
    np.testing.assert_array_equal(sorted(ritz.y), sorted(_finite(run.ritz[:12].ravel())))
    rug = fig.data[1]
    np.testing.assert_array_equal(rug.y, run.eigvals)  # exact: the trace holds this array
    eigsh_lines = [t for t in fig.data if t.legendgroup == "eigsh"]
    np.testing.assert_array_equal(  # exact: the traces hold these values
        sorted(t.y[0] for t in eigsh_lines), np.concatenate([run.eigsh_smallest, run.eigsh_largest])
    )
    assert set(_axis_titles(fig)) == {"Lanczos step m (size of the Krylov space)", "eigenvalue"}


def test_gd_figures():
    res = teaching.gradient_descent(4.0, 0.5, 0.52)
    contour = figures.make_gd_contour_figure(res)
    path = next(t for t in contour.data if t.name == "GD iterates x_t")
    np.testing.assert_array_equal(path.x, res.iterates[:, 0])  # exact: the trace holds this array
    np.testing.assert_array_equal(contour.data[0].z, np.sqrt(res.grid_f))  # exact: the same sqrt
    assert "diverges" in contour.layout.title.text
    decay = figures.make_gd_decay_figure(res)
    closed = decay.data[0]
    # exact: the same closed form
    np.testing.assert_array_equal(
        closed.y, np.abs(res.coords[0, 0]) * np.abs(res.factors[0]) ** np.arange(41)
    )
    rate = figures.make_gd_rate_figure(res)
    marker = rate.data[-1]
    assert marker.x[0] == 0.52 and marker.y[0] == res.rate  # exact: copies
    assert {s.x0 for s in rate.layout.shapes if s.x0 is not None} >= {res.eta_opt, res.eta_max}
    ok = teaching.gradient_descent(4.0, 0.5, res.eta_opt)
    assert "converges" in figures.make_gd_contour_figure(ok).layout.title.text


def test_temperature_animation_has_one_frame_per_tau():
    A = _softmax(np.random.default_rng(3).normal(scale=2, size=(15, 15)))
    sweep = teaching.temperature_sweep(A, causal=False)
    start = sweep.index_of(0.5)
    fig = figures.make_temperature_animation_figure(sweep, start_index=start)
    assert len(fig.frames) == len(sweep.taus)
    for frame, lam in zip(fig.frames, sweep.eigvals, strict=True):
        np.testing.assert_array_equal(frame.data[0].x, lam.real)  # exact: the trace holds this array
        np.testing.assert_array_equal(frame.data[0].y, lam.imag)  # exact: the trace holds this array
    slider = fig.layout.sliders[0]
    assert slider.active == start and len(slider.steps) == len(sweep.taus)
    assert [s.args[0][0] for s in slider.steps] == [f.name for f in fig.frames]
    # the shown frame is the chosen tau (exact: a copy)
    np.testing.assert_array_equal(fig.data[1].x, sweep.eigvals[start].real)
    summary = figures.make_temperature_summary_figure(sweep, tau=sweep.taus[start])
    # exact: the trace holds this array
    np.testing.assert_array_equal(summary.data[0].y, sweep.second_modulus)
    assert summary.layout.xaxis.type == "log"


def test_transient_and_schur_figures():
    res = teaching.transient_growth(teaching.nonnormal_matrix(6, 0.95, 1.0), steps=30)
    fig = figures.make_transient_figure(res)
    names = [t.name for t in fig.data]
    assert names[:2] == ["‖J^t‖₂", "ρ^t"] and any(n.startswith("κ(V)") for n in names)
    np.testing.assert_array_equal(fig.data[0].y, res.norms)  # exact: the trace holds this array
    defective = teaching.transient_growth(np.array([[0.8, 1.0], [0.0, 0.8]]), steps=10)
    assert not any(t.name.startswith("κ(V)") for t in figures.make_transient_figure(defective).data)
    schur = figures.make_schur_figure(res)
    np.testing.assert_array_equal(schur.data[0].z, res.matrix)  # exact: the trace holds this array
    np.testing.assert_array_equal(schur.data[1].z, res.schur_T)  # exact: the trace holds this array


def test_low_rank_figures_crop_big_matrices():
    W = np.random.default_rng(0).normal(size=(200, 150))
    res = teaching.best_rank_k(teaching.svd_factors(W), 10)
    fig = figures.make_low_rank_figure(res, image=False, max_cells=64)
    assert np.asarray(fig.data[0].z).shape == (64, 64)
    np.testing.assert_array_equal(fig.data[1].z, res.approx[:64, :64])  # exact: the trace holds this array
    assert "first 64×64" in fig.layout.annotations[0].text
    small = teaching.best_rank_k(teaching.svd_factors(teaching.image_matrix()), 3)
    pic = figures.make_low_rank_figure(small, image=True)
    assert np.asarray(pic.data[0].z).shape == (72, 96) and pic.data[0].zmin == 0
    err = figures.make_svd_error_figure(res)
    curve = next(t for t in err.data if "Eckart-Young" in t.name)
    np.testing.assert_array_equal(curve.y, res.errors_by_k)  # exact: the trace holds this array
    marker = err.data[-1]
    assert marker.x[0] == 10 and marker.y[0] == res.error_fro  # exact: a copy
