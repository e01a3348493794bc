"""The core stays free of streamlit (and the maths free of plotly): checked on the source, so it cannot drift."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "explorer"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _files(*parts):
    return sorted((ROOT.joinpath(*parts)).rglob("*.py"))


def test_only_ui_imports_streamlit():
    offenders = [
        str(p.relative_to(ROOT))
        for p in _files()
        if "streamlit" in _imports(p) and p.parts[-2] != "ui" and "ui" not in p.relative_to(ROOT).parts
    ]
    assert offenders == [], f"streamlit imported outside explorer/ui: {offenders}"


def test_maths_layers_import_neither_streamlit_nor_plotly():
    for layer in ("spectra", "analysis", "models"):
        for path in _files(layer):
            bad = _imports(path) & {"streamlit", "plotly"}
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_figures_do_not_import_streamlit_or_models():
    for path in _files("figures"):
        imports = _imports(path)
        assert "streamlit" not in imports, path
        assert "transformers" not in imports, path


def test_the_check_would_catch_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import streamlit as st\nfrom plotly import graph_objects\n")
    assert {"streamlit", "plotly"} <= _imports(bad)


# ------------------------------------------------------------------ the project's own layers (one-way imports)

# What each package of explorer/ must not import (docs/ARCHITECTURE.md section 1).
FORBIDDEN = {
    "spectra": {"analysis", "figures", "ui", "report", "models"},
    "analysis": {"figures", "ui", "report"},
    "models": {"analysis", "figures", "ui", "report", "spectra"},
    "figures": {"ui", "report", "models"},  # figures draw analysis results, so they may import their types
    "report": {"ui"},
}


def _explorer_imports(path: Path) -> set[str]:
    """Full names of the explorer modules that ``path`` imports (absolute and relative imports)."""
    module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
    return _imports_in(path.read_text(encoding="utf-8"), module)


def _imports_in(source: str, module: str) -> set[str]:
    """Full names of the explorer modules that ``source``, the text of module ``module``, imports."""
    package = module.removesuffix(".__init__") if module.endswith(".__init__") else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(
                alias.name for alias in node.names if alias.name.split(".")[0] in {"explorer", "pages"}
            )
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] in {"explorer", "pages"}:
                found.add(name)
                found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def _layer_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "explorer" else None


def test_each_layer_imports_only_the_layers_below_it():
    offenders = []
    for layer, forbidden in FORBIDDEN.items():
        for path in _files(layer):
            bad = {name for name in _explorer_imports(path) if _layer_of(name) in forbidden}
            offenders += [f"{path.relative_to(ROOT)} imports {name}" for name in sorted(bad)]
    assert not offenders, "layer violations: " + "; ".join(offenders)


def test_nothing_in_the_package_imports_a_page():
    offenders = [
        str(path.relative_to(ROOT))
        for path in _files()
        if any(name.split(".")[0] == "pages" for name in _explorer_imports(path))
    ]
    assert not offenders, f"explorer/ imports pages/: {offenders}"


def test_the_report_package_has_no_import_cycle():
    modules = {".".join(p.relative_to(ROOT.parent).with_suffix("").parts): p for p in _files("report")}
    graph = {m: {n for n in _explorer_imports(p) if n in modules and n != m} for m, p in modules.items()}
    visiting, done = set(), set()

    def visit(node, trail):
        if node in visiting:
            raise AssertionError("import cycle in explorer/report: " + " -> ".join([*trail, node]))
        if node in done:
            return
        visiting.add(node)
        for nxt in graph[node]:
            visit(nxt, [*trail, node])
        visiting.discard(node)
        done.add(node)

    for module in graph:
        visit(module, [])


def test_the_layer_check_would_catch_a_violation():
    # The probe's text is parsed as if it were explorer/spectra/_layering_probe.py: nothing is written to the tree.
    found = _imports_in(
        "from explorer.ui import jobs\nfrom ..figures import common\n", "explorer.spectra._layering_probe"
    )
    assert {"explorer.ui.jobs", "explorer.figures.common"} <= found


# ------------------------------------------------------------------ public homes (docs/ARCHITECTURE.md section 1)


def _private_imports(source: str) -> list[str]:
    """``from explorer... import _name`` in ``source``: a private helper reached across modules."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in {"explorer", "pages"}:
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_no_module_imports_another_modules_private_names():
    offenders = {}
    for path in [*_files(), *sorted((ROOT.parent / "pages").glob("*.py"))]:
        names = _private_imports(path.read_text(encoding="utf-8"))
        if names:
            offenders[str(path.relative_to(ROOT.parent))] = names
    assert offenders == {}, f"give these a public home: {offenders}"


def test_the_private_import_check_would_catch_one():
    assert _private_imports("from explorer.analysis.compression import _sync, heldout_text\n") == [
        "explorer.analysis.compression._sync"
    ]


# ------------------------------------------------------------------ pages only lay out (docs/ARCHITECTURE.md section 7)

# A page reads and writes state through explorer/ui/state.py (PageState) and watches long work through
# explorer/ui/task_view.py: never Streamlit's session state or query params directly, no pollers of its own.
PAGE_BYPASSES = ("st.session_state", "st.query_params", "run_every", "jobs.follow")


def _bypasses(source: str) -> list[str]:
    return [f"line {n}: {word}" for n, line in enumerate(source.splitlines(), 1) for word in PAGE_BYPASSES
            if word in line.split("#")[0]]  # fmt: skip


def test_pages_use_the_state_api_and_the_task_layer():
    offenders = {}
    for path in sorted((ROOT.parent / "pages").glob("*.py")):
        found = _bypasses(path.read_text(encoding="utf-8"))
        if found:
            offenders[path.name] = found
    assert offenders == {}, f"move these into the page's explorer/ui module: {offenders}"


def test_the_page_bypass_check_would_catch_one():
    assert _bypasses("x = st.session_state.get('k')  # ok\n# st.query_params in a comment\n") == [
        "line 1: st.session_state"
    ]
