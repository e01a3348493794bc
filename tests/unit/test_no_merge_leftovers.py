"""No file of the repository carries a merge's conflict markers (a README once shipped with them)."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = (".png", ".gguf", ".safetensors")


def marker_lines(text: str) -> list[int]:
    """1-based numbers of the lines that open, split or close a conflict."""
    starts = ("<" * 7 + " ", ">" * 7 + " ")
    return [
        i + 1
        for i, line in enumerate(text.splitlines())
        if line.startswith(starts) or line.rstrip() == "=" * 7
    ]


def test_no_conflict_markers():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    offenders = []
    for name in files.split():
        path = ROOT / name
        if path.is_file() and path.suffix not in BINARY:
            try:
                offenders += [f"{name}:{n}" for n in marker_lines(path.read_text(encoding="utf-8"))]
            except UnicodeDecodeError:
                continue
    assert not offenders, offenders


def test_markers_are_recognised():
    conflict = "a\n" + "<" * 7 + " HEAD\nb\n" + "=" * 7 + "\nc\n" + ">" * 7 + " branch\n"
    assert marker_lines(conflict) == [2, 4, 6]
    assert marker_lines("a table\n| == |\n" + "=" * 8 + "\n") == []
