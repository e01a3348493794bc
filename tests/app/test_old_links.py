"""Links that worked before the state API still open the same view.

Each case is a link as it was shared (README examples, and the links the AppTest suites of tests/app opened,
taken from the code before the state API replaced the per-page binders) and the settings the page showed for
it, read back by widget key. A link's values are written here by hand from the link itself (what the reader
asked for), not from the code under test; values the page fills in (defaults, clamps) are the documented
defaults and widget ranges of that time.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from explorer.texts import example_texts
from tests.apptest import run_page

TEXT = "The quick brown fox jumps over the lazy dog. Then the fox sleeps."

# (page, link query string, {widget key: value the page showed}). "model" and "text" go to the sidebar.
OLD_LINKS: list[tuple[str, str, dict]] = [
    # README: the sidebar's own params, and the Learn example.
    ("pages/home.py", "model=tiny-bert&text=shared link text", {"sidebar_model": "tiny-bert"}),
    ("pages/home.py", "model=tiny-gpt2&example=fox", {"sidebar_model": "tiny-gpt2"}),
    ("pages/home.py", "model=tiny-gpt2&max_tokens=128", {"sidebar_max_tokens": 128}),
    (
        "pages/learn.py",
        "model=tiny-gpt2&walkthrough=gd&l1=10&l2=0.1&eta=0.19",
        {"learn_walkthrough": "gd", "learn_gd_l1": 10.0, "learn_gd_l2": 0.1, "learn_gd_eta": 0.19},
    ),
    # Attention and eigenvectors: layer and head are 0-based block and head indices.
    (
        "pages/attention.py",
        "model=tiny-gpt2&layer=1&head=1&tau=0.5",
        {"attention_layer": 1, "attention_head": 1, "attention_tau": 0.5, "attention_metric": "lambda2_abs"},
    ),
    (
        "pages/attention.py",
        "model=tiny-llama&layer=1&head=3&metric=entropy",
        {"attention_layer": 1, "attention_head": 3, "attention_metric": "entropy"},
    ),
    (
        "pages/attention.py",
        "model=tiny-gpt2&layer=1&head=0&heat=linear",
        {"attention_layer": 1, "attention_head": 0, "attention_heat_color": "linear"},
    ),
    (
        "pages/eigenvectors.py",
        "model=tiny-gpt2&layer=1&head=0&vectors=singular&k=3",
        {
            "eigenvectors_layer": 1,
            "eigenvectors_head": 0,
            "eigenvectors_kind": "singular",
            "eigenvectors_k": 3,
            "eigenvectors_color": "signed",
            "eigenvectors_tau": 1.0,
            "eigenvectors_damping": 0.85,
        },
    ),
    (
        "pages/eigenvectors.py",
        "model=tiny-bert&layer=0&head=2&vectors=symmetric&color=magnitude&tau=2&damping=0.9",
        {
            "eigenvectors_layer": 0,
            "eigenvectors_head": 2,
            "eigenvectors_kind": "symmetric",
            "eigenvectors_color": "magnitude",
            "eigenvectors_tau": 2.0,
            "eigenvectors_damping": 0.9,
        },
    ),
    # Weight pages.
    (
        "pages/weights.py",
        "model=tiny-llama&kind=mlp_down&layer=1",
        {"weights_kind": "mlp_down", "weights_layer": 1, "weights_metric": "alpha"},
    ),
    (
        "pages/weights.py",
        "model=tiny-gpt2&metric=stable_rank&compare=attn_o",
        {"weights_metric": "stable_rank", "weights_compare": "attn_o"},
    ),
    ("pages/circuits.py", "model=tiny-llama&layer=1&head=3", {"circuits_layer": 1, "circuits_head": 3}),
    (
        "pages/gershgorin.py",
        "model=tiny-bert&layer=1&head=2",
        {
            "gershgorin_source": "attention",
            "gershgorin_layer": 1,
            "gershgorin_head": 2,
            "gershgorin_columns": False,
        },
    ),
    (
        "pages/gershgorin.py",
        "model=tiny-llama&source=ov&layer=0&head=1&discs=columns",
        {"gershgorin_source": "ov", "gershgorin_layer": 0, "gershgorin_head": 1, "gershgorin_columns": True},
    ),
    (
        "pages/gershgorin.py",
        "model=tiny-llama&source=matrix&matrix=2 1\n1 -3",
        {"gershgorin_source": "matrix", "gershgorin_matrix": "2 1\n1 -3"},
    ),
    # PCA & directions: here `layer` (now `state`) and `dlayer` (now `dstate`) were hidden-state indices 0..L
    # (0 = the embedding output); the widgets are directions_state and directions_word_state now.
    (
        "pages/directions.py",
        "model=tiny-llama&layer=2&dims=3&color=token&skip0=0",
        {
            "directions_view": "tokens",
            "directions_state": 2,
            "directions_dims": 3,
            "directions_color": "token",
            "directions_skip_first": False,
        },
    ),
    (
        "pages/directions.py",
        "model=tiny-gpt2&layer=0&proj=umap&nn=5&md=0.3",
        {
            "directions_state": 0,
            "directions_projection": "umap",
            "directions_neighbors": 5,
            "directions_min_dist": 0.3,
        },
    ),
    (
        "pages/directions.py",
        "model=tiny-bert&view=embedding&ewords=red,green,blue,one,two,three&dims=3&eunit=0",
        {
            "directions_view": "embedding",
            "directions_embedding_words": "red\ngreen\nblue\none\ntwo\nthree",
            "directions_embedding_dims": 3,
            "directions_embedding_unit": False,
        },
    ),
    (
        "pages/directions.py",
        "model=tiny-gpt2&view=directions&pairs=cats/cat,dogs/dog,cars/car&words=sheep,data&method=static",
        {
            "directions_view": "directions",
            "directions_pairs": "cats / cat\ndogs / dog\ncars / car",
            "directions_targets": "sheep\ndata",
            "directions_method": "static",
        },
    ),
    (
        "pages/directions.py",
        "model=tiny-llama&view=directions&preset=sentiment&dlayer=2&template=I like {} a lot.",
        {
            "directions_preset": "sentiment",
            "directions_method": "contextual",
            "directions_word_state": 2,
            "directions_template": "I like {} a lot.",
        },
    ),
    # Compression.
    (
        "pages/compression.py",
        "model=tiny-gpt2&comp_method=svd&comp_mode=rank&comp_rank_mlp_up=3",
        {
            "compression_method": "svd",
            "compression_mode": "rank",
            "compression_rank_mlp_up": 3,
            "compression_calib": "shipped",
            "compression_eval": "text",
        },
    ),
    (
        "pages/compression.py",
        "model=tiny-bert&comp_method=asvd&comp_groups=attn_q,mlp_up&comp_share=25",
        {
            "compression_method": "asvd",
            "compression_group_attn_q": True,
            "compression_group_mlp_up": True,
            "compression_group_mlp_down": False,
            "compression_mode": "share",
            "compression_share": 25,
        },
    ),
    (
        "pages/compression.py",
        "model=tiny-llama&comp_mode=energy&comp_energy=0.8&comp_calib=text&comp_eval=heldout",
        {
            "compression_method": "svdllm",
            "compression_mode": "energy",
            "compression_energy": 0.8,
            "compression_calib": "text",
            "compression_eval": "heldout",
        },
    ),
    # Learn: every walkthrough's own params.
    (
        "pages/learn.py",
        "model=tiny-gpt2&walkthrough=matrix2x2&a=0.8&b=-0.6&c=0.6&d=0.8",
        {"learn_m_a": 0.8, "learn_m_b": -0.6, "learn_m_c": 0.6, "learn_m_d": 0.8},
    ),
    (
        "pages/learn.py",
        "model=tiny-gpt2&walkthrough=power&matrix=example&ratio=0.95&step=40",
        {"learn_power_matrix": "example", "learn_power_ratio": 0.95, "learn_power_step": 40},
    ),
    (
        "pages/learn.py",
        "model=tiny-bert&walkthrough=power&matrix=head_sym&layer=1&head=2",
        {"learn_power_matrix": "head_sym", "learn_power_layer": 1, "learn_power_head": 2},
    ),
    (
        "pages/learn.py",
        "model=tiny-gpt2&walkthrough=temperature&layer=1&head=2&tau=0.316",
        # 0.316 snaps to the nearest of the 25 log-spaced temperatures 10^(-1 + i/12): 10^-0.5.
        {"learn_temp_layer": 1, "learn_temp_head": 2, "learn_temp_tau": 10**-0.5},
    ),
    (
        "pages/learn.py",
        "model=tiny-gpt2&walkthrough=nonnormal&n=8&rho=0.9&s=2",
        {"learn_nn_n": 8, "learn_nn_rho": 0.9, "learn_nn_s": 2.0},
    ),
    (
        "pages/learn.py",
        "model=tiny-llama&walkthrough=svd&source=weight&layer=1&kind=attn_v&k=5",
        {"learn_svd_source": "weight", "learn_svd_layer": 1, "learn_svd_kind": "attn_v", "learn_svd_k": 5},
    ),
    # Nonsense from tests/app/test_query_params.py: it falls back (unparseable) or clamps (out of range).
    (
        "pages/attention.py",
        "model=tiny-bert&layer=abc&head=-7&metric=bogus&tau=nan",
        {"attention_layer": 0, "attention_head": 0, "attention_metric": "lambda2_abs", "attention_tau": 1.0},
    ),
    (
        "pages/learn.py",
        "model=tiny-gpt2&walkthrough=temperature&layer=99&head=-4&tau=hot",
        {
            "learn_walkthrough": "temperature",
            "learn_temp_layer": 1,
            "learn_temp_head": 0,
            "learn_temp_tau": 1.0,
        },
    ),
]


# The old links above with nonsense in them, and the params their link notice names.
REPLACED = {
    "model=tiny-bert&layer=abc&head=-7&metric=bogus&tau=nan": ("layer", "head", "metric", "tau"),
    "model=tiny-gpt2&walkthrough=temperature&layer=99&head=-4&tau=hot": ("layer", "head", "tau"),
}


def _case_id(case) -> str:
    page, link, _ = case
    return f"{page.split('/')[-1][:-3]}?{link}"


@pytest.mark.parametrize(("page", "link", "shown"), OLD_LINKS, ids=[_case_id(c) for c in OLD_LINKS])
def test_old_link_opens_the_same_view(page, link, shown):
    params = dict(parse_qsl(link, keep_blank_values=True))
    model = params.pop("model")
    text = params.pop("text", None if "example" in params else TEXT)
    at = run_page(page, model=model, text=text, timeout=300, **params)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["selection"].model_id == model
    # The link notice names exactly the values the page replaced: none for a link of valid values.
    notices = [i.value for i in at.info if i.value.startswith("Link:")]
    named = REPLACED.get(link, ())
    assert len(notices) == (1 if named else 0), notices
    for param in named:
        assert f"Link: {param} " in notices[0] or f" · {param} " in notices[0], (param, notices)
    for key, expected in shown.items():
        value = at.session_state[key]
        if isinstance(expected, float):
            assert value == pytest.approx(expected), (key, value)  # values parsed from a link: exact decimals
        else:
            assert value == expected, (key, value)


def test_old_sidebar_links_restore_the_text():
    at = run_page("pages/home.py", model="tiny-gpt2", text="shared link text")
    assert at.session_state["sidebar_text"] == "shared link text"
    at = run_page("pages/home.py", model="tiny-gpt2", example="fox")
    assert at.session_state["sidebar_text"] == example_texts()["fox"]
