"""The sidebar's "continue the text" controls: in the link, only for causal models, and what every page then
analyses (prompt + the model's continuation)."""

from __future__ import annotations

import numpy as np

from explorer.analysis.generation import GenerationSettings, continue_text
from tests.apptest import assert_page_ok, run_page
from tests.conftest import get_model

TEXT = "Once upon a time"


def test_off_by_default_and_out_of_the_link():
    at = run_page("pages/home.py", model="tiny-gpt2", text=TEXT)
    assert_page_ok(at)
    sel = at.session_state["selection"]
    assert sel.text == TEXT and sel.prompt_ids is None and not sel.generated_tokens
    assert "gen" not in at.query_params and "gen_mode" not in at.query_params


def test_greedy_continuation_is_what_pages_analyse():
    at = run_page("pages/home.py", model="tiny-llama", text=TEXT, gen=5)
    assert_page_ok(at)
    sel = at.session_state["selection"]
    loaded = get_model("tiny-llama")
    prompt_ids, generation, prompt_text, continuation = continue_text(
        loaded, TEXT, 512, GenerationSettings(5)
    )
    assert sel.prompt_ids == prompt_ids and sel.text == prompt_text + continuation and sel.prompt_text == TEXT
    assert generation.n_generated == 5 and sel.max_tokens == loaded.card.max_positions
    assert at.query_params["gen"] == "5" and "gen_seed" not in at.query_params  # greedy: no sampling params
    assert any("continuation by the model: 5 tokens, greedy" in c.value for c in at.sidebar.caption)


def test_sampling_settings_are_in_the_link_and_reproducible():
    params = dict(gen=6, gen_mode="sample", gen_temp=0.7, gen_top_p=0.9, gen_seed=11)
    first = run_page("pages/home.py", model="tiny-gpt2", text=TEXT, **params)
    second = run_page("pages/home.py", model="tiny-gpt2", text=TEXT, **params)
    assert_page_ok(first)
    assert first.session_state["selection"].text == second.session_state["selection"].text
    assert {k: first.query_params[k] for k in params} == {k: str(v) for k, v in params.items()}
    sel = first.session_state["selection"]
    assert sel.generation == GenerationSettings(6, "sample", 0.7, 0.9, 11)


def test_encoder_says_why_and_analyses_the_text_as_typed():
    at = run_page("pages/home.py", model="tiny-bert", text=TEXT, gen=5)
    assert_page_ok(at)
    assert at.session_state["selection"].text == TEXT
    assert any("encoder" in c.value and "cannot continue" in c.value for c in at.sidebar.caption)


def test_nonsense_in_the_link_falls_back_with_a_notice():
    at = run_page("pages/home.py", model="tiny-gpt2", text=TEXT, gen="lots", gen_mode="psychic")
    assert_page_ok(at)
    assert at.session_state["sidebar_gen_tokens"] == 0
    assert "gen" not in at.query_params
    notices = " ".join(str(w.value) for w in at.warning) + " ".join(str(i.value) for i in at.info)
    assert "gen" in notices


def test_a_continuation_past_the_context_is_refused_with_a_message():
    at = run_page("pages/home.py", model="tiny-gpt2", text="x" * 126, gen=8)
    assert_page_ok(at)
    assert at.session_state["selection"].text == "x" * 126
    assert any("at most 2 can be generated" in w.value for w in at.sidebar.warning)
    assert np.isfinite(at.session_state["selection"].max_tokens)
