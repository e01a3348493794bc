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
