"""Server warm-up: what a first visitor would otherwise wait for, done in the background as the server starts.

A restarted server's first visit paid for importing torch, transformers and the app's modules and for loading
the default model (measured on a 2-core CPU with SmolLM2: about 10 s of imports and 3 s of loading, before
any page work). ``start`` does both in a daemon thread while Streamlit starts: the model goes through the
same ``st.cache_resource`` function the pages call (caches live in the process, not in a session), so the
first visit finds it loaded. A visitor who arrives earlier waits only for what is left (imports take
Python's per-module locks; a cached function computing a value makes other callers of the same key wait for
it). A failure here is only logged: the page then loads the model itself and shows any error as usual.

Imports are not safe to run from two threads here: when two threads import modules that import each other,
Python's deadlock detection raises in one of them, and transformers' lazy module turns that into
``ImportError: cannot import name 'AutoConfig' from 'transformers'`` (a cold server's first visit showed it).
So the warm-up holds ``IMPORT_LOCK`` from before the server runs a script until it is done, and every script
run takes it around its own imports (streamlit_app.py): a visitor who arrives during the warm-up waits for it.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
import threading
import time

LOG = logging.getLogger(__name__)
# The packages whose modules the pages import (analysis and spectra come with them).
PACKAGES = ("explorer.ui", "explorer.figures")
# Held by whichever thread is importing the app (see the module docstring). Re-entrant: a thread that holds it
# may import more under it.
IMPORT_LOCK = threading.RLock()


def warm_up() -> dict[str, float]:
    """Import the app's modules and load the default model and its fingerprint. Returns seconds per step."""
    times = {}
    start = time.perf_counter()
    with IMPORT_LOCK:  # for callers other than start(); loading the model imports transformers modules too
        for package in PACKAGES:
            for info in pkgutil.iter_modules(importlib.import_module(package).__path__, package + "."):
                importlib.import_module(info.name)
        times["imports"] = time.perf_counter() - start
        from explorer.ui.cache import cached_fingerprint, cached_model
        from explorer.ui.sidebar import default_model_key

        start = time.perf_counter()
        key = default_model_key()
        cached_model(key)
    cached_fingerprint(key)  # what the disk caches are keyed by (hashing ~0.5 GB; imports nothing)
    from explorer.analysis.attention_long import matmul_flops_per_second

    # The sidebar's capture-cost estimate measures the device's matmul rate once per process (about 0.2 s on a
    # 2-core CPU): paid here, not by the first visit after a restart.
    matmul_flops_per_second(str(cached_model(key).device))
    times["model"] = time.perf_counter() - start
    return times


def _wait_for_runtime(timeout: float = 60.0) -> None:
    """Until Streamlit's runtime exists (moments after the server starts): modules with ``st.cache_data``
    functions imported before it bind their caches to a plain in-memory store and log a warning each."""
    from streamlit import runtime

    deadline = time.monotonic() + timeout
    while not runtime.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _run(wait_for_runtime: bool, started: threading.Event) -> None:
    try:
        with IMPORT_LOCK:  # taken before the server can run a script; held until the warm-up is done
            started.set()
            if wait_for_runtime:
                _wait_for_runtime()
            times = warm_up()
        # On the server's console, beside Streamlit's own start lines (logging's INFO is not shown there).
        print(
            "eigen-explorer: warmed up (" + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()) + ")",
            file=sys.stderr,
            flush=True,
        )
    except Exception:  # noqa: BLE001 - the page loads the model itself and shows the error there
        LOG.warning("warm-up failed; pages will load the model on first use", exc_info=True)
    finally:
        started.set()


def start(wait_for_runtime: bool = True) -> threading.Thread:
    """Run ``warm_up`` in a daemon thread (it never delays the server or its exit), once Streamlit's runtime
    exists unless ``wait_for_runtime`` is False (no server: a benchmark, a test). Returns once the thread
    holds ``IMPORT_LOCK``, so nothing started after it can import the app alongside it."""
    started = threading.Event()
    thread = threading.Thread(
        target=_run, args=(wait_for_runtime, started), name="eigen-explorer-warm-up", daemon=True
    )
    thread.start()
    started.wait()
    return thread
