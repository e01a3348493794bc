"""The exercises of the six first walkthroughs: for several students' seeds, the right answer, computed here with
numpy/scipy from the instance the student is given (never from the exercise's own answer), is accepted, and a
wrong one refused. And the course path: prerequisites first, otherwise the listed order."""

import numpy as np
import pytest
import scipy.special
import scipy.stats

from explorer.analysis import teaching
from explorer.analysis.exercises import Exercise
from explorer.ui import learn
from explorer.ui.learn.walkthrough import Walkthrough, course_order

SEEDS = (1, 2, 3, 7, 42, 1234, 999_999)
OWN = ("matrix2x2", "power", "gd", "temperature", "nonnormal", "svd")


def _by_id(exercises: tuple[Exercise, ...]) -> dict[str, Exercise]:
    return {ex.id: ex for ex in exercises}


def _accepts_only(ex: Exercise, right: float) -> None:
    """``right`` (typed as a person would, 4 decimals) is accepted; 3 tolerances off either way is refused."""
    assert ex.check(f"{right:.4f}").right, (ex.id, ex.question, right)
    for wrong in (right + 3 * ex.tolerance, right - 3 * ex.tolerance):
        assert not ex.check(f"{wrong:.6f}").right, (ex.id, wrong)


def _choice_only(ex: Exercise, right: int) -> None:
    assert ex.check(right).right, (ex.id, ex.question, right)
    assert not any(ex.check(i).right for i in range(len(ex.choices)) if i != right)


def _matrix_shown(M: np.ndarray) -> str:
    return "[" + ", ".join("[" + ", ".join(f"{v:g}" for v in row) + "]" for row in M) + "]"


@pytest.mark.parametrize("seed", SEEDS)
def test_matrix2x2_eigenvalue_and_kind(seed):
    inst = teaching.matrix2x2_instance(seed)
    ex = _by_id(teaching.matrix2x2_exercises(seed))
    M = inst.largest
    assert _matrix_shown(M) in ex["largest"].question  # the student reads the matrix the answer is about
    lam = np.linalg.eigvals(M)
    assert np.all(lam.imag == 0) and lam[0] != lam[1]
    _accepts_only(ex["largest"], float(lam.real.max()))

    K = inst.kind_matrix
    assert _matrix_shown(K) in ex["kind"].question
    w = np.linalg.eigvals(K)
    # Integer 2x2 matrices: the discriminant is an exact integer, so "repeated" is decided exactly by it; numpy's
    # eigenvalues then say real or complex, and the rank of K - lambda I whether an eigenvector line is missing.
    disc = (K[0, 0] - K[1, 1]) ** 2 + 4 * K[0, 1] * K[1, 0]
    if disc < 0:
        assert np.all(w.imag != 0)
        kind = 1
    elif disc > 0:
        assert np.all(w.imag == 0)
        kind = 0
    else:
        lam2 = np.trace(K) / 2
        kind = 2 if np.linalg.matrix_rank(K - lam2 * np.eye(2)) == 1 else 3
    _choice_only(ex["kind"], kind)


def test_matrix2x2_instances_cover_every_kind():
    kinds = {teaching.matrix2x2_instance(seed).kind for seed in range(1, 40)}
    assert kinds == {"distinct", "complex", "defective"}


@pytest.mark.parametrize("seed", SEEDS)
def test_power_steps_and_rayleigh_rate(seed):
    r = teaching.power_instance(seed).ratio
    ex = _by_id(teaching.power_exercises(seed))
    assert f"= {r:g}," in ex["steps"].question
    k = 0
    while r**k >= 1e-3:  # the first k with |lambda_2/lambda_1|^k tan(theta_0) below 1e-3 (tan theta_0 = 1)
        k += 1
    assert ex["steps"].check(str(k)).right
    assert not ex["steps"].check(str(k - 1)).right and not ex["steps"].check(str(k + 1)).right
    # The theorem on a real matrix: power iteration on a symmetric matrix with this ratio, started at
    # tan(theta_0) = 1, is within the bound after k steps.
    S = np.diag([1.0, r, 0.5 * r])
    x = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)  # tan theta_0 = 1 against v1 = e1
    for _ in range(k):
        x = S @ x
        x /= np.linalg.norm(x)
    assert abs(x[1] / x[0]) <= 1e-3
    _accepts_only(ex["rayleigh_rate"], r * r)


def _gd_diverges(H: np.ndarray, eta: float, steps: int = 2000) -> bool:
    x = np.array([1.0, 1.0])
    for _ in range(steps):
        x = x - eta * (H @ x)
        if np.linalg.norm(x) > 1e6:  # gone: stop before it overflows
            return True
    return bool(np.linalg.norm(x) > 1.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_gd_step_rate_and_convergence(seed):
    g = teaching.gd_instance(seed)
    ex = _by_id(teaching.gd_exercises(seed))
    H = np.diag([g.lam_max, g.lam_min])
    assert f"λ₁ = {g.lam_max:g}" in ex["eta_max"].question and f"λ₂ = {g.lam_min:g}" in ex["eta_max"].question
    eta_max = 2 / np.linalg.eigvalsh(H).max()
    # Measured: just below the edge converges, just above diverges.
    assert not _gd_diverges(H, 0.99 * eta_max) and _gd_diverges(H, 1.01 * eta_max)
    _accepts_only(ex["eta_max"], eta_max)
    # The best fixed rate, found by scanning step sizes (numpy), not by the formula.
    etas = np.linspace(0, eta_max, 200_001)
    rates = np.abs(1 - etas[:, None] * np.linalg.eigvalsh(H)[None, :]).max(axis=1)
    _accepts_only(ex["best_rate"], float(rates.min()))
    assert f"η = {g.eta:g}" in ex["converges"].question
    _choice_only(ex["converges"], 1 if _gd_diverges(H, g.eta) else 0)


def test_gd_instances_both_converge_and_diverge():
    answers = {int(_by_id(teaching.gd_exercises(seed))["converges"].answer) for seed in range(1, 30)}
    assert answers == {0, 1}


@pytest.mark.parametrize("seed", SEEDS)
def test_temperature_weight_and_cold_entropy(seed):
    counts = teaching.temperature_instance(seed).counts
    ex = _by_id(teaching.temperature_exercises(seed))
    shown = "(" + ", ".join(str(int(c)) for c in counts) + f")/{int(counts.sum())}"
    assert shown in ex["half"].question
    p = counts / counts.sum()
    _accepts_only(ex["half"], float(scipy.special.softmax(np.log(p) / 0.5)[0]))
    # tau -> 0, measured at tau = 1e-3: the other weights are (c_j / c_max)^1000 <= (3/4)^1000, nothing.
    cold = scipy.special.softmax(np.log(p) / 1e-3)
    _accepts_only(ex["entropy_cold"], float(scipy.stats.entropy(cold)))


def test_temperature_instances_include_ties():
    entropies = {
        round(float(_by_id(teaching.temperature_exercises(s))["entropy_cold"].answer), 3)
        for s in range(1, 60)
    }
    assert {0.0, round(np.log(2), 3)} <= entropies


@pytest.mark.parametrize("seed", SEEDS)
def test_nonnormal_norm_and_long_run(seed):
    J = teaching.nonnormal_instance(seed).matrix
    ex = _by_id(teaching.nonnormal_exercises(seed))
    assert f"[[{J[0, 0]:g}, {J[0, 1]:g}], [0, {J[1, 1]:g}]]" in ex["norm"].question
    _accepts_only(ex["norm"], float(np.linalg.norm(J, 2)))
    far = np.linalg.norm(np.linalg.matrix_power(J, 2000), 2)
    assert (
        far < 1e-6 or far > 1e6
    )  # rho is 0.95 at most or 1.05: the long run is decided well before t = 2000
    _choice_only(ex["long_run"], 0 if far < 1 else 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_svd_errors_and_energy(seed):
    inst = teaching.svd_instance(seed)
    ex = _by_id(teaching.svd_exercises(seed))
    W, k = inst.matrix, inst.k
    U, S, Vt = np.linalg.svd(W, full_matrices=False)
    # The question's singular values are W's (well-conditioned: errors of order eps ||W||).
    np.testing.assert_allclose(S, inst.singular_values, rtol=0, atol=1e-12 * S[0])
    assert ", ".join(f"{s:g}" for s in inst.singular_values) in ex["fro_error"].question
    Wk = (U[:, :k] * S[:k]) @ Vt[:k]
    _accepts_only(ex["fro_error"], float(np.linalg.norm(W - Wk, "fro")))
    _accepts_only(ex["spectral_error"], float(np.linalg.norm(W - Wk, 2)))
    _accepts_only(ex["energy"], float(np.linalg.norm(Wk, "fro") ** 2 / np.linalg.norm(W, "fro") ** 2))


@pytest.mark.parametrize("walkthrough", OWN)
def test_every_seed_gives_a_valid_instance_with_its_own_numbers(walkthrough):
    record = learn.BY_ID[walkthrough]
    assert record.exercises is not None
    questions = set()
    for seed in range(1, 80):
        exercises = record.exercises(seed)
        assert exercises and len({ex.id for ex in exercises}) == len(exercises)
        assert exercises == record.exercises(seed)  # the same seed, the same instance
        questions.add(tuple(ex.question for ex in exercises))
    assert len(questions) >= 4  # a class gets different numbers


def _record(id_: str, *prerequisites: str) -> Walkthrough:
    return Walkthrough(
        id=id_, title=id_, params=(f"{id_}_p",), render=lambda prose: None, prerequisites=prerequisites
    )


def test_course_order_puts_prerequisites_first_and_keeps_the_listed_order_otherwise():
    records = [_record("c", "b"), _record("a"), _record("b", "a"), _record("d", "unknown")]
    assert course_order(records) == ("a", "b", "c", "d")
    assert course_order([_record("x"), _record("y")]) == ("x", "y")
    with pytest.raises(ValueError, match="cycle"):
        course_order([_record("p", "q"), _record("q", "p")])


def test_the_course_path_holds_every_record_after_its_prerequisites():
    assert sorted(learn.ORDER) == sorted(w.id for w in learn.WALKTHROUGHS)
    for w in learn.WALKTHROUGHS:
        assert set(w.prerequisites) <= set(learn.BY_ID), (w.id, w.prerequisites)  # no unknown id
        assert all(learn.ORDER.index(p) < learn.ORDER.index(w.id) for p in w.prerequisites), w.id
    assert [i for i in learn.ORDER if i in OWN] == list(OWN)


def test_source_switch_names_its_param_values_and_model_link():
    from explorer.ui.learn.walkthrough import source_switch

    switch = source_switch("zz", "Toy", "Loaded", model_value="head")
    assert (switch.param, switch.setting.default, switch.setting.suffix) == ("zz_on", "example", "zz_on")
    assert tuple(switch.setting.choices) == ("example", "head")
    assert dict(switch.labels) == {"example": "Toy", "head": "Loaded"}
    assert switch.model_link == {"zz_on": "head"}
    assert source_switch("yy", "a", "b").model_link == {"yy_on": "model"}


def test_walkthroughs_on_model_link_to_their_switch():
    # Every record that has a switch opens on the model through it (the records' model_link, used by the docs).
    for walkthrough in learn.WALKTHROUGHS:
        module = __import__(walkthrough.render.__module__, fromlist=["SOURCE"])
        switch = getattr(module, "SOURCE", None)
        if hasattr(switch, "model_link"):
            assert walkthrough.model_link == switch.model_link, walkthrough.id
