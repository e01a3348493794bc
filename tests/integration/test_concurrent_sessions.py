"""Many sessions at once on one process, without a browser: twelve AppTest sessions run in threads on the shared
cached MiniLM (pages of every kind, and compression what-ifs at different settings), each with its own text.
No session sees another's text or result, none raises, and the cached model's weights are unchanged.

AppTest is written for one run at a time: every run installs a mock ``Runtime`` singleton and sets it back to
None when it finishes (so a concurrent run that reaches ``st.cache_data`` finds no runtime, or another run's),
it patches ``config.get_option`` around each run (nested patches from several threads restore each other's
mocks), and it compiles the scripts afresh for every run (a new ScriptCache each time, in its script runner). Compiling them in
several threads at once trips a CPython 3.11 bug (gh-106905: "SystemError: AST constructor recursion depth
mismatch" from ast.parse, which Streamlit's magic uses); a real server compiles each script once, under its one
ScriptCache's lock. ``_concurrent_apptest`` below installs one shared mock runtime, one ScriptCache and one
config patch for the whole test, and sends the per-run ones to a throwaway subclass, so the runs share what a
real server shares (the caches, the compiled scripts) and nothing else. The app code under test (caches, stores, locks, the model) is exactly what a server runs.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest.mock import MagicMock

import pytest

from explorer.analysis import compression as comp
from explorer.analysis.matrices import weights_checksum
from explorer.models import load_model
from explorer.models.choice import ModelChoice
from tests.apptest import plotly_specs, run_page

pytestmark = pytest.mark.slow
MODEL = "minilm-l6"
# Words MiniLM's tokenizer keeps whole: one per session, so a session's pages can be searched for another's.
WORDS = [
    "apple",
    "river",
    "violin",
    "tiger",
    "castle",
    "pepper",
    "rocket",
    "garden",
    "winter",
    "silver",
    "forest",
    "coffee",
]
# (page, its query params, whether its charts show the text's tokens)
SESSIONS = [
    ("pages/attention.py", {"layer": "2", "head": "5"}, True),
    ("pages/eigenvectors.py", {"layer": "4", "head": "1"}, True),
    ("pages/directions.py", {}, True),
    ("pages/gershgorin.py", {"layer": "1", "head": "3"}, True),
    ("pages/weights.py", {"kind": "mlp_up", "layer": "3"}, False),
    ("pages/circuits.py", {"layer": "5", "head": "7"}, False),
    ("pages/learn.py", {"walkthrough": "temperature", "layer": "3", "head": "2"}, False),
    ("pages/home.py", {}, False),
    ("pages/compression.py", {"comp_share": "25"}, False),
    ("pages/compression.py", {"comp_share": "75"}, False),
    ("pages/compression.py", {"comp_method": "svd", "comp_share": "50"}, False),
    ("pages/compression.py", {"comp_mode": "rank", "comp_rank_attn_q": "7"}, False),
]
# Compression sessions factor the attention queries only (small and fast) with the shipped calibration, and
# measure on their own text.
COMPRESSION = {"comp_groups": "attn_q", "comp_calib": "shipped", "comp_eval": "text"}


def _text(word: str) -> str:
    return f"The {word} stood by the door. Nobody moved the {word}, and the {word} stayed there all night."


@contextmanager
def _concurrent_apptest():
    """Let AppTest runs overlap in threads (see the module docstring)."""
    import streamlit.testing.v1.app_test as app_test_module
    import streamlit.testing.v1.local_script_runner as runner_module
    from streamlit.components.v2.component_manager import BidiComponentManager
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
    from streamlit.runtime.dataframe_source_manager import DataframeSourceManager
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1.util import patch_config_options

    class PerRunRuntime(Runtime):
        """What each run sets and clears: a class attribute of its own, not the real singleton."""

        _instance = None

    shared = MagicMock(spec=Runtime)
    shared.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    shared.dataframe_source_mgr = DataframeSourceManager()
    shared.cache_storage_manager = MemoryCacheStorageManager()
    shared.bidi_component_registry = BidiComponentManager()
    script_cache = app_test_module.ScriptCache()
    saved = (
        app_test_module.Runtime,
        app_test_module.patch_config_options,
        app_test_module.ScriptCache,
        runner_module.ScriptCache,
        Runtime._instance,
    )
    app_test_module.Runtime = PerRunRuntime
    app_test_module.patch_config_options = lambda _overrides: nullcontext()
    # Both places that make a ScriptCache per run: the pages manager's (app_test) and the script runner's, which
    # is the one that compiles the scripts (local_script_runner).
    app_test_module.ScriptCache = lambda: script_cache
    runner_module.ScriptCache = lambda: script_cache
    Runtime._instance = shared
    try:
        with patch_config_options({"global.appTest": True}):
            # Compile every script once, here, before the threads start: ast.parse in one thread while another
            # thread builds or converts AST objects (numba's and torch's source inspection do) trips the same
            # CPython 3.11 bug. A real server also compiles each script only once.
            from explorer.ui.navigation import PAGES
            from tests.apptest import APP

            for script in [APP, *(page.file for page in PAGES)]:
                script_cache.get_bytecode(script)
            yield
    finally:
        (
            app_test_module.Runtime,
            app_test_module.patch_config_options,
            app_test_module.ScriptCache,
            runner_module.ScriptCache,
            Runtime._instance,
        ) = saved


def _contents(at) -> str:
    """Everything a person reads in the main area: charts' data and titles, text, tables, metrics."""
    parts = [json.dumps(spec, default=str) for spec in plotly_specs(at)]
    for kind in ("markdown", "caption", "info", "warning", "subheader", "text"):
        parts += [str(element.value) for element in at.get(kind)]
    parts += [str(m.label) + " " + str(m.value) for m in at.metric]
    parts += [df.value.to_string() for df in at.dataframe]
    return "\n".join(parts).lower()


def _session(index: int, start: threading.Barrier) -> dict:
    page, own, _ = SESSIONS[index]
    extra = {**COMPRESSION, **own} if page == "pages/compression.py" else own
    start.wait()
    began = time.perf_counter()
    at = run_page(page, model=MODEL, text=_text(WORDS[index]), timeout=900, **extra)
    return {"at": at, "seconds": time.perf_counter() - began, "thread": threading.get_ident()}


def _matrix_table(at):
    """The compression page's per-matrix table (the budget view's table of answers comes before it)."""
    return next(frame.value for frame in at.dataframe if "rank k" in frame.value.columns)


def _expected_outcome(model_key: ModelChoice, text: str, own: dict) -> comp.Outcome:
    """The what-if of one compression session, computed here from the analysis API on its own text and
    settings (not through the page or the outcome cache)."""
    from explorer.ui import compression_cache as cc
    from explorer.ui.cache import cached_model

    loaded = cached_model(model_key)
    kinds = ("attn_q",)
    if own.get("comp_mode") == "rank":
        setting = comp.RankSetting(mode="rank", ranks=(("attn_q", int(own["comp_rank_attn_q"])),))
    else:
        setting = comp.RankSetting(mode="share", share=int(own["comp_share"]) / 100)
    fact = cc.factorization(model_key, own.get("comp_method", "svdllm"), kinds, cc.Calibration())
    evalset = comp.make_eval_set(loaded, text, 512)
    ref = comp.reference(loaded, evalset)
    return comp.evaluate_ranks(loaded, fact, comp.choose_ranks(fact, setting), evalset, ref)


def test_twelve_sessions_at_once_keep_their_own_state_and_the_model():
    assert len(SESSIONS) >= 8 and len(WORDS) >= len(SESSIONS)
    # Warm up serially: the model is loaded once into st.cache_resource, as the first visitor would.
    warm = run_page("pages/home.py", model=MODEL, text=_text("warm"), timeout=600)
    assert not warm.exception, [e.value for e in warm.exception]
    model_key = warm.session_state["selection"].model_key
    from explorer.ui.cache import cached_model

    cached = cached_model(model_key)
    before = weights_checksum(cached.model)

    barrier = threading.Barrier(len(SESSIONS), timeout=600)
    began = time.perf_counter()
    with _concurrent_apptest(), ThreadPoolExecutor(len(SESSIONS)) as pool:
        results = list(pool.map(lambda i: _session(i, barrier), range(len(SESSIONS))))
    wall = time.perf_counter() - began
    print(
        f"\n{len(SESSIONS)} concurrent sessions in {wall:.1f} s; each: "
        + ", ".join(
            f"{SESSIONS[i][0].split('/')[1][:-3]} {r['seconds']:.0f} s" for i, r in enumerate(results)
        )
    )
    assert len({r["thread"] for r in results}) == len(SESSIONS), "the sessions did not run in parallel"

    for index, result in enumerate(results):
        at, (page, own, shows_tokens) = result["at"], SESSIONS[index]
        where = f"session {index} ({page}, {WORDS[index]})"
        assert not at.exception, (where, [e.value for e in at.exception])
        assert not at.error, (where, [e.value for e in at.error])
        assert plotly_specs(at) or page == "pages/home.py", f"{where}: no chart"
        selection = at.session_state["selection"]
        assert selection.text == _text(WORDS[index]), (
            f"{where} has another session's text: {selection.text!r}"
        )
        assert selection.model_key == model_key
        assert at.query_params["text"] == _text(WORDS[index]), where
        contents = _contents(at)
        if shows_tokens:
            assert WORDS[index] in contents, f"{where}: its own tokens are not on the page"
        others = [w for j, w in enumerate(WORDS) if j != index and w in contents]
        assert not others, f"{where} shows another session's text: {others}"
        for key, value in own.items():
            in_link = at.query_params.get(key)
            if (
                in_link is None
            ):  # the page's default is left out of the link; its widget still shows the value
                # Widget keys are <page>_<name>; compression's link names carry a comp_ prefix the keys drop.
                stem = Path(page).stem
                widgets = [
                    w for w in (f"{stem}_{key}", f"{stem}_{key.split('_', 1)[-1]}") if w in at.session_state
                ]
                assert widgets and str(at.session_state[widgets[0]]) == value, (where, key)
            else:
                assert in_link == value, (where, key, in_link)

    # Each what-if shows the result of its own text and settings.
    for index, result in enumerate(results):
        page, own, _ = SESSIONS[index]
        if page != "pages/compression.py":
            continue
        at = result["at"]
        expected = _expected_outcome(model_key, _text(WORDS[index]), own)
        metrics = {m.label: m.value for m in at.metric}
        # Shown to 3 decimals; BLAS thread counts differ between the page's run and this one, so allow the
        # rounding step and no more.
        shown = float(metrics["Embedding cosine"])
        assert shown == pytest.approx(expected.after.embedding_cosine, abs=6e-4), (index, own, shown)
        assert _matrix_table(at)["rank k"].tolist() == [r.rank for r in expected.rows], (index, own)
    ranks = {
        tuple(_matrix_table(r["at"])["rank k"])
        for i, r in enumerate(results)
        if "compression" in SESSIONS[i][0]
    }
    assert len(ranks) == 4, "the four what-ifs asked for four different rank settings"

    assert weights_checksum(cached.model) == before, "a session changed the cached model"
    assert before == weights_checksum(load_model(MODEL, device="cpu").model)
