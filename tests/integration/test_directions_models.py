"""Directions and hidden-state PCA on the embedded models: MiniLM (WordPiece encoder) and SmolLM2 (byte-level
BPE, causal). Every word list is embedded once per model (module fixture)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explorer import wordlists
from explorer.analysis import directions as dirs
from explorer.analysis import word_vectors
from explorer.errors import InputError
from explorer.models import capture
from explorer.report.build import _jsonable
from explorer.report.directions import directions_section
from explorer.spectra import projections
from tests.conftest import SAMPLE_TEXT
from tests.tolerances import sum_rtol

pytestmark = pytest.mark.slow

PAIRS, _ = wordlists.parse_pairs(wordlists.preset_pairs_text("gender"))
TARGETS = wordlists.parse_words(wordlists.preset_targets_text("gender"))


@pytest.fixture(scope="module", params=["minilm-l6", "smollm2-135m"])
def embedded(request, load):
    loaded = load(request.param)
    words = dirs.direction_words(PAIRS, TARGETS)
    contextual = word_vectors.contextual_word_vectors(loaded, words)
    static = word_vectors.static_word_vectors(loaded, words)
    return loaded, static, contextual


def _clearly_above_control(analysis) -> None:
    control = analysis.control
    print(
        f"{analysis.method} layer={analysis.layer}: share {analysis.direction.explained:.3f}, "
        f"random pairs {float(control.mean):.3f} ± {float(control.std):.3f} (max {control.shares.max():.3f})"
    )
    assert analysis.direction.explained > float(control.mean) + 5 * float(control.std)
    assert analysis.direction.explained > 1.5 * control.shares.max()


def test_gender_direction_beats_random_pairs(embedded):
    loaded, static, contextual = embedded
    _clearly_above_control(dirs.combine_directions(PAIRS, TARGETS, static))
    middle = dirs.combine_directions(PAIRS, TARGETS, contextual)
    assert middle.layer == loaded.card.n_layers // 2
    _clearly_above_control(middle)
    if not loaded.causal:
        sentence = word_vectors.sentence_word_vectors(loaded, dirs.direction_words(PAIRS, TARGETS))
        _clearly_above_control(dirs.combine_directions(PAIRS, TARGETS, sentence))
    profile = dirs.layer_profile(PAIRS, TARGETS, contextual)
    assert profile.shares.shape == (loaded.card.n_layers + 1,)
    above = profile.shares > profile.control.mean + 3 * profile.control.std
    # Measured: clear at every layer but SmolLM2's last (after the final norm, tuned for next-token logits).
    assert (profile.shares > profile.control.mean).all() and above[:-1].all()


def test_bias_scores_and_debias(embedded):
    _, static, _ = embedded
    analysis = dirs.combine_directions(PAIRS, TARGETS, static)
    assert analysis.targets == tuple(TARGETS)  # every default word is known to both tokenizers
    # cosines: |cos| <= 1 up to c d eps, far inside rtol 1e-7
    np.testing.assert_allclose(np.abs(analysis.bias), np.abs(analysis.bias).clip(0, 1))
    # Projections on the removed direction: rounding of length-d dot products of unit vectors.
    np.testing.assert_allclose(analysis.debias.after, 0, atol=2 * sum_rtol(analysis.direction.vector.size))
    # The direction separates the pairs themselves: every pair's difference projects positively.
    assert (analysis.direction.pair_projections > 0).mean() >= 0.8


def test_sub_tokens_and_leading_space(embedded):
    loaded, _, _ = embedded
    table = loaded.model.get_input_embeddings().weight.detach().double().numpy()
    vectors = word_vectors.static_word_vectors(loaded, ["nurse", "hairdresser", "unbelievable"])
    for i, pieces in enumerate(vectors.pieces):
        assert all(p.strip() and p not in ("[CLS]", "[SEP]") for p in pieces)
        ids = loaded.tokenizer.convert_tokens_to_ids(list(pieces))
        np.testing.assert_allclose(vectors.vectors[0, i], table[ids].mean(0), atol=1e-6)
    if loaded.causal:  # byte-level BPE: " nurse" is one token, "nurse" would be two
        assert vectors.pieces[0] == ("Ġnurse",)
        assert len(loaded.tokenizer("nurse", add_special_tokens=False)["input_ids"]) == 2
        assert len(vectors.pieces[2]) == 2 and vectors.pieces[2][0].startswith("Ġ")
    else:  # WordPiece: continuation pieces carry ##
        assert vectors.pieces[1] == ("hair", "##dre", "##sser")


def test_unknown_words_are_reported(embedded):
    loaded, _, _ = embedded
    odd = "\U0001f916"  # a robot emoji: [UNK] for WordPiece, a few bytes for byte-level BPE
    vectors = word_vectors.static_word_vectors(loaded, ["nurse", odd])
    if loaded.causal:
        assert vectors.unknown == () and len(vectors.pieces[1]) >= 1
        return
    assert vectors.unknown == (odd,) and vectors.words == ("nurse",)
    with pytest.raises(InputError, match="None of the words"):
        word_vectors.static_word_vectors(loaded, [odd])


def test_contextual_vectors_equal_a_plain_forward(embedded):
    loaded, _, contextual = embedded
    index = contextual.index()
    for word in ["he", "hairdresser", "queen"]:
        sentence = word_vectors.DEFAULT_TEMPLATE.replace("{}", word)
        enc = loaded.tokenizer(sentence, return_offsets_mapping=True)
        lo = word_vectors.DEFAULT_TEMPLATE.index("{}")
        hi = lo + len(word)
        positions = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > a and a < hi and b > lo]
        with torch.no_grad():
            out = loaded.model(input_ids=torch.tensor([enc["input_ids"]]), output_hidden_states=True)
        expected = torch.stack(out.hidden_states)[:, 0, positions].double().mean(1).numpy()
        got = contextual.vectors[:, index[word]]
        scale = np.abs(expected).max(axis=1, keepdims=True)
        assert (np.abs(got - expected) / scale).max() < 1e-5


def test_layer_zero_of_llama_is_the_static_embedding(embedded):
    loaded, static, contextual = embedded
    if not loaded.causal:
        pytest.skip("BERT adds position and type embeddings (and a LayerNorm) before layer 0")
    a = dirs.combine_directions(PAIRS, TARGETS, static)
    b = dirs.combine_directions(PAIRS, TARGETS, contextual, layer=0)
    assert a.direction.explained == pytest.approx(b.direction.explained, rel=1e-6)


def test_hidden_state_pca_on_a_real_capture(embedded):
    loaded, _, _ = embedded
    cap = capture(loaded, SAMPLE_TEXT)
    layer = loaded.card.n_layers // 2
    result = projections.hidden_state_pca(cap.hidden_states, layer, skip_first=loaded.causal)
    x = cap.hidden_states[layer, 1 if loaded.causal else 0 :].astype(np.float64)
    eigvals = np.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1]
    np.testing.assert_allclose(
        result.explained_variance, eigvals[: len(result.explained_variance)], rtol=1e-6
    )
    if loaded.causal:  # token 0 is a huge-norm outlier: with it, PC1 is almost all of the variance
        with_first = projections.hidden_state_pca(cap.hidden_states, layer)
        assert with_first.explained_variance_ratio[0] > 0.9 > result.explained_variance_ratio[0]


def test_report_section(embedded):
    loaded, _, _ = embedded
    cap = capture(loaded, SAMPLE_TEXT)
    section = directions_section(loaded, cap)
    data = json.loads(json.dumps(_jsonable(section.data), allow_nan=False))
    assert section.key == "directions"
    assert data["layer"] == loaded.card.n_layers // 2
    ratios = data["explained_variance_ratio"]  # v_i / sum(v): sums to 1 up to two sums of n terms
    assert abs(sum(ratios) - 1) < 2 * sum_rtol(len(ratios))
    assert data["pairs"] == [list(p) for p in PAIRS]
    assert set(data["bias_scores"]) == set(TARGETS)
    assert len(data["direction_explained_by_layer"]) == loaded.card.n_layers + 1
    assert data["direction_explained"] > data["control"]["mean"] + 5 * data["control"]["std"]
    titles = [title for title, _ in section.figures]
    assert titles[:3] == [
        "Hidden-state PCA",
        "Explained variance (hidden states)",
        "Bias scores (gender direction)",
    ]
