"""What the Curvature page says in words: one plain sentence per number for a newcomer, the solvers' terms
(Ritz values, residuals, Hutchinson / Hutch++, SLQ, units) for a Details expander, and what a training
what-if predicted and did. Every sentence is built from the result it describes (no Streamlit here), so the
tests check the words against the same numbers the charts draw.

Markdown: numbers in the sentences are formatted as the page's metrics are (3-4 significant digits)."""

from __future__ import annotations

from explorer.analysis.curvature import CurvatureSummary, TrainingOutcome, TrainingRun, classify_training
from explorer.figures.curvature import BULK_MASS, DensityRegions, density_regions, share_text

# The "η just past 2/λ_max" button sets η = ETA_PAST_FACTOR / λ_max: 10 % past the limit, where a quadratic
# model grows along the top direction by |1 - 2.2|² = 1.44 per step, fast enough to see in ten steps.
ETA_PAST_FACTOR = 2.2
# "Almost flat": the mean eigenvalue under this share of λ_max.
FLAT_SHARE = 0.01
# classify_training's band around 2/η for the edge of stability.
BAND = 0.1


def eta_just_past(lambda_max: float, factor: float = ETA_PAST_FACTOR) -> float:
    """η = factor / λ_max rounded to 3 significant digits (a short link value); ValueError unless λ_max > 0."""
    if not lambda_max > 0:
        raise ValueError("λ_max must be positive for a step size past 2/λ_max.")
    return float(f"{factor / lambda_max:.3g}")


# ------------------------------------------------------------------------------------------ one block


def regions_of(summary: CurvatureSummary) -> DensityRegions:
    return density_regions(summary.density, summary.eigen.eigenvalues)


def lambda_sentence(summary: CurvatureSummary) -> str:
    lam = float(summary.eigen.eigenvalues[0])
    if lam <= 0:
        return (
            f"**λ_max = {lam:.4g}**: the loss curves down or is flat in every direction of this block, so no "
            "step size makes plain gradient descent overshoot here."
        )
    return (
        f"**λ_max = {lam:.4g}** is how sharply the loss curves along its most curved direction (the top "
        f"eigenvector): moving the weights a distance s along it changes the loss by about ½ · {lam:.4g} · s² "
        f"beyond the slope. Plain gradient descent with a step η above 2/λ_max = {2 / lam:.4g} would "
        "overshoot along that direction: on a bowl-shaped (quadratic) loss every step lands higher up the "
        "other side."
    )


def trace_sentence(summary: CurvatureSummary) -> str:
    trace, n = summary.trace, summary.n_params
    lam = float(summary.eigen.eigenvalues[0])
    mean = trace.trace / n
    text = (
        f"**Trace = {trace.trace:.4g}** (± {trace.stderr:.2g}) is the curvature summed over all {n:,} "
        f"directions of the block: {mean:.3g} per direction on average"
    )
    if trace.trace < 0:
        return (
            text
            + ". It is negative: directions where the loss curves down outweigh those where it curves up."
        )
    if lam > 0 and mean < FLAT_SHARE * lam:
        return (
            text + f", {mean / lam:.2g} of λ_max. Almost every direction is nearly flat; a few sharp ones "
            "carry the curvature, and they alone limit the step size."
        )
    if lam > 0:
        return text + f", {mean / lam:.2g} of λ_max: the curvature is spread over many directions, not a few."
    return text + "."


def negative_sentence(summary: CurvatureSummary, regions: DensityRegions | None = None) -> str:
    """The negative share, saying which number it counts: the quadrature's weight below −σ (Ritz values
    resolved as negative), not the drawn curve's area below 0."""
    r = regions or regions_of(summary)
    sigma = summary.density.sigma
    counted = f"of the spectrum's weight (Ritz values of the density below −σ = −{sigma:.2g})"
    if summary.kind == "gauss-newton":
        return (
            f"**{share_text(r.negative_mass)} negative** {counted}: Gauss-Newton is positive semi-definite, so any "
            "negative value is rounding; the loss's true saddle directions need the Hessian."
        )
    unresolved = r.negative_weight - r.negative_mass
    near = (
        f" Ritz values just below 0 (between −σ and 0) hold {share_text(unresolved)} of the weight: too close "
        "to 0 to call negative at this resolution."
        if unresolved >= 5e-4
        else ""
    )
    if r.negative_mass > 0:
        return near.join(
            (
                f"**{share_text(r.negative_mass)} negative** {counted}: directions where the loss curves down, so along "
                "them the weights sit on a saddle, not at the bottom of a valley.",
                " The drawn curve has "
                f"{r.curve_below_zero:.1%} of its area below 0: each value is drawn as a Gaussian of width σ, which "
                "moves some area across 0.",
            )
        )
    return near.join(
        (
            f"**0% negative** {counted}: at this resolution the loss curves up or is flat in every direction; "
            "no saddle direction is resolved.",
            f" The drawn curve has {r.curve_below_zero:.1%} of its area below 0: that is the Gaussian broadening of "
            "values within σ of 0, not resolved negative eigenvalues.",
        )
    )


def density_sentence(summary: CurvatureSummary, regions: DensityRegions | None = None) -> str:
    r = regions or regions_of(summary)
    k = len(summary.eigen.eigenvalues)
    low, high = r.bulk
    text = (
        f"**The density** shows how many directions have each curvature: {BULK_MASS:.0%} of them lie between "
        f"{low:.3g} and {high:.3g} (the bulk)"
    )
    if len(r.outliers):
        return (
            text + f"; {len(r.outliers)} of the top {k} eigenvalues stand far above it (outliers): those few "
            "sharp directions are the ones gradient descent's step size must respect."
        )
    return text + f"; none of the top {k} eigenvalues stands above it."


def block_sentences(summary: CurvatureSummary) -> list[str]:
    """One plain sentence each for λ_max, the trace, the negative share and the density."""
    regions = regions_of(summary)
    return [
        lambda_sentence(summary),
        trace_sentence(summary),
        negative_sentence(summary, regions),
        density_sentence(summary, regions),
    ]


def block_details(summary: CurvatureSummary) -> list[str]:
    """The solvers' terms: units, Ritz values and residual bounds, the trace estimator, SLQ."""
    eigen, trace, density = summary.eigen, summary.trace, summary.density
    regions = regions_of(summary)
    operator = "Hessian H" if summary.kind == "hessian" else "Gauss-Newton matrix G = JᵀH_zJ"
    probes, steps = density.nodes.shape
    estimator = (
        f"Hutchinson's estimator: the mean of zᵀHz over {trace.samples.size} random ±1 vectors z"
        if trace.method == "hutchinson"
        else "Hutch++: the top of the spectrum taken exactly by a few products, Hutchinson's zᵀHz on the rest "
        f"({trace.samples.size} probes)"
    )
    return [
        f"**Units.** Eigenvalues and the trace are in nats per (parameter unit)²: the loss is in nats and the "
        f"{operator} holds its second derivatives with respect to the block's {summary.n_params:,} parameters.",
        f"**Ritz values and residuals.** The top {len(eigen.eigenvalues)} eigenvalues are Ritz values θ of "
        f"thick-restart Lanczos after {eigen.n_matvec} Hessian-vector products (each a double backward, H is "
        f"never formed), {'converged' if eigen.converged else 'not converged within the budget'}. Each has a "
        f"residual ‖Hy − θy‖ (largest here {float(eigen.residual_norms.max()):.2g}): for a symmetric H a true "
        "eigenvalue lies within the residual of θ, and within about residual²/gap when it is well separated.",
        f"**Trace.** {estimator} ({trace.n_matvec} products); ± is one standard error over the probes.",
        f"**Density (SLQ).** Stochastic Lanczos quadrature: {probes} random probes × up to {steps} Lanczos steps "
        f"give {regions.n_ritz} Ritz values (nodes) with weights τ² that sum to 1 per probe; each node is drawn "
        f"as a Gaussian of σ = {density.sigma:.2g} (1 % of the nodes' span), so detail finer than σ is not "
        f"resolved. {regions.negative_ritz} of the {regions.n_ritz} nodes are below 0 ({share_text(regions.negative_weight)} "
        f"of the weight, {share_text(regions.negative_mass)} below −σ); the broadening puts {regions.curve_below_zero:.1%} "
        "of the curve's area below 0.",
    ]


def density_caption(summary: CurvatureSummary) -> str:
    """The caption under the density chart: what is shaded and which negative share the page counts."""
    density, eigen = summary.density, summary.eigen
    r = regions_of(summary)
    return (
        f"Density from {density.nodes.shape[0]} random probes × {density.nodes.shape[1]} Lanczos steps, each "
        f"Ritz value broadened by a Gaussian of σ = {density.sigma:.2g}. The shaded bulk holds "
        f"{BULK_MASS:.0%} of the weight, between {r.bulk[0]:.3g} and {r.bulk[1]:.3g}; {len(r.outliers)} of the "
        f"top {len(eigen.eigenvalues)} eigenvalues lie above it. Negative share: {share_text(r.negative_mass)} of the "
        f"weight at Ritz values below −σ ({r.negative_ritz} of {r.n_ritz} Ritz values are below 0); the curve's "
        f"area below 0, {r.curve_below_zero:.1%}, includes the broadening's spill."
    )


# ----------------------------------------------------------------------------------- training what-if


def quadratic_sentence(o: TrainingOutcome) -> str:
    """What a quadratic model with the starting Hessian predicts at this η."""
    if o.start_ratio > 2:
        return (
            f"**A quadratic model predicts divergence.** With the starting curvature η · λ_max = "
            f"{o.start_ratio:.3g} > 2: along the top eigenvector every step multiplies the loss by "
            f"|1 − ηλ_max|² = {o.quadratic_factor:.3g} (×{o.quadratic_factor**o.steps:.3g} after {o.steps} "
            "steps), so the loss grows without bound."
        )
    if o.start_ratio < 2:
        return (
            f"**A quadratic model predicts convergence.** η · λ_max = {o.start_ratio:.3g} < 2: every "
            f"direction shrinks, the top one by |1 − ηλ_max|² = {o.quadratic_factor:.3g} per step."
        )
    return (
        "**A quadratic model sits exactly at the limit.** η · λ_max = 2: the top direction bounces forever."
    )


def outcome_sentence(o: TrainingOutcome) -> str:
    """What the run did, by ``classify_training``'s outcome, with the numbers that define it."""
    a, b, thr = o.loss_start, o.loss_end, o.threshold
    lams = f"λ_max went from {o.lambda_start:.4g} to {o.lambda_end:.4g}"
    if o.kind == "diverged":
        if o.nonfinite_step >= 0:
            return (
                f"**What happened: diverged.** The loss started at {a:.4g} and was no longer finite at step "
                f"{o.nonfinite_step}; the run stopped there (λ_max at the start {o.lambda_start:.4g}, against "
                f"2/η = {thr:.4g})."
            )
        why = "as the quadratic model predicts" if o.past_limit else "although η started below the limit"
        return (
            f"**What happened: diverged.** The loss rose from {a:.4g} to {b:.4g} and was still rising at the "
            f"last step, {why} ({lams}, against 2/η = {thr:.4g})."
        )
    if o.kind == "catapult":
        return (
            f"**What happened: a catapult.** The loss rose above its start ({a:.4g}) to {o.loss_peak:.4g} at "
            f"step {o.peak_step}, then fell to {b:.4g}, while {lams}, below 2/η = {thr:.4g}. A real loss is not "
            "quadratic: the overshoot threw the weights out of the sharp valley into a flatter region where "
            "this η is stable (the catapult phase, Lewkowycz et al. 2020)."
        )
    if o.kind == "edge of stability":
        return (
            f"**What happened: edge of stability.** From step {o.hover_from} on, λ_max stayed within "
            f"{BAND:.0%} of 2/η = {thr:.4g} (between {o.lambda_low:.4g} and {o.lambda_high:.4g}) while the "
            f"loss kept falling, not monotonically ({o.rises} of {o.steps} steps went up), from {a:.4g} to "
            f"{b:.4g}. Under full-batch gradient descent the sharpness rises to about 2/η and hovers there "
            "(Cohen et al. 2021): each overshoot along the top direction pushes the curvature back down "
            "(self-stabilisation, Damian et al. 2022)."
        )
    if o.kind == "sharpness reduced":
        detour = (
            f" (on the way it went back above 2/η, to {o.lambda_peak:.4g} at step {o.lambda_peak_step}, and came "
            "down again without the loss rising)"
            if o.lambda_peak_step > 0 and o.lambda_peak > thr
            else ""
        )
        return (
            f"**What happened: the sharpness fell, without a spike.** The loss never rose above its start "
            f"and fell from {a:.4g} to {b:.4g}, while {lams}, below 2/η = {thr:.4g}{detour}. A real loss is not "
            "quadratic: steps past 2/λ_max moved the weights to where the loss curves less, until this η was "
            "stable there (self-stabilisation, Damian et al. 2022; a catapult, Lewkowycz et al. 2020, does the "
            "same after a spike)."
        )
    if o.kind == "converged":
        return (
            f"**What happened: converged below the limit.** The loss fell from {a:.4g} to {b:.4g} and λ_max "
            f"stayed below 2/η = {thr:.4g} throughout ({o.lambda_start:.4g} at the start, {o.lambda_end:.4g} "
            "at the end), as the quadratic model predicts."
        )
    return (
        f"**What happened: not settled in {o.steps} steps.** The loss went from {a:.4g} to {b:.4g} (highest "
        f"{o.loss_peak:.4g}, at step {o.peak_step}) and {lams} against 2/η = {thr:.4g}: not yet a clean "
        "convergence, divergence, catapult or edge of stability; more steps would tell."
    )


def training_outcome(run: TrainingRun) -> TrainingOutcome:
    return classify_training(run.loss, run.lambda_max, run.eta, band=BAND)


def training_sentences(run: TrainingRun) -> list[str]:
    """For gradient descent: the quadratic model's prediction and what the run did. For Adam: why 2/η is
    only a reference, and what the loss and λ_max did."""
    if run.optimizer != "gd":
        finite = run.lambda_max[run.lambda_max == run.lambda_max]
        end = f"{run.loss[-1]:.4g}" if abs(run.loss[-1]) < float("inf") else "a non-finite value"
        return [
            "**Adam** divides each parameter's step by its running gradient size, so its stability is set by "
            "that preconditioned Hessian, not by 2/η: the 2/η line is drawn for reference only.",
            f"The loss went from {run.loss[0]:.4g} to {end}, and the block's λ_max from "
            f"{finite[0]:.4g} to {finite[-1]:.4g}.",
        ] + convergence_note(run)
    o = training_outcome(run)
    return [quadratic_sentence(o), outcome_sentence(o)] + convergence_note(run)


def convergence_note(run: TrainingRun) -> list[str]:
    """A sentence when some recorded λ_max did not converge (then it is a lower bound, within its residual)."""
    measured = run.lambda_max == run.lambda_max  # not NaN
    missed = [t for t in range(run.lambda_max.size) if measured[t] and not run.lambda_converged[t]]
    if not missed:
        return []
    worst = max(float(run.lambda_residual[t]) for t in missed)
    steps = ", ".join(str(t) for t in missed)
    return [
        f"λ_max did not converge within the product budget at step{'s' if len(missed) > 1 else ''} {steps}: "
        f"there it is a lower bound, within its residual (up to {worst:.2g}) of a true eigenvalue."
    ]
