"""`make test` tests exactly the software in requirements.lock: every pinned package is installed at its version.

A failure means this environment drifted from the lock (a manual `pip install -U`, or a lock regenerated without
reinstalling): `rm .venv/.eigen-explorer-installed && make install` puts it back. torch is not in the lock (the
Makefile installs the CPU pin only when no torch is importable, so a GPU user's own build stays).
"""

import re
from importlib import metadata
from pathlib import Path

import pytest

LOCK = Path(__file__).resolve().parents[2] / "requirements.lock"


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^\s#;]+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_lock_pins_the_required_packages_and_not_torch():
    pins = _pins()
    for name in ("streamlit", "plotly", "transformers", "numpy", "scipy", "scikit-learn", "umap-learn"):
        assert name in pins, f"{name} missing from requirements.lock: run `make lock`"
    assert "torch" not in pins


def test_installed_versions_equal_the_lock():
    drift = []
    for name, version in _pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            drift.append(f"{name}=={version} not installed")
            continue
        if installed != version:
            drift.append(f"{name}: lock {version}, installed {installed}")
    if drift:
        pytest.fail("environment differs from requirements.lock (run `make install`): " + "; ".join(drift))
