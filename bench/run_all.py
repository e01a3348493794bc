"""Every benchmark in one run: prints the results and writes them to bench/RESULTS.md (markdown tables).

Sections (each one failure-isolated: an error is printed and written, and the next section runs):

  machine        CPU count and model, load average, torch/numpy/streamlit/transformers versions, device, date.
  model load     per model: cold = a fresh Python process (interpreter + imports, then load_model; the model
                 files are already on disk and in the OS page cache, which this script cannot and does not drop);
                 in-process = load_model again in this process (imports done, nothing cached); warm = the
                 app's own path, explorer.ui.cache.cached_model (st.cache_resource), a cache hit.
  pages          time to first figure of every page of explorer.ui.navigation.PAGES, measured with Streamlit's
                 AppTest on the real app (streamlit_app.py: sidebar + navigation), on a 128-token text (the
                 example texts joined, cut by the app's max_tokens=128). Per page:
                   cold  = st.cache_data and st.cache_resource cleared and the on-disk weight-spectra cache
                           emptied (a fresh XDG_CACHE_HOME whose models/ links to the real one), then the model
                           re-loaded into cache_resource OUTSIDE the timing (that load is the "reload" column),
                           then the page's run timed: capture, analyses and figures all included.
                   warm  = the same page again in a new browser session (a fresh AppTest), caches warm.
                 The timed run is the page's own script run after switch_page (the entry script's first run,
                 which draws the home page, is not timed). Python imports are warmed first by one untimed pass
                 over every page on tiny-gpt2, so "cold" means cold caches, not cold imports.
                 Targets (warm): < 1.5 s on MiniLM, < 3 s on SmolLM2.
  re-render      attention page, warm caches: change the grid metric, the layer number input (a head not seen
                 yet, then back to one seen), the temperature slider; each .run() timed. Target < 0.5 s. AppTest
                 reruns the whole script even where the browser would rerun only the st.fragment.
  attention      bench_attention.bench: the page's grid + selected head against numpy eig (+svd) on every head.
  weights        bench_weights.bench_model: whole-model weight spectra against a numpy SVD loop and WeightWatcher
                 (only if importable here, or through a bench venv, see --bench-python; it is never installed
                 into .venv).
  compression    bench_compression.bench: rank change -> updated quality with factors cached (the page's
                 re-evaluation latency), against one forward pass of the original model.
  memory         peak resident set size (resource.getrusage ru_maxrss) of this process and of its children.

All ratios are computed from numbers measured in this same run. The machine is shared: the load average is
written beside the numbers; compare ratios, not seconds, across runs.

Usage: .venv/bin/python bench/run_all.py [--quick] [--models minilm-l6 smollm2-135m] [--sections ...]
       [--out bench/RESULTS.md] [--bench-python /tmp/bench-venv/bin/python]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import io
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# Everything after this line of RESULTS.md is written by hand from the benches run on their own, and kept.
STANDALONE = "<!-- standalone benches: kept by run_all.py -->"
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(BENCH_DIR))
# Streamlit outside a server warns on every cached call and bare-mode run; transformers notes long texts.
# Both read these once, at import, so they are set before anything imports them.
os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODELS = ("minilm-l6", "smollm2-135m")
SECTIONS = ("machine", "load", "pages", "rerender", "attention", "weights", "compression")
# Warm time-to-first-figure targets per model (seconds), and the re-render target.
PAGE_TARGETS = {"minilm-l6": 1.5, "smollm2-135m": 3.0}
RERENDER_TARGET = 0.5
TOKENS = 128
# Attention benchmark token counts in a full run. The naive loop is eig + svd on every head: at 512 tokens
# that is ~20 s for MiniLM's 72 heads but several minutes for SmolLM2's 270 heads on this 2-core machine, so
# SmolLM2 stops at 256 (--attention-tokens overrides both).
FULL_ATTENTION_TOKENS = {"minilm-l6": (128, 512), "smollm2-135m": (128, 256)}
COMPRESSION_DEFAULT_METHOD = "svdllm"  # what the page opens on
WEIGHTWATCHER_INSTALL = (
    "python3.11 -m venv /tmp/bench-venv && "
    'echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/bench-venv/lib/python3.11/site-packages/project.pth && '
    'echo "$PWD" >> /tmp/bench-venv/lib/python3.11/site-packages/project.pth && '
    "/tmp/bench-venv/bin/pip install -r bench/requirements.txt"
)
DEFAULT_BENCH_PYTHON = "/tmp/bench-venv/bin/python"


# ------------------------------------------------------------------------------------------------ helpers


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MB (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    peak = resource.getrusage(who).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def fmt_s(seconds: float | None, digits: int = 2) -> str:
    return "—" if seconds is None else f"{seconds:.{digits}f}"


def table(header: list[str], rows: list[list]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def load_average() -> str:
    try:
        a, b, c = os.getloadavg()
        return f"{a:.1f} / {b:.1f} / {c:.1f}"
    except OSError:
        return "n/a"


@contextlib.contextmanager
def quiet():
    """Silence library chatter (Streamlit's bare-mode warnings, transformers' notes) around a measurement."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class Report:
    """Collects markdown sections; written to disk after every section, so a cut-off run keeps what it has."""

    def __init__(self, out: Path, argv: list[str]):
        self.out = out
        self.argv = argv
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.sections: list[tuple[str, list[str]]] = []
        self.failures: list[str] = []
        self.summary: list[str] = []  # target lines, collected from the sections

    def add(self, title: str, lines: list[str]) -> None:
        self.sections.append((title, lines))
        self.write()

    def write(self) -> None:
        head = [
            "# eigen-explorer benchmarks",
            "",
            f"Written by `bench/run_all.py` ({' '.join(self.argv) or 'no options'}), started "
            f"{self.started:%Y-%m-%d %H:%M UTC}. Every ratio below comes from numbers measured in this one run. "
            "The machine is shared with other jobs, so seconds move from run to run (see the load average); "
            "ratios move less. Regenerate with `make bench` (or `.venv/bin/python bench/run_all.py --quick`).",
            "",
        ]
        if self.summary:
            head += ["## Targets", "", *self.summary, ""]
        if self.failures:
            head += [f"**Sections that failed:** {', '.join(self.failures)} (their errors are below).", ""]
        body = []
        for title, lines in self.sections:
            body += [f"## {title}", "", *lines, ""]
        # Results of the benches run on their own (bench_curvature, bench_budget, ...) follow STANDALONE in the
        # same file: kept as they are, since this run does not measure them.
        kept = []
        if self.out.exists():
            previous = self.out.read_text(encoding="utf-8")
            if STANDALONE in previous:
                kept = [STANDALONE + previous.split(STANDALONE, 1)[1]]
        self.out.write_text("\n".join(head + body + kept), encoding="utf-8")


def run_section(report: Report, title: str, fn: Callable[[], list[str]]) -> None:
    print(f"\n## {title}  (load average {load_average()})", flush=True)
    start = time.perf_counter()
    try:
        lines = list(fn())
    except Exception:  # failure-isolated: print, record, go on
        tb = traceback.format_exc()
        print(tb, flush=True)
        lines = ["**This section failed** (the other sections still ran):", "", "```", tb.strip(), "```"]
        report.failures.append(title)
    finally:
        gc.collect()
    elapsed = time.perf_counter() - start
    lines += [
        "",
        f"_Section time {elapsed:.0f} s; peak RSS of this process so far {peak_rss_mb():.0f} MB; "
        f"load average at the end {load_average()}._",
    ]
    print("\n".join(lines), flush=True)
    report.add(title, lines)


def bench_text() -> str:
    """The example texts joined (about 230 tokens on both models); the app cuts it to TOKENS tokens."""
    from explorer.texts import example_texts

    return " ".join(example_texts().values())


def model_key(model_id: str):
    """The key the sidebar gives cached_model by default (Selection.model_key): device auto, float32."""
    from explorer.models.choice import ModelChoice
    from explorer.ui import settings

    return ModelChoice(model_id, allow_external=settings.allow_external_models())


def clear_streamlit_caches() -> None:
    import streamlit as st

    with quiet():
        st.cache_data.clear()
        st.cache_resource.clear()
    gc.collect()


# ------------------------------------------------------------------------------------------------ sections


def section_machine(args) -> list[str]:
    import numpy as np
    import streamlit
    import torch
    import transformers

    cpu_model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    commit = "?"
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from explorer.models.device import available_devices, resolve_device

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows = [
        ["date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")],
        ["CPU", cpu_model],
        ["CPU count (os.cpu_count / usable)", f"{os.cpu_count()} / {affinity}"],
        ["torch threads (intra-op)", torch.get_num_threads()],
        ["memory", mem],
        ["load average (1/5/15 min) at start", load_average()],
        ["platform", platform.platform()],
        ["python", platform.python_version()],
        ["torch", torch.__version__],
        ["numpy", np.__version__],
        ["streamlit", streamlit.__version__],
        ["transformers", transformers.__version__],
        ["devices seen / app's auto choice", f"{', '.join(available_devices())} / {resolve_device('auto')}"],
        ["CUDA device", cuda],
        ["git commit", commit],
        ["mode", "quick (fewer repeats, smaller baselines)" if args.quick else "full"],
        ["models", ", ".join(args.models)],
    ]
    return table(["what", "value"], rows)


_COLD_LOAD_SNIPPET = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
sys.path.insert(0, {repo!r})
from explorer.models import load_model
t1 = time.perf_counter()
loaded = load_model({model!r}, device="cpu")
t2 = time.perf_counter()
print("RESULT " + json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1}}))
"""


def cold_load(model_id: str) -> dict:
    """load_model in a fresh interpreter: {"import_s", "load_s", "process_s"} (process = the whole subprocess)."""
    code = _COLD_LOAD_SNIPPET.format(repo=str(REPO_ROOT), model=model_id)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT
    )
    process_s = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"cold load of {model_id} failed (rc {proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    result["process_s"] = process_s
    return result


def section_load(args) -> list[str]:
    from explorer.models import load_model
    from explorer.ui.cache import cached_model

    repeats = 1 if args.quick else 2
    rows = []
    for model_id in args.models:
        colds = [cold_load(model_id) for _ in range(repeats)]
        with quiet():
            in_process = []
            for _ in range(repeats):
                start = time.perf_counter()
                loaded = load_model(model_id, device="cpu")
                in_process.append(time.perf_counter() - start)
                del loaded
                gc.collect()
            clear_streamlit_caches()
            key = model_key(model_id)
            start = time.perf_counter()
            cached_model(key)
            miss = time.perf_counter() - start
            hits = []
            for _ in range(20):
                start = time.perf_counter()
                cached_model(key)
                hits.append(time.perf_counter() - start)
            clear_streamlit_caches()
        rows.append(
            [
                model_id,
                fmt_s(min(c["process_s"] for c in colds)),
                fmt_s(min(c["import_s"] for c in colds)),
                fmt_s(min(c["load_s"] for c in colds)),
                fmt_s(min(in_process)),
                fmt_s(miss),
                f"{median(hits) * 1e3:.2f} ms",
            ]
        )
        print(f"  {model_id}: {rows[-1]}", flush=True)
    return [
        *table(
            [
                "model",
                "cold: fresh process total (s)",
                "of which imports (s)",
                "of which load_model (s)",
                "in-process load_model (s)",
                "cached_model, miss (s)",
                "warm: cached_model hit (median of 20)",
            ],
            rows,
        ),
        "",
        f"Best of {repeats} for the cold and in-process columns. Cold = a new `{Path(sys.executable).name}` "
        "process: interpreter start, `import explorer.models` (torch, transformers), then `load_model(id, "
        "device='cpu')`. The model files are on disk and, after the first read, in the OS page cache (not "
        "dropped: that needs root and would slow every other job on the machine). SmolLM2 loads the "
        "de-quantized safetensors copy from the user cache dir (the one-time GGUF conversion, ~20-30 s, is "
        "not measured here: `make clean-cache` then any load would). Warm = `explorer.ui.cache.cached_model` "
        "(st.cache_resource), the path every page takes.",
    ]


class PageBench:
    """AppTest driver for the pages and re-render sections (shares one disk-cache sandbox and the warm-up)."""

    def __init__(self, args):
        self.args = args
        self.text = bench_text()
        self.warmed_up = False
        self.sandbox: Path | None = None
        self.keys: dict = {}

    # The AppTest helper of the tests: patches Streamlit's PagesManager so the app's own navigation runs.
    def new_app(self, model_id: str, **query):
        from streamlit.testing.v1 import AppTest

        from tests.apptest import APP

        at = AppTest.from_file(APP, default_timeout=self.args.page_timeout)
        at.query_params["model"] = model_id
        at.query_params["text"] = self.text
        at.query_params["max_tokens"] = str(TOKENS)
        for key, value in query.items():
            at.query_params[key] = str(value)
        return at

    @staticmethod
    def problems(at) -> str:
        """'' when the run shows no exception and no st.error, else a short description."""
        msgs = [f"exception: {str(e.value)[:200]}" for e in at.exception]
        msgs += [f"st.error: {str(e.value)[:200]}" for e in at.error]
        return "; ".join(msgs)

    def open_page(self, model_id: str, page: str, before_timed: Callable[[], None] | None = None):
        """A new session on ``page``: the entry run (home) untimed, then ``before_timed``, then the page's run
        timed. Returns (AppTest, seconds)."""
        at = self.new_app(model_id)
        if page == "pages/home.py":
            if before_timed:
                before_timed()
            start = time.perf_counter()
            at.run()
            return at, time.perf_counter() - start
        at.run()
        if before_timed:
            before_timed()
        at.switch_page(page)
        start = time.perf_counter()
        at.run()
        return at, time.perf_counter() - start

    def enter_sandbox(self) -> None:
        """A fresh XDG_CACHE_HOME whose eigen-explorer/models links to the real one (no SmolLM2 re-conversion)
        and whose weights/ starts empty: the on-disk weight-spectra cache is cold there."""
        from explorer.paths import cache_dir

        real_models = cache_dir("models")
        self.previous_xdg = os.environ.get("XDG_CACHE_HOME")
        self.sandbox = Path(tempfile.mkdtemp(prefix="eigen-bench-cache-"))
        (self.sandbox / "eigen-explorer").mkdir()
        (self.sandbox / "eigen-explorer" / "models").symlink_to(real_models, target_is_directory=True)
        os.environ["XDG_CACHE_HOME"] = str(self.sandbox)

    def leave_sandbox(self) -> None:
        if self.sandbox is None:
            return
        if self.previous_xdg is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = self.previous_xdg
        (self.sandbox / "eigen-explorer" / "models").unlink(missing_ok=True)
        shutil.rmtree(self.sandbox, ignore_errors=True)
        self.sandbox = None

    def empty_disk_cache(self) -> None:
        if self.sandbox is not None:
            shutil.rmtree(self.sandbox / "eigen-explorer" / "weights", ignore_errors=True)

    def warm_up(self) -> float:
        """One untimed pass over every page on tiny-gpt2, so Python imports are not in the cold numbers."""
        from explorer.ui.navigation import PAGES

        if self.warmed_up:
            return 0.0
        start = time.perf_counter()
        for page in PAGES:
            with quiet():
                self.open_page("tiny-gpt2", page.path)
        clear_streamlit_caches()
        self.warmed_up = True
        return time.perf_counter() - start

    def key_for(self, model_id: str):
        """The model key the app's sidebar really produces (read from a run), checked against model_key()."""
        if model_id not in self.keys:
            with quiet():
                at = self.new_app(model_id)
                at.run()
                key = at.session_state["selection"].model_key
            if key != model_key(model_id):
                print(f"  note: the sidebar's model key {key} differs from the assumed {model_key(model_id)}")
            self.keys[model_id] = key
        return self.keys[model_id]

    def pages(self, model_id: str, repeats: int) -> tuple[list[list], list[str]]:
        from explorer.ui.cache import cached_model
        from explorer.ui.navigation import PAGES

        target = PAGE_TARGETS.get(model_id, 3.0)
        key = self.key_for(model_id)
        rows, misses = [], []
        reload = {}

        def cold_start() -> None:
            clear_streamlit_caches()
            self.empty_disk_cache()
            start = time.perf_counter()
            cached_model(key)
            reload["s"] = time.perf_counter() - start

        for page in PAGES:
            with quiet():
                at, cold = self.open_page(model_id, page.path, before_timed=cold_start)
                status = self.problems(at)
                charts = len(at.get("plotly_chart"))
                warm = []
                for _ in range(repeats):
                    at, seconds = self.open_page(model_id, page.path)
                    warm.append(seconds)
                    status = status or self.problems(at)
            w = median(warm)
            met = w < target
            if not met:
                misses.append(f"{page.title} {w:.2f} s ({w / target:.1f}x the {target:g} s target)")
            rows.append(
                [
                    page.title,
                    fmt_s(reload["s"]),
                    fmt_s(cold),
                    fmt_s(w),
                    fmt_s(min(warm)),
                    charts,
                    "met" if met else f"**missed** (+{w - target:.2f} s)",
                    status or "ok",
                ]
            )
            print(f"  {model_id} {page.title}: cold {cold:.2f} s, warm {w:.2f} s {warm}", flush=True)
        return rows, misses

    def rerender(self, model_id: str, repeats: int) -> list[list]:
        """Warm attention page; time reruns after widget changes. Returns table rows."""
        page = "pages/attention.py"
        with quiet():
            at, first = self.open_page(model_id, page)
            if self.problems(at):
                raise RuntimeError(f"attention page failed on {model_id}: {self.problems(at)}")
            # warm the whole page once more (the grid, the selected head) before timing changes
            at.run()
            n_layers = int(at.number_input(key="attention_layer").max) + 1
            results: dict[str, list[float]] = {}

            def timed(name: str, widget) -> None:
                start = time.perf_counter()
                widget.run()
                results.setdefault(name, []).append(time.perf_counter() - start)
                problem = self.problems(at)
                if problem:
                    raise RuntimeError(f"{name} on {model_id}: {problem}")

            metrics = ["entropy", "effective_rank", "stable_rank", "sink_mass", "lambda2_abs"]
            taus = [1.5, 0.5, 2.0, 0.75, 3.0]
            for i in range(repeats):
                timed(
                    "grid metric selectbox (grid and head cached)",
                    at.selectbox(key="attention_metric").set_value(metrics[i % len(metrics)]),
                )
                new_layer = 1 + i % max(n_layers - 1, 1)
                timed(
                    "layer number input, a new head (its spectrum computed)",
                    at.number_input(key="attention_layer").set_value(new_layer),
                )
                timed(
                    "layer number input, back to a head seen (all cached)",
                    at.number_input(key="attention_layer").set_value(0),
                )
                timed(
                    "temperature slider τ (spectrum at the new τ computed)",
                    at.slider(key="attention_tau").set_value(taus[i % len(taus)]),
                )
        rows = []
        for name, values in results.items():
            m = median(values)
            rows.append(
                [
                    model_id,
                    name,
                    fmt_s(m),
                    fmt_s(min(values)),
                    len(values),
                    "met" if m < RERENDER_TARGET else f"**missed** (+{m - RERENDER_TARGET:.2f} s)",
                ]
            )
        return rows


def section_pages(args, bench: PageBench, report: Report) -> list[str]:
    repeats = 1 if args.quick else 3
    warmup = bench.warm_up()
    lines = [
        f"Text: the example texts joined ({len(bench.text)} characters), cut to {TOKENS} tokens by the app "
        f"(`max_tokens={TOKENS}` in the link). Seconds of the page's own AppTest run (`at.run()` after "
        "`switch_page`). **cold**: Streamlit caches cleared and the weight-spectra disk cache empty; the model "
        "re-load into st.cache_resource happens before the timing and is reported on its own (**reload**); "
        "so cold = capture + analyses + figures. **warm**: the page again in a new session, median (and best) "
        f"of {repeats}. Python imports were warmed by an untimed pass over every page on tiny-gpt2 ({warmup:.0f} s).",
        "",
    ]
    bench.enter_sandbox()
    try:
        for model_id in args.models:
            try:
                rows, misses = bench.pages(model_id, repeats)
            except Exception:
                tb = traceback.format_exc()
                print(tb, flush=True)
                lines += [f"### {model_id}", "", "**Failed:**", "", "```", tb.strip(), "```", ""]
                report.failures.append(f"pages ({model_id})")
                continue
            finally:
                clear_streamlit_caches()
            target = PAGE_TARGETS.get(model_id, 3.0)
            lines += [
                f"### {model_id} (target: warm < {target:g} s on every page)",
                "",
                *table(
                    [
                        "page",
                        "reload (s, excluded)",
                        "cold (s)",
                        "warm (s)",
                        "warm best (s)",
                        "charts",
                        "target",
                        "status",
                    ],
                    rows,
                ),
                "",
            ]
            summary = (
                f"- Time to first figure, warm, {model_id}: "
                + (
                    "every page under "
                    if not misses
                    else f"{len(rows) - len(misses)} of {len(rows)} pages under "
                )
                + f"{target:g} s"
                + (f"; missed: {', '.join(misses)}." if misses else " (met).")
            )
            report.summary.append(summary)
    finally:
        bench.leave_sandbox()
    return lines


def section_rerender(args, bench: PageBench, report: Report) -> list[str]:
    repeats = 1 if args.quick else 3
    bench.warm_up()
    rows = []
    for model_id in args.models:
        try:
            rows += bench.rerender(model_id, repeats)
        except Exception:
            tb = traceback.format_exc()
            print(tb, flush=True)
            rows.append([model_id, f"failed: {tb.strip().splitlines()[-1][:200]}", "—", "—", 0, "—"])
            report.failures.append(f"re-render ({model_id})")
        finally:
            clear_streamlit_caches()
    missed = [r for r in rows if str(r[5]).startswith("**missed")]
    report.summary.append(
        f"- Attention page re-render after a widget change (target < {RERENDER_TARGET:g} s): "
        + (
            "met for every change."
            if not missed
            else "missed for " + "; ".join(f"{r[0]} {r[1]} ({r[2]} s)" for r in missed) + "."
        )
    )
    return [
        f"The attention page on a {TOKENS}-token text, warm caches, one session; each change is the widget's "
        f"`set_value(...).run()` under AppTest (median and best of {repeats}, different values each time). "
        "AppTest reruns the whole page script; in a browser the temperature slider reruns only its st.fragment, "
        "so that row is an upper bound.",
        "",
        *table(
            ["model", "change", "median (s)", "best (s)", "runs", f"target < {RERENDER_TARGET:g} s"], rows
        ),
    ]


def section_attention(args, loaded_models: dict) -> list[str]:
    import bench_attention

    rows, details = [], []
    for model_id in args.models:
        if args.attention_tokens:
            token_counts = tuple(args.attention_tokens)
        elif args.quick:
            token_counts = (TOKENS,)
        else:
            token_counts = FULL_ATTENTION_TOKENS.get(model_id, (TOKENS,))
        loaded = loaded_models.get(model_id)
        for n in token_counts:
            repeat = 2 if (not args.quick and n <= TOKENS) else 1
            r = bench_attention.bench(model_id, n, repeat=repeat, blas_threads=1, loaded=loaded)
            rows.append(
                [
                    model_id,
                    r["tokens"],
                    r["heads"],
                    fmt_s(r["naive_eig_s"]),
                    fmt_s(r["naive_total_s"]),
                    fmt_s(r["grid_s"]),
                    fmt_s(r["head_s"]),
                    fmt_s(r["page_s"]),
                    f"{r['ratio_vs_eig']:.1f}x",
                    f"{r['ratio_vs_all']:.1f}x",
                    f"{r['ratio_cpu']:.1f}x",
                    "/".join(str(x) for x in r["routes"]),
                    "yes" if r["equal"] else "**NO**",
                    repeat,
                ]
            )
            details.append(f"- {model_id} @ {r['tokens']}: {r['detail']}")
            print(f"  {rows[-1]}", flush=True)
    return [
        "`bench/bench_attention.py`: what the attention page computes (the grid's per-head metrics for every "
        "head + the full spectrum of the selected head) against numpy `eig` (and `svd`) on every head in a loop, "
        "on the same capture (the example texts repeated, cut to the token count). BLAS: 1 thread for the naive "
        "loop and the head; the grid runs in min(4, cores) workers of one BLAS thread each. Seconds, best of "
        "`repeat` runs per side; ratios = naive / page, wall clock (CPU = process CPU time)."
        + (
            ""
            if args.quick or args.attention_tokens
            else " SmolLM2 stops at 256 tokens: its naive loop at 512 takes minutes here."
        ),
        "",
        *table(
            [
                "model",
                "tokens",
                "heads",
                "naive eig (s)",
                "naive eig+svd (s)",
                "page grid (s)",
                "page head (s)",
                "page total (s)",
                "x vs eig",
                "x vs eig+svd",
                "x CPU",
                "λ₂ route diag/Krylov/geev",
                "same numbers",
                "repeat",
            ],
            rows,
        ),
        "",
        "Largest differences between the page's numbers and the naive ones (tolerances in bench_attention.compare):",
        "",
        *details,
    ]


def _find_bench_python(args) -> str | None:
    """An interpreter that can import weightwatcher (the bench venv of bench/requirements.txt), or None."""
    candidates = [args.bench_python] if args.bench_python else []
    candidates += [os.environ.get("EIGEN_BENCH_PYTHON"), DEFAULT_BENCH_PYTHON]
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        with contextlib.suppress(Exception):
            probe = subprocess.run(
                [candidate, "-c", "import weightwatcher"], capture_output=True, timeout=120, cwd=REPO_ROOT
            )
            if probe.returncode == 0:
                return candidate
    return None


def section_weights(args, loaded_models: dict) -> list[str]:
    import importlib.util

    import bench_weights

    notes = []
    here = importlib.util.find_spec("weightwatcher") is not None and not args.no_weightwatcher
    other = None if (here or args.no_weightwatcher) else _find_bench_python(args)
    results = []
    for model_id in args.models:
        if other:  # ours and WeightWatcher both in the bench venv's process: the ratio stays same-run
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "weights.json"
                env = {**os.environ, "HF_HUB_OFFLINE": "1"}
                proc = subprocess.run(
                    [other, str(BENCH_DIR / "bench_weights.py"), "--models", model_id, "--json", str(out)],
                    capture_output=True,
                    text=True,
                    timeout=1800,
                    cwd=REPO_ROOT,
                    env=env,
                )
                if proc.returncode == 0 and out.is_file():
                    results.extend(json.loads(out.read_text()))
                    print(proc.stdout, flush=True)
                    continue
                notes.append(
                    f"- The bench venv ({other}) failed on {model_id} (rc {proc.returncode}); measured here "
                    f"without WeightWatcher instead. Its last output: `{proc.stderr.strip()[-300:]}`"
                )
        with quiet(), contextlib.redirect_stdout(io.StringIO()):
            results.append(bench_weights.bench_model(model_id, skip_ww=not here))
        print(
            f"  {model_id}: {json.dumps({k: v for k, v in results[-1].items() if k.endswith('_s')})}",
            flush=True,
        )
    rows = []
    ww_notes = []
    for r in results:
        best = min(r["ours_gram_s"], r["ours_svd_s"])
        ww = r.get("weightwatcher_analyze_s")
        rows.append(
            [
                r["model"],
                r["matrices"],
                f"{r['parameters_in_matrices'] / 1e6:.1f} M",
                fmt_s(r["ours_gram_s"]),
                fmt_s(r["ours_svd_s"]),
                fmt_s(r["cached_second_visit_s"], 3),
                fmt_s(r["numpy_loop_s"]),
                f"{r['numpy_loop_s'] / best:.2f}x",
                fmt_s(ww) if ww is not None else "not installed" if not (here or other) else "—",
                f"{ww / r['ours_gram_s']:.2f}x" if ww is not None else "—",
                f"{r['max_rel_sigma_error_gram']:.1e}",
            ]
        )
        cmp = r.get("alpha_vs_weightwatcher")
        if cmp and cmp.get("matched"):
            ww_notes.append(
                f"- {r['model']}: alpha vs WeightWatcher on {cmp['matched']} matched matrices: median |diff| "
                f"{cmp['median_abs_diff']:.3f}, within 0.1: {cmp['within_0.1']:.0%}, r = {cmp['pearson_r']:.3f} "
                "(the app's fit: exact KS, tails >= 10)."
            )
    if here:
        source = "WeightWatcher imported in this process."
    elif other:
        source = (
            f"WeightWatcher is not importable in `{sys.executable}`, so each model's row was measured in one "
            f"process of the bench venv `{other}` (`bench/bench_weights.py --json`): ours, numpy and "
            "WeightWatcher in that same process."
        )
    elif args.no_weightwatcher:
        source = "WeightWatcher skipped (--no-weightwatcher)."
    else:
        source = (
            "WeightWatcher: **not installed** (it is a bench-only dependency and never goes into .venv). "
            f"To get that column: `{WEIGHTWATCHER_INSTALL}`, then rerun (run_all.py finds "
            f"{DEFAULT_BENCH_PYTHON} by itself; or pass --bench-python)."
        )
    return [
        "`bench/bench_weights.py`: every 2-D weight matrix of the model, singular values and all the page's "
        "metrics with power-law fits (ours, first visit: `compute_weight_spectra`, gram route = the default, and "
        "the float32 svdvals route); second visit = the disk cache read; numpy = `np.linalg.svd(W, "
        "compute_uv=False)` per matrix (values only, no metrics); WeightWatcher = `analyze()` with its defaults. "
        "Single runs, torch's default threads.",
        "",
        source,
        "",
        *table(
            [
                "model",
                "matrices",
                "weights",
                "ours gram (s)",
                "ours svdvals (s)",
                "ours, 2nd visit (s)",
                "numpy SVD loop (s)",
                "x vs numpy",
                "WeightWatcher (s)",
                "x vs WeightWatcher",
                "max abs σ error / σ₁",
            ],
            rows,
        ),
        "",
        *ww_notes,
        *notes,
    ]


def section_compression(args, loaded_models: dict, report: Report) -> list[str]:
    import bench_compression

    from explorer.analysis.lowrank import METHOD_LABELS, METHODS

    methods = tuple(METHODS) if args.compression_all_methods else (COMPRESSION_DEFAULT_METHOD,)
    repeats = 1 if args.quick else 3
    rows, quality = [], []
    for model_id in args.models:
        loaded = loaded_models.get(model_id)
        r = bench_compression.bench(
            model_id,
            tokens=args.compression_tokens,
            repeats=repeats,
            loaded=loaded,
            run_sweep=args.compression_all_methods,
            methods=methods,
            log=lambda line: print("  " + line, flush=True),
        )
        for method in methods:
            times = r["rank_change_all_s"][method]
            m = median(times)
            rows.append(
                [
                    model_id,
                    r["tokens"],
                    METHOD_LABELS[method],
                    fmt_s(r["calibration_s"], 1),
                    fmt_s(r["factorize_s"][method], 1),
                    fmt_s(r["baseline_forward_s"], 3),
                    fmt_s(m, 3),
                    f"{m / r['baseline_forward_s']:.2f}x",
                    "met" if m < 2 else f"**missed** (+{m - 2:.2f} s)",
                ]
            )
            h = r["half_break_even"][method]
            if h.get("perplexity") is not None:
                q = f"perplexity {h['perplexity']:.2f} (original {r['original_perplexity']:.2f}), KL {h['kl']:.3f}"
            else:
                q = f"embedding cosine {h['embedding_cosine']:.4f}, similarity rho {h['similarity_spearman']:.3f}"
            quality.append(
                f"- {model_id}, {METHOD_LABELS[method]}, every MLP matrix at half its break-even rank: {q}; "
                f"{h['params_kept_model']:.1%} of the model's parameters kept."
            )
        if "sweep_eval_s" in r:
            quality.append(
                f"- {model_id}: Pareto sweep ({r['sweep_points']} settings) {r['sweep_eval_s']:.1f} s with factors "
                f"cached, {r['sweep_total_s']:.1f} s from scratch."
            )
    misses = [row for row in rows if str(row[-1]).startswith("**missed")]
    report.summary.append(
        "- Compression re-evaluation after a rank change (target < 2 s): "
        + (
            "met."
            if not misses
            else "missed for " + ", ".join(f"{r[0]} {r[2]} ({r[6]} s)" for r in misses) + "."
        )
    )
    return [
        "`bench/bench_compression.py`: the page's re-evaluation when a rank slider moves = choose ranks, "
        "build the factored copy from cached factors, run it on the shipped held-out passage and compute the "
        "quality (perplexity + KL for SmolLM2; embedding cosine + similarity rank correlation on the shipped "
        f"sentence set for MiniLM). Median of {repeats} rank settings per method; each baseline forward of the "
        "original model is measured just before. One-time costs (calibration activations on the shipped set, "
        "the factorization) are shown beside it."
        + (
            ""
            if args.compression_all_methods
            else f" Only {METHOD_LABELS[COMPRESSION_DEFAULT_METHOD]} (the page's default) is factorized here: "
            "each factorization takes a minute or more on this machine; `--compression-all-methods` adds plain "
            "SVD, ASVD and the Pareto sweep."
        ),
        "",
        *table(
            [
                "model",
                "tokens",
                "method",
                "calibration (s, once)",
                "factorize (s, once)",
                "baseline forward (s)",
                "rank change (s)",
                "x forward",
                "target < 2 s",
            ],
            rows,
        ),
        "",
        *quality,
    ]


def section_memory() -> list[str]:
    rows = [
        [
            "this process (pages, re-render, attention, compression, in-process weights)",
            f"{peak_rss_mb():.0f} MB",
        ],
        [
            "largest child process (cold loads, bench-venv weights)",
            f"{peak_rss_mb(resource.RUSAGE_CHILDREN):.0f} MB",
        ],
    ]
    return [
        *table(["process", "peak resident set (ru_maxrss)"], rows),
        "",
        "ru_maxrss is the high-water mark of the whole run (both models, every section, and the caches the "
        "app keeps), not of one page; RUSAGE_CHILDREN reports the largest finished child.",
    ]


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one repeat, 128 tokens, smaller baselines")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument(
        "--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS, help="run only these sections"
    )
    parser.add_argument("--out", default=str(BENCH_DIR / "RESULTS.md"), help="markdown file to write")
    parser.add_argument(
        "--attention-tokens", nargs="+", type=int, help="token counts for the attention bench"
    )
    parser.add_argument("--compression-tokens", type=int, default=TOKENS)
    parser.add_argument(
        "--compression-all-methods", action="store_true", help="factorize all three methods and run the sweep"
    )
    parser.add_argument(
        "--bench-python", help="an interpreter with weightwatcher (default: find /tmp/bench-venv)"
    )
    parser.add_argument("--no-weightwatcher", action="store_true")
    parser.add_argument("--page-timeout", type=float, default=900, help="AppTest timeout per run (s)")
    args = parser.parse_args(argv)

    for name in ("transformers", "weightwatcher"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Streamlit re-reads its log level whenever AppTest parses the config, so filters (which stay) do this.
    import streamlit.runtime.caching.cache_data_api  # noqa: F401
    import streamlit.runtime.scriptrunner_utils.script_run_context  # noqa: F401

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("streamlit"):
            logging.getLogger(name).addFilter(lambda record: record.levelno >= logging.ERROR)

    report = Report(Path(args.out), sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    pages = PageBench(args)
    loaded_models: dict = {}

    def shared_models() -> dict:
        """One CPU copy per model for the attention and compression benches (loaded when first needed)."""
        from explorer.models import load_model

        for model_id in args.models:
            if model_id not in loaded_models:
                with quiet():
                    loaded_models[model_id] = load_model(model_id, device="cpu")
        return loaded_models

    steps = {
        "machine": ("Machine", lambda: section_machine(args)),
        "load": ("Model load: cold and warm", lambda: section_load(args)),
        "pages": ("Time to first figure, every page", lambda: section_pages(args, pages, report)),
        "rerender": (
            "Attention page: re-render after a widget change",
            lambda: section_rerender(args, pages, report),
        ),
        "attention": (
            "All-heads attention analysis vs a per-head numpy loop",
            lambda: section_attention(args, shared_models()),
        ),
        "weights": (
            "Weight spectra vs a numpy loop and WeightWatcher",
            lambda: section_weights(args, loaded_models),
        ),
        "compression": (
            "Compression re-evaluation latency",
            lambda: section_compression(args, shared_models(), report),
        ),
    }
    for name in SECTIONS:
        if name in args.sections:
            title, fn = steps[name]
            run_section(report, title, fn)
    loaded_models.clear()
    run_section(report, "Peak memory", section_memory)
    total = time.perf_counter() - start
    report.summary.append(f"- Whole run: {total / 60:.1f} min.")
    report.write()
    print("\nTargets:\n" + "\n".join(report.summary))
    print(
        f"\nwrote {report.out} ({total / 60:.1f} min){'; FAILED: ' + ', '.join(report.failures) if report.failures else ''}"
    )
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
