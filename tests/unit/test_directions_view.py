"""The directions page's controller (explorer/ui/directions_view.py): its settings, and the numbers and words
it puts beside the figures, checked against numpy and the analysis they come from (no Streamlit run)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer import wordlists
from explorer.analysis import directions as dirs
from explorer.analysis import word_vectors
from explorer.spectra import projections
from explorer.ui import directions_view as dv


def _synthetic(words, method, n_layers=1, d=16, seed=0):
    """Random word vectors covering ``words`` and the control vocabulary; each word is its own sub-token."""
    words = tuple(dict.fromkeys(list(words) + list(wordlists.control_vocabulary())))
    vectors = np.random.default_rng(seed).normal(size=(n_layers, len(words), d))
    return word_vectors.WordVectors(words, vectors, tuple((w,) for w in words), (), method)


PAIRS = [("he", "she"), ("man", "woman"), ("king", "queen")]
TARGETS = ["nurse", "pilot"]


@pytest.fixture(scope="module")
def analysis() -> dirs.DirectionAnalysis:
    return dirs.combine_directions(
        PAIRS, TARGETS, _synthetic([w for p in PAIRS for w in p] + TARGETS, "static")
    )


@pytest.mark.parametrize("share", [0.5, 0.9, 0.99, 1.0])
def test_components_for_share_against_the_cumulative_sum(share):
    # Shares of a PCA: distinct partial sums far from ``share`` (gaps of 1e-3 and more, rounding 1e-16), so the
    # plain count of partial sums below it is the answer.
    x = np.random.default_rng(3).normal(size=(30, 12)) * np.linspace(4, 0.3, 12)
    ratio = projections.pca(x, n_components=3).explained_variance_ratio
    cumulative = np.cumsum(ratio)
    if share < 1:
        assert np.min(np.abs(cumulative - share)) > 1e-3
        expected = int((cumulative < share).sum()) + 1
    else:  # every component holds more than the sum's rounding, so all of them are needed
        assert ratio[-1] > 1e-6
        expected = len(ratio)
    assert dirs.components_for_share(ratio, share) == expected


def test_components_for_share_at_the_end_of_rounding():
    # Shares that sum to 1 only up to rounding still reach 100 % at the last component, never past it.
    ratio = np.full(10, 0.1)  # 0.1 is inexact in binary: the cumulative sum ends at 0.9999999999999999
    assert np.cumsum(ratio)[-1] < 1.0
    assert dirs.components_for_share(ratio, 1.0) == 10
    assert dirs.components_for_share(ratio, 0.25) == 3


def test_pca_caption_reads_the_result():
    x = np.random.default_rng(4).normal(size=(20, 8)) * np.linspace(3, 0.5, 8)
    result = projections.pca(x, n_components=2)
    ratio = result.explained_variance_ratio
    caption = dv.pca_caption(result)
    assert caption.startswith("20 tokens · the first two components hold ")
    assert f"{100 * (ratio[0] + ratio[1]):.1f} %" in caption
    assert f"; {int((np.cumsum(ratio) < 0.9).sum()) + 1} components reach 90 %." in caption


def test_model_settings_follow_the_model():
    causal, encoder = dv.model_settings(30, causal=True), dv.model_settings(6, causal=False)
    assert (causal.state.default, causal.state.high, causal.state.aliases) == (15, 30, ("layer",))
    assert (encoder.word_state.default, encoder.word_state.high, encoder.word_state.aliases) == (
        3,
        6,
        ("dlayer",),
    )
    assert causal.skip_first.default is True and encoder.skip_first.default is False
    # A causal model has no sentence embedding to offer.
    assert "sentence" not in causal.method.choices and "sentence" in encoder.method.choices
    assert causal.method.default == word_vectors.DEFAULT_METHOD


def test_text_settings_default_to_the_preset():
    for preset in wordlists.PRESETS:
        pairs, targets = dv.text_settings(preset)
        assert pairs.default == wordlists.preset_pairs_text(preset)
        assert targets.default == wordlists.preset_targets_text(preset)
        assert (pairs.param, targets.param) == ("pairs", "words")


def test_bad_pairs_message_names_at_most_eight_lines():
    assert dv.bad_pairs_message([]) is None
    bad = [f"line {i}" for i in range(10)]
    message = dv.bad_pairs_message(bad)
    assert message.endswith("; ".join(bad[:8])) and "line 8" not in message


def test_direction_metrics_against_numpy(analysis):
    shares = analysis.control.shares
    mean, std = shares.mean(), np.std(shares, ddof=1)
    share = analysis.direction.explained
    metrics = {m.label.split(" (")[0]: m for m in dv.direction_metrics(analysis)}
    assert list(metrics) == ["Share of PC1", "Random pairs", "Ratio to random", "Pairs used"]
    assert metrics["Share of PC1"].value == f"{100 * share:.1f} %"
    assert metrics["Random pairs"].value == f"{100 * mean:.1f} ± {100 * std:.1f} %"
    assert metrics["Ratio to random"].value == f"{share / mean:.1f}×"
    assert f"{(share - mean) / std:.1f} standard deviations" in metrics["Ratio to random"].help
    assert metrics["Pairs used"].value == "3"
    assert f"({shares.size} draws)" in dv.direction_metrics(analysis)[1].label


def test_direction_caption_and_chosen_state(analysis):
    assert dv.direction_caption(analysis).endswith("(static input embeddings (averaged over sub-tokens)).")
    assert dv.chosen_state(analysis) is None
    words = [w for p in PAIRS for w in p] + TARGETS
    contextual = dirs.combine_directions(PAIRS, TARGETS, _synthetic(words, "contextual", n_layers=4), layer=2)
    assert dv.direction_caption(contextual).endswith(", hidden state 2).")
    assert dv.chosen_state(contextual) == 2


def test_tokenization_table(analysis):
    table = dv.tokenization_table(analysis)
    assert list(table.columns) == ["word", "sub-tokens", "count"]
    assert list(table["word"]) == [w for p in PAIRS for w in p] + TARGETS
    assert (table["count"] == 1).all() and list(table["sub-tokens"]) == list(table["word"])
