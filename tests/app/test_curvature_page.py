"""The Curvature page under AppTest, on tiny-gpt2 and on both embedded models.

The charts' numbers are checked against the exact Hessian of a small block, built here without the code
under test: torch.autograd.functional.hessian of the loss written out directly (Hugging Face's own
``labels=`` loss for causal LMs; the multiple-negatives ranking loss over the shipped pairs for MiniLM) in
float64, and numpy's eigvalsh. The page computes in float32, with Lanczos stopped at a relative residual."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from explorer.analysis.curvature import MNRL_SCALE, contrastive_pairs
from explorer.analysis.matrices import weights_checksum
from explorer.figures.curvature import DENSITY_FLOOR
from explorer.models.capture import tokenize
from explorer.ui.cache import cached_model
from tests.apptest import assert_page_ok, chart_spec, run_page
from tests.tolerances import sum_rtol

PAGE = "pages/curvature.py"
TEXT = "The cat sat on the mat because the mat was warm."
EPS32 = float(np.finfo(np.float32).eps)
# The page's Lanczos stops when every residual is below 1e-4 of |θ_max| (explorer.analysis.curvature's
# top_eigenpairs default), and for a symmetric H an eigenvalue lies within ‖r‖ of each Ritz value θ; float32
# products add about 1e3 eps32 relative (sums over tokens, classes and the chain of layers).
LANCZOS_REL = 1e-4 + 1e3 * EPS32


def _model(at):
    """The page's cached model (the same object the page used: one process, st.cache_resource)."""
    return cached_model(at.session_state["selection"].model_key)


def _float64_copy(loaded):
    return copy.deepcopy(loaded.model).to(torch.float64).eval()


def _causal_loss_fn(loaded, name: str, text: str, max_tokens: int):
    """theta -> next-token cross-entropy (Hugging Face's ``labels=`` loss) with parameter ``name`` = theta."""
    model = _float64_copy(loaded)
    ids = torch.tensor([tokenize(loaded, text, max_tokens)[0]])

    def loss(theta):
        return functional_call(model, {name: theta}, args=(), kwargs={"input_ids": ids, "labels": ids}).loss

    return loss, dict(model.named_parameters())[name].detach().clone()


def _exact(loss, theta) -> tuple[np.ndarray, float]:
    """(eigenvalues descending, trace) of the Hessian of ``loss`` at ``theta`` (float64)."""
    H = torch.autograd.functional.hessian(loss, theta).reshape(theta.numel(), theta.numel()).numpy()
    # A self-check of the reference, not a tolerance on the code under test: H[i, j] and H[j, i] come from two
    # different double-backward passes whose sums cancel large intermediate terms, so their rounding scales with
    # those terms, not with ||H||, and with the thread count (measured with one thread on tiny-gpt2: 1.8e-13
    # against max |H| 9.6e-4, 1.9e-10 relative, where the old 1e-10 max |H| failed). A mistake (a wrong reshape,
    # a non-symmetric operator) is of the order of |H| itself; sqrt(eps) max |H| sits between the two.
    np.testing.assert_allclose(H, H.T, rtol=0, atol=np.sqrt(np.finfo(float).eps) * np.abs(H).max())
    return np.linalg.eigvalsh(H)[::-1], float(np.trace(H))


def _check_block_charts(at, lam: np.ndarray, trace: float, k: int, probes: int) -> None:
    """The page's top-k, trace and density charts against the exact spectrum."""
    top = chart_spec(at, "curvature_top")["data"][0]
    np.testing.assert_allclose(top["y"], lam[:k], rtol=0, atol=LANCZOS_REL * abs(lam[0]))
    # Hutchinson: a sample mean over ``probes`` Rademacher probes (fixed seed), within 3 standard errors.
    estimate = chart_spec(at, "curvature_trace_estimate")
    line = next(t for t in estimate["data"] if t["name"] == "running estimate")
    band = next(t for t in estimate["data"] if t["name"] == "± 2 standard errors")
    half_width = (
        band["y"][len(band["y"]) // 2 - 1] - band["y"][len(band["y"]) // 2]
    ) / 2  # 2 s.e. at the end
    assert len(line["y"]) == probes
    assert abs(line["y"][-1] - trace) <= 1.5 * half_width, (line["y"][-1], trace, half_width / 2)
    density = chart_spec(at, "curvature_density")["data"][0]
    grid, values = np.asarray(density["customdata"]), np.asarray(density["y"])
    # The density integrates to 1; the chart floors it at DENSITY_FLOOR of its peak for the log axis, which
    # adds at most DENSITY_FLOOR * peak * width.
    floor_mass = DENSITY_FLOOR * values.max() * (grid[-1] - grid[0])
    # The rest is the float64 trapezoid sum of non-negative terms (c n eps relative).
    assert np.trapezoid(values, grid) == pytest.approx(1.0, abs=sum_rtol(len(grid)) + floor_mass)


def _words(at) -> str:
    return "\n\n".join(m.value for m in at.markdown)


def _check_block_words(at) -> None:
    """The plain sentences against the charts: 2/λ_max from the top eigenvalue drawn, the trace and its mean
    from the trace chart, and the curve's area below 0 from the density chart (numpy's trapezoid)."""
    words = _words(at)
    top = chart_spec(at, "curvature_top")["data"][0]["y"][0]
    assert f"**λ_max = {top:.4g}**" in words and f"2/λ_max = {2 / top:.4g}" in words
    line = next(
        t for t in chart_spec(at, "curvature_trace_estimate")["data"] if t["name"] == "running estimate"
    )
    assert f"**Trace = {line['y'][-1]:.4g}**" in words
    density = chart_spec(at, "curvature_density")["data"][0]
    grid, values = np.asarray(density["customdata"]), np.asarray(density["y"])
    # The area left of 0: the grid points below it and the curve linearly interpolated at 0 (the cell across 0
    # matters: the bulk peaks there, ~1/(σ√2π) high, and one cell holds up to a few % of the mass).
    below = grid < 0
    x = np.append(grid[below], 0.0)
    area = np.trapezoid(np.append(values[below], np.interp(0.0, grid, values)), x) / np.trapezoid(
        values, grid
    )
    match = re.search(r"\*\*<?([0-9.]+)% negative\*\* of the spectrum's weight \(Ritz values of the density below "
                      r"−σ[^)]*\).*?drawn curve has ([0-9.]+)% of its area below 0", words)  # fmt: skip
    assert match, words
    # Printed to 0.1 % (half a unit: 5e-4); the chart's floor for the log axis adds at most DENSITY_FLOOR of the
    # peak times the span (the same bound as _check_block_charts).
    floor_mass = DENSITY_FLOOR * values.max() * (grid[-1] - grid[0])
    assert abs(float(match[2]) / 100 - area) <= 5e-4 + floor_mass + 1e-9, (match[2], area)
    assert "Details: how these numbers are computed" in [e.label for e in at.expander]


def _check_training_words(at, eta: float) -> None:
    """The training what-if's sentences against the run drawn in its chart: the quadratic model's prediction
    from η λ_max at the start, and the outcome named only when the chart's numbers show what defines it."""
    traces = {t["name"]: t for t in chart_spec(at, "curvature_training")["data"]}
    loss = np.asarray(traces["loss (nats)"]["y"], dtype=float)
    lam = np.asarray(traces["λ_max"]["y"], dtype=float)
    words = _words(at)
    threshold, ratio = 2 / eta, eta * lam[0]
    assert f"η · λ_max = {ratio:.3g}" in words
    assert ("predicts divergence" in words) == (ratio > 2) and ("predicts convergence" in words) == (
        ratio < 2
    )
    if ratio > 2:
        assert f"|1 − ηλ_max|² = {(1 - ratio) ** 2:.3g}" in words
    label = re.search(r"What happened: ([^*]*)\.\*\*", words)[1]
    assert f"{loss[0]:.4g}" in words and f"2/η = {threshold:.4g}" in words
    tol = 1e-3 * abs(loss[0])  # the classifier's rise tolerance; every rise named below is far above it
    if label == "converged below the limit":
        assert ratio < 2 and lam.max() < threshold and loss[-1] < loss[0] - tol
    elif label == "diverged":
        assert not np.isfinite(loss[-1]) or (loss[-1] > loss[0] and loss[-1] > loss[-2])
    elif label == "a catapult":
        assert loss[1:].max() > loss[0] + tol and loss[-1] < loss[0] and lam[-1] < threshold
    elif label == "edge of stability":
        half = lam[(lam.size - 1) // 2 :]
        assert np.all(np.abs(half / threshold - 1) <= 0.1) and np.any(np.diff(loss) > tol)
    elif label == "the sharpness fell, without a spike":
        assert ratio > 2 and loss[1:].max() <= loss[0] + tol and lam[-1] < threshold and loss[-1] < loss[0]
        assert (
            f"from {loss[0]:.4g} to {loss[-1]:.4g}" in words
            and f"from {lam[0]:.4g} to {lam[-1]:.4g}" in words
        )
    else:
        assert label.startswith("not settled"), label


# ----------------------------------------------------------------------------------------- tiny-gpt2

TINY_BLOCK = "param:transformer.h.1.ln_2.weight"


def test_defaults_draw_every_chart_and_say_the_loss():
    at = run_page(PAGE, model="tiny-gpt2", text=TEXT)
    assert_page_ok(at)
    assert at.session_state["curvature_block"] == "layer:1:mlp"  # the middle layer's MLP (2 layers)
    assert at.session_state["curvature_op"] == "hessian"
    assert at.session_state["curvature_k"] == 3
    assert at.session_state["curvature_trace"] == "hutchinson"
    for key in ("curvature_top", "curvature_convergence", "curvature_density", "curvature_trace_estimate",
                "curvature_mass", "curvature_grid"):  # fmt: skip
        assert chart_spec(at, key)["data"], key
    # The block is one parameter group (layer 1's MLP): where the eigenvectors live is told per parameter.
    spec = chart_spec(at, "curvature_mass")
    mass, prefix = spec["data"], spec["layout"]["xaxis"]["title"]["text"].rstrip("…")
    mlp = [n for n, _ in _model(at).model.named_parameters() if n.startswith("transformer.h.1.mlp.")]
    assert len(mass) == 3 and all([prefix + x for x in t["x"]] == mlp for t in mass)
    for t in mass:
        # Shares of one squared norm, normalised in float64: a one-sign sum, c n eps.
        assert np.sum(t["y"]) == pytest.approx(1.0, rel=sum_rtol(len(t["y"]))) and np.all(
            np.asarray(t["y"]) >= 0
        )
    n_tokens = len(tokenize(_model(at), TEXT, 512)[0])
    assert any(f"over {n_tokens - 1} predictions on {n_tokens} tokens" in m.value for m in at.markdown)
    # Nothing of the page's own is in the link while everything is at its default.
    assert set(at.query_params) <= {"model", "text", "example", "max_tokens"}


def test_block_charts_match_the_exact_hessian_of_a_small_block():
    at = run_page(PAGE, model="tiny-gpt2", text=TEXT, block=TINY_BLOCK, k=4, probes=24)
    assert_page_ok(at)
    assert at.session_state["curvature_block"] == TINY_BLOCK and at.session_state["curvature_k"] == 4
    loss, theta = _causal_loss_fn(_model(at), TINY_BLOCK[len("param:") :], TEXT, 512)
    lam, trace = _exact(loss, theta)
    _check_block_charts(at, lam, trace, 4, 24)
    mass = chart_spec(at, "curvature_mass")["data"][0]
    # One group: its squared norm over the whole vector's, the same terms summed in two orders (c n eps).
    assert list(mass["x"]) == ["layer 1 other"]
    assert mass["y"][0] == pytest.approx(1.0, rel=sum_rtol(theta.numel()))


def test_grid_cell_matches_the_block_spectrum_of_the_same_block():
    """The grid's λ_max of layer 1's MLP equals the block section's top eigenvalue of layer:1:mlp (two
    Lanczos runs from different starts, each stopped at a relative residual of 1e-3 or better)."""
    at = run_page(PAGE, model="tiny-gpt2", text=TEXT, k=1)
    assert_page_ok(at)
    grid = chart_spec(at, "curvature_grid")["data"][0]
    cells = np.asarray(grid["customdata"], dtype=float)
    assert cells.shape == (2, 2) and np.isfinite(cells).all()
    top = chart_spec(at, "curvature_top")["data"][0]["y"][0]
    assert cells[1, 1] == pytest.approx(top, rel=1e-3 + LANCZOS_REL)


def test_block_sentences_match_the_charts():
    at = run_page(PAGE, model="tiny-gpt2", text=TEXT, block=TINY_BLOCK, k=2)
    assert_page_ok(at)
    _check_block_words(at)


def test_eta_past_the_limit_button_and_what_the_run_did():
    """The button sets η = 2.2/λ_max (3 digits, into the link) and says its factor; the run's sentences then
    match its chart."""
    at = run_page(PAGE, model="tiny-gpt2", text=TEXT, block=TINY_BLOCK, steps=4)
    assert_page_ok(at)
    button = at.button(key="curvature_eta_past")
    assert "2.2/λ_max" in button.label
    top = chart_spec(at, "curvature_top")["data"][0]["y"][0]
    button.click().run()
    assert_page_ok(at)
    eta = float(f"{2.2 / top:.3g}")
    assert at.session_state["curvature_eta"] == eta and float(at.query_params["eta"]) == eta
    at.button(key="curvature_train_start").click().run()
    assert_page_ok(at)
    _check_training_words(at, eta)
    # The run starts at the block's λ_max (its Lanczos to 1e-3, the block's to 1e-4), so 10 % past the limit.
    lam = chart_spec(at, "curvature_training")["data"][2]["y"]
    assert eta * lam[0] == pytest.approx(2.2, rel=1e-3 + 5e-3)  # plus the 3-digit rounding of η (< 0.5 %)


def test_widget_changes_are_written_to_the_link():
    at = run_page(PAGE, model="tiny-gpt2", text=TEXT, block=TINY_BLOCK)
    at.number_input(key="curvature_k").set_value(2).run()
    assert_page_ok(at)
    assert at.query_params["k"] == "2"
    at.segmented_control(key="curvature_op").set_value("gauss-newton").run()
    assert_page_ok(at)
    assert at.query_params["op"] == "gauss-newton"
    at.button(key="curvature_whole_model").click().run()
    assert_page_ok(at)
    assert at.session_state["curvature_block"] == "all" and at.query_params["block"] == "all"


def test_nonsense_link_params_fall_back_with_a_message_for_the_block():
    at = run_page(
        PAGE, model="tiny-gpt2", text=TEXT, block="layer:99:mlp", op="bogus", k="-5", trace="nope",
        probes="NaN", train_on="moon", opt="sgd", steps="0", eta="fast",
    )  # fmt: skip
    assert_page_ok(at)
    notices = [i.value for i in at.info if i.value.startswith("Link:")]
    assert len(notices) == 1, notices  # the block named in the one link notice, the same way as on every page
    assert (
        "block 'layer:99:mlp' is not a choice here; showing layer:1:mlp (tiny-gpt2 has layers 0-1;"
        in notices[0]
    )
    state = at.session_state
    assert (state["curvature_block"], state["curvature_op"], state["curvature_k"]) == (
        "layer:1:mlp",
        "hessian",
        1,
    )
    assert (state["curvature_trace"], state["curvature_probes"]) == ("hutchinson", 16)
    assert (state["curvature_train_on"], state["curvature_opt"], state["curvature_steps"]) == (
        "block",
        "gd",
        1,
    )
    assert state["curvature_eta"] == 0.1
    for param in ("block", "op", "trace", "probes", "train_on", "opt", "eta"):
        assert param not in at.query_params, param
    assert at.query_params["k"] == "1" and at.query_params["steps"] == "1"


def test_training_what_if_matches_gradient_descent_and_leaves_the_cached_model_alone():
    steps, eta = 3, 0.3
    at = run_page(PAGE, model="tiny-gpt2", text=TEXT, block=TINY_BLOCK, steps=steps, eta=eta)
    assert_page_ok(at)
    loaded = _model(at)
    before = weights_checksum(loaded.model)
    at.button(key="curvature_train_start").click().run()
    assert_page_ok(at)
    assert weights_checksum(loaded.model) == before
    traces = {t["name"]: t for t in chart_spec(at, "curvature_training")["data"]}
    loss_trace, lam_trace = traces["loss (nats)"], traces["λ_max"]
    line = next(t for name, t in traces.items() if name.startswith("2/η"))
    # The same steps in float64, written out: theta <- theta - eta grad, and the exact Hessian at each iterate.
    loss, theta = _causal_loss_fn(loaded, TINY_BLOCK[len("param:") :], TEXT, 512)
    losses, lams = [], []
    for _ in range(steps + 1):
        theta = theta.detach().requires_grad_(True)
        value = loss(theta)
        (grad,) = torch.autograd.grad(value, theta)
        losses.append(float(value.detach()))
        lams.append(_exact(loss, theta.detach())[0][0])
        theta = theta.detach() - eta * grad
    # float32 forward of a cross-entropy over 259 classes: ~1e3 eps32 relative; the iterates differ by as
    # much, amplified at most by (1 + eta λ_max) per step.
    np.testing.assert_allclose(loss_trace["y"], losses, rtol=1e3 * EPS32 * (1 + eta * max(lams)) ** steps)
    # λ_max per step: the training run's Lanczos stops at a relative residual of 1e-3 (curvature_cache).
    np.testing.assert_allclose(lam_trace["y"], lams, rtol=1e-3 + LANCZOS_REL)
    assert list(line["y"]) == [pytest.approx(2 / eta)] * 2  # one division, drawn as computed: exact to 1 ulp
    _check_training_words(at, eta)


# ----------------------------------------------------------------------------------- embedded models


@pytest.mark.slow
def test_smollm2_final_norm_block_matches_the_exact_hessian():
    """SmolLM2, the final RMSNorm's scale g (576 parameters): logits = W (g ⊙ x̂) with x̂ independent of g,
    so the Hessian of the mean cross-entropy is exactly Σ_t D_t Wᵀ(diag p_t − p_t p_tᵀ) W D_t / T,
    D_t = diag(x̂_t), computed here from the model's hidden states in float64."""
    name = "model.norm.weight"
    at = run_page(PAGE, model="smollm2-135m", text=TEXT, block=f"param:{name}", k=2, probes=8, timeout=600)
    assert_page_ok(at)
    loaded = _model(at)
    ids = torch.tensor([tokenize(loaded, TEXT, 512)[0]])
    with torch.no_grad():
        out = loaded.model(input_ids=ids, output_hidden_states=True)
        g = loaded.model.model.norm.weight.double()
        final = out.hidden_states[-1][0, :-1].double()  # after the final norm: g ⊙ x̂
        W = loaded.model.lm_head.weight.double()
        np.testing.assert_allclose((final @ W.T).numpy(), out.logits[0, :-1].double().numpy(), atol=1e-3)
        x_hat = final / g
        p = torch.softmax(final @ W.T, dim=-1)
        H = torch.zeros(g.numel(), g.numel(), dtype=torch.float64)
        for t in range(x_hat.shape[0]):
            WtP = W.T * p[t]  # (d, vocab)
            inner = WtP @ W - torch.outer(WtP.sum(1), WtP.sum(1))  # Wᵀ(diag p − ppᵀ)W
            H += x_hat[t][:, None] * inner * x_hat[t][None, :]
        H /= x_hat.shape[0]
    lam = np.linalg.eigvalsh(H.numpy())[::-1]
    _check_block_charts(at, lam, float(torch.trace(H)), 2, 8)


@pytest.mark.slow
def test_minilm_last_layernorm_block_matches_the_exact_hessian():
    """MiniLM, the last LayerNorm's scale γ (384 parameters): the contrastive loss written out from the
    normalized input x̂ of that LayerNorm (captured by a hook), mean pooling, cosine x 20 and cross-entropy."""
    name = "encoder.layer.5.output.LayerNorm.weight"
    at = run_page(PAGE, model="minilm-l6", text=TEXT, block=f"param:{name}", k=2, probes=8, timeout=600)
    assert_page_ok(at)
    loaded = _model(at)
    pairs = contrastive_pairs()
    sentences = [a for a, _ in pairs] + [b for _, b in pairs]
    enc = loaded.tokenizer(sentences, padding=True, truncation=True, max_length=512, return_tensors="pt")
    norm = loaded.model.encoder.layer[5].output.LayerNorm
    seen = {}
    handle = norm.register_forward_hook(lambda _m, inputs, _out: seen.setdefault("x", inputs[0].detach()))
    with torch.no_grad():
        loaded.model(**enc)
    handle.remove()
    x = seen["x"].double()
    x_hat = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + norm.eps)
    beta = norm.bias.detach().double()
    mask = enc["attention_mask"].unsqueeze(-1).double()
    half = len(pairs)

    def loss(gamma):
        hidden = gamma * x_hat + beta
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        a, b = F.normalize(pooled[:half], dim=-1), F.normalize(pooled[half:], dim=-1)
        return F.cross_entropy(MNRL_SCALE * a @ b.T, torch.arange(half))

    lam, trace = _exact(loss, norm.weight.detach().double().clone())
    _check_block_charts(at, lam, trace, 2, 8)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2-135m", "minilm-l6"])
def test_embedded_model_run_at_2_2_over_lambda_max_is_told_as_it_happened(model):
    """Both embedded models, the middle layer's MLP (the page's default block): the block's sentences match
    its charts, the button sets η = 2.2/λ_max, and what the page says the run did matches the run's chart."""
    at = run_page(PAGE, model=model, text=TEXT, k=1, probes=4, steps=5, timeout=600)
    assert_page_ok(at)
    _check_block_words(at)
    top = chart_spec(at, "curvature_top")["data"][0]["y"][0]
    at.button(key="curvature_eta_past").click().run()
    assert_page_ok(at)
    eta = float(f"{2.2 / top:.3g}")
    assert at.session_state["curvature_eta"] == eta
    at.button(key="curvature_train_start").click().run()
    assert_page_ok(at)
    _check_training_words(at, eta)


def test_a_cancel_is_told_apart_from_a_failure_and_stays_until_started_again(monkeypatch):
    """Cancel reaches a task through its progress report (tasks.Cancelled) or the solvers' own check
    (spectra's Cancelled): both read as cancelled, and the task layer hands the cancelled task back (the page
    does not restart it on its own) until someone starts it again; any other error is a failure."""
    import threading
    from dataclasses import dataclass

    from explorer import tasks
    from explorer.spectra.curvature import ProbeOptions, lanczos_top_k
    from explorer.ui import curvature_cache as cc

    monkeypatch.setattr(tasks, "BOARD", tasks.Board())

    @dataclass(frozen=True)
    class Probe(tasks.Spec):  # unknown cost: runs in the background
        KIND = "test-cancel"
        name: str = ""

    started = threading.Event()

    def reporting(task):
        started.set()
        while True:
            task.report(0.5, "working")
            threading.Event().wait(0.01)

    first = tasks.get(Probe("report"), reporting)
    assert started.wait(30)
    tasks.cancel(Probe("report"))
    assert first.wait(30) and cc.was_cancelled(first)
    assert tasks.get(Probe("report"), reporting) is first  # stays cancelled: not started again on its own

    in_solver, gate = threading.Event(), threading.Event()

    def matvec(v):  # a spread spectrum: Lanczos needs more than one product, checking cancel before each
        in_solver.set()
        assert gate.wait(30)
        return v * torch.arange(1, 11, dtype=v.dtype)

    def solving(task):
        return lanczos_top_k(matvec, 10, 1, options=ProbeOptions(cancel=lambda: task.cancelled))

    second = tasks.get(Probe("solver"), solving)
    assert in_solver.wait(30)
    tasks.cancel(Probe("solver"))
    gate.set()
    assert second.wait(30) and cc.was_cancelled(second)
    again = tasks.start(Probe("solver"), solving)  # started again by a person: a fresh task that finishes
    assert again is not second and again.wait(30) and again.succeeded

    def failing(task):
        raise ValueError("not a cancel")

    third = tasks.get(Probe("failure"), failing)
    assert third.wait(30) and third.failed and not cc.was_cancelled(third)
