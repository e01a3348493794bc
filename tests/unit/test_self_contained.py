"""The repository describes itself: no file in it points at documents outside it."""

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Built from parts so this file does not itself contain what it looks for.
OUTSIDE = ("DESIGN" + ".md", "../" + "shared/")


def test_no_tracked_file_cites_a_document_outside_the_repository():
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in files:
        path = REPO_ROOT / name
        if path.suffix not in {".py", ".md", ".toml", ".txt", ""} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        offenders += [f"{name}: {needle}" for needle in OUTSIDE if needle in text]
    assert not offenders, "cite docs/ARCHITECTURE.md instead: " + ", ".join(offenders)
