"""Hidden-state PCA, UMAP guards, word embedding and semantic directions: checked against numpy/scipy,
scikit-learn and theorems, on synthetic data and the tiny random models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cosine as cosine_distance
from sklearn.decomposition import PCA

from explorer import wordlists
from explorer.analysis import directions as dirs
from explorer.analysis import word_vectors
from explorer.errors import InputError
from explorer.models import capture
from explorer.spectra import projections, semantic
from tests.conftest import SAMPLE_TEXT
from tests.tolerances import backward_error, subspace_tolerance, sum_rtol, symmetric_tolerance


def _sign_fixed_columns(vectors: np.ndarray) -> np.ndarray:
    """Columns of ``vectors`` flipped so that each one's largest-magnitude entry is positive."""
    idx = np.argmax(np.abs(vectors), axis=0)
    return vectors * np.sign(vectors[idx, np.arange(vectors.shape[1])])


def _min_gap(values, k):
    """Smallest distance from each of the top k of the descending ``values`` to any other one."""
    values = np.asarray(values)
    return min(np.abs(np.delete(values, i) - values[i]).min() for i in range(k))


def _share_tol(D):
    """(delta, s): each sigma_i^2 of D, however computed (SVD of D, eigvalsh of D D^T, PCA), is off by at most
    delta = 2 c n eps ||D||^2 (Weyl: forming the product, then the solver); s = the exact-ish singular values.
    A share sigma_1^2 / sum sigma^2 then moves by delta / sigma_1^2 + n delta / sum sigma^2 (relative)."""
    s = np.linalg.svd(D, compute_uv=False)
    return 2 * symmetric_tolerance(D) * s[0], s


def _share_rtol(D):
    """Relative error allowed between two computations of D's first-component share (both sides)."""
    delta, s = _share_tol(D)
    return 2 * (delta / s[0] ** 2 + len(s) * delta / (s**2).sum())


# ----------------------------------------------------------------------------------------------------------
# PCA


@pytest.mark.parametrize(("n", "d"), [(40, 16), (12, 64)])
def test_pca_matches_eigh_of_covariance(n, d):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, d)) * np.linspace(3, 0.2, d) + rng.normal(size=d)
    result = projections.pca(x, n_components=3)
    eigvals, eigvecs = np.linalg.eigh(np.cov(x, rowvar=False))  # ascending
    eigvals, eigvecs = eigvals[::-1], eigvecs[:, ::-1]
    rank = min(n - 1, d)
    # Variances sigma_i^2 / (n - 1) from an SVD of the centred x against eigh of the covariance: Weyl on each
    # side (c n eps ||x_c|| on sigma_i, so 2 sigma_1 that on sigma_i^2; c n eps ||cov|| for forming and eigh).
    xc = x - x.mean(0)
    cov = np.cov(x, rowvar=False)
    var_tol = 2 * symmetric_tolerance(xc) * np.linalg.norm(xc, 2) / (n - 1) + 2 * symmetric_tolerance(cov)
    np.testing.assert_allclose(result.explained_variance, eigvals[:rank], rtol=0, atol=var_tol)
    total = eigvals.sum()  # a ratio moves by var_tol / total, plus the total's d var_tol
    ratio_tol = (1 + d) * var_tol / total
    np.testing.assert_allclose(
        result.explained_variance_ratio, eigvals[:rank] / total, rtol=0, atol=ratio_tol
    )
    expected = _sign_fixed_columns(eigvecs[:, :3]).T
    # Each component turns by at most var_tol / gap (Davis-Kahan), on both sides; ||v - v'|| <= sqrt 2 sin.
    comp_tol = 2 * np.sqrt(2) * var_tol / _min_gap(eigvals, 3)
    np.testing.assert_allclose(result.components, expected, rtol=0, atol=comp_tol)
    coords_tol = np.linalg.norm(xc, axis=1).max() * comp_tol + backward_error(xc)
    np.testing.assert_allclose(result.coords, xc @ expected.T, rtol=0, atol=coords_tol)
    orthonormal = backward_error(np.eye(max(n, d)))  # the SVD's V is orthonormal to c n eps
    np.testing.assert_allclose(result.components @ result.components.T, np.eye(3), rtol=0, atol=orthonormal)


def test_pca_signs_are_deterministic():
    x = np.random.default_rng(2).normal(size=(30, 10))
    a, b = (
        projections.pca(x),
        projections.pca(-x),
    )  # same covariance, so the same components after sign fixing
    # Two SVDs (of x_c and -x_c): each right singular vector turns by c n eps ||x_c|| / gap (Davis-Kahan).
    xc = x - x.mean(0)
    sigma = np.linalg.svd(xc, compute_uv=False)
    comp_tol = 2 * np.sqrt(2) * subspace_tolerance(xc, gap=_min_gap(sigma, len(a.components)))
    np.testing.assert_allclose(a.components, b.components, rtol=0, atol=comp_tol)
    coords_tol = np.linalg.norm(xc, axis=1).max() * comp_tol + 2 * backward_error(xc)
    np.testing.assert_allclose(a.coords, -b.coords, rtol=0, atol=coords_tol)


def test_pca_needs_enough_points():
    with pytest.raises(InputError, match="at least 4 points"):
        projections.pca(np.ones((3, 8)), n_components=3)
    with pytest.raises(InputError, match="Layer 9"):
        projections.hidden_state_pca(np.zeros((3, 5, 4)), 9)


def test_hidden_state_pca_on_tiny_model(tiny_model):
    cap = capture(tiny_model, SAMPLE_TEXT)
    layer = 1
    result = projections.hidden_state_pca(cap.hidden_states, layer, n_components=2)
    x = cap.hidden_states[layer].astype(np.float64)
    reference = PCA(n_components=2).fit(x)
    np.testing.assert_allclose(np.abs(result.components), np.abs(reference.components_), atol=1e-6)
    assert result.points == list(range(cap.n_tokens))
    skipped = projections.hidden_state_pca(cap.hidden_states, layer, n_components=2, skip_first=True)
    assert skipped.points == list(range(1, cap.n_tokens))
    # Two summation orders of a mean of n values: c n eps max |x| each.
    np.testing.assert_allclose(
        skipped.mean, x[1:].mean(0), rtol=0, atol=2 * sum_rtol(len(x)) * np.abs(x).max()
    )


def test_layerwise_pca_matches_each_layer_up_to_sign(tiny_model):
    cap = capture(tiny_model, SAMPLE_TEXT)
    result = projections.layerwise_pca(cap.hidden_states)
    assert result.coords.shape == (cap.hidden_states.shape[0], cap.n_tokens, 2)
    for layer in range(cap.hidden_states.shape[0]):
        own = projections.hidden_state_pca(cap.hidden_states, layer, n_components=2).coords
        # The same PCA of the same layer's points (only the signs are chained): equal up to sign.
        np.testing.assert_allclose(np.abs(result.coords[layer]), np.abs(own), atol=1e-8)
        if layer:  # signs chained: every axis correlates non-negatively with the previous layer's
            assert (np.sum(result.coords[layer] * result.coords[layer - 1], axis=0) >= 0).all()


# ----------------------------------------------------------------------------------------------------------
# UMAP (small: umap-learn compiles with numba on first use)


def test_umap_on_a_short_and_a_long_text():
    rng = np.random.default_rng(3)
    short = rng.normal(size=(1, 8, 16))
    result = projections.hidden_state_umap(short, 0, n_neighbors=15)
    assert result.coords.shape == (8, 2) and np.isfinite(result.coords).all()
    assert result.n_neighbors == 7 and "lowered" in result.messages[0]
    long = np.concatenate([rng.normal(size=(30, 16)), rng.normal(size=(30, 16)) + 8])[None]
    result = projections.hidden_state_umap(long, 0, n_neighbors=10)
    assert result.coords.shape == (60, 2) and result.messages == []
    # Two well-separated clusters stay separated: every point's nearest neighbour is in its own cluster.
    dist = np.linalg.norm(result.coords[:, None] - result.coords[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    nearest = dist.argmin(1)
    assert ((nearest < 30) == (np.arange(60) < 30)).all()
    again = projections.hidden_state_umap(long, 0, n_neighbors=10)
    np.testing.assert_allclose(again.coords, result.coords)  # fixed seed: the same computation


def test_umap_refuses_a_too_short_text():
    with pytest.raises(InputError, match="UMAP needs at least"):
        projections.hidden_state_umap(np.zeros((1, 4, 8)), 0)


# ----------------------------------------------------------------------------------------------------------
# Directions on synthetic vectors


def _planted(n_pairs=20, d=128, strength=0.6, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=d)
    g /= np.linalg.norm(g)
    base = rng.normal(size=(n_pairs, d)) / np.sqrt(d)
    amount = strength * rng.uniform(0.5, 1.5, size=(n_pairs, 1))
    return base + amount * g, base - amount * g, g


def test_planted_direction_is_recovered():
    first, second, g = _planted()
    direction = semantic.semantic_direction(first, second)
    assert direction.vector @ g > 0.99  # recovered, and oriented towards the first words
    assert direction.explained > 0.9
    assert (direction.pair_projections > 0).all()


def test_direction_is_pca_of_pair_centred_vectors():
    rng = np.random.default_rng(4)
    first, second = rng.normal(size=(8, 32)), rng.normal(size=(8, 32))
    direction = semantic.semantic_direction(first, second)
    diff = semantic.unit_rows(first) - semantic.unit_rows(second)
    centred = np.concatenate([diff, -diff]) / 2
    reference = PCA(n_components=8).fit(centred)
    share_rtol = _share_rtol(diff)  # SVD of diff vs PCA of +-diff/2 vs eigvalsh of diff^T diff
    assert direction.explained == pytest.approx(reference.explained_variance_ratio_[0], rel=share_rtol)
    delta, s = _share_tol(diff)  # sigma_i^2 / sum sigma^2 moves by (1 + n) delta / sum sigma^2, both sides
    np.testing.assert_allclose(
        direction.explained_ratio,
        reference.explained_variance_ratio_,
        rtol=0,
        atol=2 * (1 + len(s)) * delta / (s**2).sum(),
    )
    # |cos| = 1 - theta^2 / 2 with theta <= 2 ||E|| / gap (Davis-Kahan, both sides), plus the dot's rounding.
    theta = 2 * subspace_tolerance(diff, gap=s[0] - s[1])
    assert abs(direction.vector @ reference.components_[0]) == pytest.approx(1, abs=theta**2 + sum_rtol(32))
    eig = np.linalg.eigvalsh(diff.T @ diff)
    assert direction.explained == pytest.approx(eig[-1] / eig.sum(), rel=share_rtol)


def test_pair_order_does_not_change_the_share():
    first, second, _ = _planted(n_pairs=10, strength=0.2)
    swap = np.arange(10) % 3 == 0
    a = np.where(swap[:, None], second, first)
    b = np.where(swap[:, None], first, second)
    # Swapping a pair flips the sign of a row of D: the same singular values, computed from another matrix.
    D = semantic.unit_rows(first) - semantic.unit_rows(second)
    assert semantic.semantic_direction(a, b).explained == pytest.approx(
        semantic.semantic_direction(first, second).explained, rel=_share_rtol(D)
    )


def test_batched_share_matches_direction():
    rng = np.random.default_rng(5)
    first, second = rng.normal(size=(3, 4, 6, 20)), rng.normal(size=(3, 4, 6, 20))
    shares = semantic.first_component_share(first, second)
    assert shares.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            # Batched vs single share: each moves by the share bound of the difference vectors (both sides).
            assert shares[i, j] == pytest.approx(
                semantic.semantic_direction(first[i, j], second[i, j]).explained,
                rel=_share_rtol(first[i, j] - second[i, j]),
            )


def test_bias_scores_are_cosines():
    rng = np.random.default_rng(6)
    vectors, g = rng.normal(size=(5, 12)), rng.normal(size=12)
    g /= np.linalg.norm(g)
    expected = [1 - cosine_distance(v, g) for v in vectors]
    # Cosines: dot products of unit vectors, c n eps each (two routes).
    np.testing.assert_allclose(semantic.bias_scores(vectors, g), expected, rtol=0, atol=2 * sum_rtol(12))


def test_debiased_vectors_have_zero_projection():
    first, second, _ = _planted()
    direction = semantic.semantic_direction(first, second)
    targets = np.random.default_rng(7).normal(size=(9, 128))
    cleaned = semantic.remove_direction(targets, direction.vector)
    # x - (x . g) g for unit x, g in d = 128: its dot with g is rounding of two length-d dot products.
    dot_tol = 2 * sum_rtol(128)
    np.testing.assert_allclose(cleaned @ direction.vector, 0, atol=dot_tol)
    # Only the direction's component is removed: the change is parallel to it, and removal is idempotent.
    change = semantic.unit_rows(targets) - cleaned
    # change = (x . g) g + rounding of size dot_tol: its direction is off by dot_tol / |x . g|.
    along = np.abs(semantic.unit_rows(targets) @ direction.vector).min()
    np.testing.assert_allclose(np.abs(semantic.unit_rows(change) @ direction.vector), 1, atol=dot_tol / along)
    np.testing.assert_allclose(
        semantic.remove_direction(cleaned, direction.vector), semantic.unit_rows(cleaned), atol=dot_tol
    )
    preview = semantic.debias([f"w{i}" for i in range(9)], targets, direction, first, second)
    np.testing.assert_allclose(preview.after, 0, atol=dot_tol)
    np.testing.assert_allclose(preview.before, semantic.bias_scores(targets, direction.vector), atol=dot_tol)


def test_random_pair_indices():
    idx = semantic.random_pair_indices(50, 10, 5, seed=1)
    assert idx.shape == (5, 10, 2)
    for draw in idx:
        assert len(set(draw.ravel())) == 20  # no word twice in a draw
    np.testing.assert_array_equal(idx, semantic.random_pair_indices(50, 10, 5, seed=1))
    assert not np.array_equal(idx, semantic.random_pair_indices(50, 10, 5, seed=2))
    with pytest.raises(InputError, match="fewer pairs"):
        semantic.random_pair_indices(15, 10, 5)


def test_control_on_isotropic_vectors_follows_marchenko_pastur():
    # n random differences in d >> n dimensions are nearly orthogonal with equal norms: the Gram matrix is
    # close to a multiple of I, so the first share is >= 1/n and at most (1 + sqrt(n/d))^2 / (1 - sqrt(n/d))^2 / n.
    n, d = 10, 4000
    vectors = np.random.default_rng(8).normal(size=(200, d))
    control = semantic.random_pair_control(vectors, n, n_draws=10, seed=0)
    ratio = np.sqrt(n / d)
    assert (control.shares >= 1 / n).all()
    assert (control.shares <= (1 + ratio) ** 2 / (1 - ratio) ** 2 / n).all()
    layered = semantic.random_pair_control(np.stack([vectors, 2 * vectors]), n, n_draws=10, seed=0)
    np.testing.assert_allclose(layered.shares[0], control.shares)  # same draws at every layer: the same sums
    # Scale-free: the rows are normalised, and 2v / ||2v|| = v / ||v|| exactly in binary.
    np.testing.assert_allclose(layered.shares[1], control.shares)


# ----------------------------------------------------------------------------------------------------------
# Parsing word lists


def test_parse_pairs_formats_and_bad_lines():
    text = "he she\nking, queen\nman/woman\nboy - girl\n# a comment\n\nhe she\nthree words here\nsame same\nNew York / Paris"
    pairs, bad = wordlists.parse_pairs(text)
    assert pairs == [
        ("he", "she"),
        ("king", "queen"),
        ("man", "woman"),
        ("boy", "girl"),
        ("New York", "Paris"),
    ]
    assert bad == ["three words here", "same same"]
    assert wordlists.parse_pairs("")[0] == []


def test_words_and_params_round_trip():
    assert wordlists.parse_words("nurse\nengineer, doctor\n\nnurse") == ["nurse", "engineer", "doctor"]
    pairs = [("he", "she"), ("king", "queen")]
    assert wordlists.parse_pairs(wordlists.pairs_from_param(wordlists.pairs_to_param(pairs)))[0] == pairs
    assert wordlists.pairs_from_param("") is None and wordlists.pairs_from_param("garbage") is None
    assert wordlists.words_from_param("a,b") == "a\nb" and wordlists.words_from_param(None) is None


def test_presets_ship_enough_words():
    for preset in wordlists.PRESETS:
        pairs, bad = wordlists.parse_pairs(wordlists.preset_pairs_text(preset))
        assert len(pairs) >= 10 and not bad
        assert len(wordlists.parse_words(wordlists.preset_targets_text(preset))) >= 10
    assert len(wordlists.control_vocabulary()) >= 2 * wordlists.MAX_PAIRS // 2


# ----------------------------------------------------------------------------------------------------------
# Embedding words with the tiny models


def test_static_vectors_average_sub_tokens(load):
    loaded = load("tiny-gpt2")
    vectors = word_vectors.static_word_vectors(loaded, ["he", "unbelievable"])
    table = loaded.model.get_input_embeddings().weight.detach().double().numpy()
    for i, word in enumerate(["he", "unbelievable"]):
        ids = list(word.encode())  # the tiny tokenizer has one token per byte, ids sorted by symbol
        pieces = vectors.pieces[i]
        assert len(pieces) == len(word)  # the leading space token is dropped, every byte kept
        ids = loaded.tokenizer.convert_tokens_to_ids(list(pieces))
        np.testing.assert_allclose(  # torch's and numpy's mean of the same few rows: c k eps max |x| each
            vectors.vectors[0, i],
            table[ids].mean(0),
            rtol=0,
            atol=2 * sum_rtol(len(ids)) * np.abs(table).max(),
        )
    assert vectors.vectors.shape == (1, 2, 64)


def test_empty_word_list_is_a_clear_error(load):
    with pytest.raises(InputError, match="empty"):
        word_vectors.static_word_vectors(load("tiny-bert"), ["", "  "])
    with pytest.raises(InputError, match="template"):
        word_vectors.check_template("no placeholder")


def _reference_contextual(loaded, word, template=word_vectors.DEFAULT_TEMPLATE):
    sentence = template.replace("{}", word)
    enc = loaded.tokenizer(sentence, return_offsets_mapping=True)
    lo = template.index("{}")
    positions = [
        i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > a and a < lo + len(word) and b > lo
    ]
    with torch.no_grad():
        out = loaded.model(input_ids=torch.tensor([enc["input_ids"]]), output_hidden_states=True)
    hidden = torch.stack(out.hidden_states)[:, 0].double().numpy()
    return hidden[:, positions].mean(1)


def test_contextual_vectors_match_a_plain_forward(tiny_model):
    words = ["he", "she", "nurse", "x"]
    vectors = word_vectors.contextual_word_vectors(tiny_model, words)
    assert vectors.vectors.shape == (tiny_model.card.n_layers + 1, 4, 64)
    for i, word in enumerate(words):
        np.testing.assert_allclose(vectors.vectors[:, i], _reference_contextual(tiny_model, word), atol=1e-5)


def test_shared_prefix_is_used_for_causal_models(load):
    seqs = [[5, 6, 7, 1], [5, 6, 7, 2, 3], [5, 6, 9, 4]]
    assert word_vectors.shared_prefix_length(seqs, [3, 3, 3]) == 2
    assert word_vectors.shared_prefix_length(seqs[:2], [3, 3]) == 3
    assert word_vectors.shared_prefix_length(seqs[:2], [1, 1]) == 1


def test_sentence_vectors_are_mean_pooled_unit_vectors(load):
    loaded = load("tiny-bert")
    vectors = word_vectors.sentence_word_vectors(loaded, ["he", "nurse"])
    for i, word in enumerate(["he", "nurse"]):
        ids = loaded.tokenizer(word)["input_ids"]
        with torch.no_grad():
            last = loaded.model(input_ids=torch.tensor([ids])).last_hidden_state[0].double().numpy()
        pooled = last.mean(0)
        np.testing.assert_allclose(vectors.vectors[0, i], pooled / np.linalg.norm(pooled), atol=1e-6)
    with pytest.raises(InputError, match="causal"):
        word_vectors.sentence_word_vectors(load("tiny-gpt2"), ["he"])


def test_merge_word_vectors():
    a = word_vectors.WordVectors(("a", "b"), np.ones((1, 2, 3)), (("a",), ("b",)), (), "static")
    b = word_vectors.WordVectors(("b", "c"), np.zeros((1, 2, 3)), (("b",), ("c",)), ("z",), "static")
    merged = word_vectors.merge_word_vectors(a, b)
    assert merged.words == ("a", "b", "c") and merged.unknown == ("z",)
    np.testing.assert_array_equal(merged.vectors[0, :, 0], [1, 1, 0])


def test_analyse_directions_on_a_tiny_model(load):
    loaded = load("tiny-llama")
    pairs = [("he", "she"), ("man", "woman"), ("king", "queen")]
    result, profile = dirs.analyse_directions(loaded, pairs, ["nurse", "pilot"], method="contextual", layer=1)
    assert result.layer == 1 and result.pairs == tuple(pairs) == profile.pairs
    assert profile.shares.shape == (3,) and profile.control.shares.shape == (3, semantic.N_CONTROL_DRAWS)
    # The same vectors, batched share vs SVD share: the share bound (~1e-13, _share_rtol) is far inside rel 1e-6
    assert profile.shares[1] == pytest.approx(result.direction.explained)
    # Same draws, same layer: the same sums.
    np.testing.assert_allclose(profile.control.shares[1], result.control.shares)
    assert result.bias.shape == (2,) and result.debias is not None
    # Projection on the removed direction: rounding of length-d dot products of unit vectors.
    np.testing.assert_allclose(result.debias.after, 0, atol=2 * sum_rtol(loaded.card.d_model))
    assert result.pieces["nurse"] == tuple("nurse")
    static, none = dirs.analyse_directions(
        loaded, pairs, ["nurse", "pilot"], method="static", with_layers=False
    )
    assert static.layer is None and none is None
    # Layer 0 of a Llama is the bare input embedding: the static and contextual directions agree there.
    # Same vectors (layer 0 is the embedding, averaged by the same torch call); SVD share vs Gram-eigvalsh share
    # differ by 2 (delta / sigma_1^2 + n delta / sum sigma^2), delta = 2 c n eps sigma_1^2: ~1e-13 for 3 pairs.
    assert static.direction.explained == pytest.approx(profile.shares[0], rel=1e-9)


def test_too_few_pairs_and_no_targets_give_clear_messages(load):
    loaded = load("tiny-gpt2")
    with pytest.raises(InputError, match="empty"):
        dirs.analyse_directions(loaded, [], ["nurse"])
    with pytest.raises(InputError, match="at least two word pairs"):
        dirs.analyse_directions(loaded, [("he", "she")], ["nurse"], with_layers=False)
    result, _ = dirs.analyse_directions(loaded, [("he", "she"), ("man", "woman")], [], with_layers=False)
    assert result.bias.size == 0 and result.debias is None
    assert any("No target words" in m for m in result.messages)


def _synthetic(words, method, n_layers=1, d=16, seed=0):
    words = tuple(dict.fromkeys(list(words) + list(wordlists.control_vocabulary())))
    vectors = np.random.default_rng(seed).normal(size=(n_layers, len(words), d))
    return word_vectors.WordVectors(words, vectors, tuple((w,) for w in words), (), method)


def test_results_do_not_depend_on_a_shift_of_all_vectors():
    # Vectors are centred on the control vocabulary's mean first, so a common offset (the anisotropy of
    # embedding spaces) cannot leak into the direction or the scores.
    pairs, targets = [("he", "she"), ("man", "woman"), ("king", "queen")], ["nurse", "pilot"]
    chosen = _synthetic([w for p in pairs for w in p] + targets, "static")
    shifted = word_vectors.WordVectors(chosen.words, chosen.vectors + 50.0, chosen.pieces, (), "static")
    a, b = dirs.combine_directions(pairs, targets, chosen), dirs.combine_directions(pairs, targets, shifted)
    # Centring removes the offset 50 up to c N eps 50 ~ 1e-11 per entry (N control words), against entries of
    # size 1 in d = 16: shares and cosines move by about that, far below 1e-9.
    assert a.direction.explained == pytest.approx(b.direction.explained, rel=1e-9)
    np.testing.assert_allclose(a.bias, b.bias, atol=1e-9)
    np.testing.assert_allclose(a.control.shares, b.control.shares, rtol=1e-9)
    # Without centring the offset would dominate: the raw vectors give a different share.
    raw = semantic.semantic_direction(shifted.vectors[0, [0, 2, 4]], shifted.vectors[0, [1, 3, 5]])
    assert abs(raw.explained - a.direction.explained) > 1e-3


def test_unknown_words_are_reported_and_left_out():
    known = ["he", "she", "man", "woman", "nurse"]
    chosen, ctx = _synthetic(known, "static"), _synthetic(known, "contextual", n_layers=3)
    pairs = [("he", "she"), ("man", "woman"), ("zz", "she")]
    result = dirs.combine_directions(pairs, ["nurse", "qq"], chosen)
    assert result.pairs == (("he", "she"), ("man", "woman"))
    assert result.targets == ("nurse",)
    assert any("zz" in m and "qq" in m for m in result.messages)
    assert any("zz/she" in m for m in result.messages)
    assert dirs.layer_profile(pairs, ["nurse", "qq"], ctx).pairs == result.pairs
    with pytest.raises(InputError, match="at least two word pairs"):
        dirs.combine_directions([("he", "she"), ("zz", "yy")], [], chosen)
    with pytest.raises(InputError, match="does not exist"):
        dirs.combine_directions(pairs, [], ctx, layer=7)


def test_control_z_score_against_numpy():
    shares = np.array([0.2, 0.25, 0.3, 0.22, 0.28])
    control = semantic.Control(shares, n_pairs=4, seed=0)
    expected = (0.6 - shares.mean()) / np.std(shares, ddof=1)
    assert float(control.z_score(0.6)) == pytest.approx(expected, rel=1e-12)  # a few flops: eps-level
    flat = semantic.Control(np.full(3, 0.25), n_pairs=4, seed=0)  # exact in binary: std is exactly 0
    assert float(flat.z_score(0.5)) == np.inf and np.isnan(flat.z_score(0.25))
