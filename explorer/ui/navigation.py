"""The one list of pages: streamlit_app.py builds st.navigation from it, the home page describes it, and
the AppTest smoke test runs every entry. Pages are listed explicitly (no auto-discovery); an entry whose
file is not in this checkout is left out rather than shown broken."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from explorer.paths import REPO_ROOT


@dataclass(frozen=True)
class PageInfo:
    path: str  # relative to the repo root
    title: str
    icon: str
    section: str
    summary: str

    @property
    def file(self) -> str:
        return str(REPO_ROOT / self.path)

    @property
    def url_path(self) -> str:
        """The page's URL path; the home page (the navigation's default) is served at the root."""
        return "" if self.path == "pages/home.py" else Path(self.path).stem


_LISTED: list[PageInfo] = [
    PageInfo(
        "pages/home.py",
        "Home",
        ":material/home:",
        "Start",
        "What the tool is, the model card, and the text as the model's tokens.",
    ),
    PageInfo(
        "pages/attention.py",
        "Attention spectra",
        ":material/grid_on:",
        "Attention",
        "Every head of every layer: eigenvalues, singular values, entropy, sinks, temperature.",
    ),
    PageInfo(
        "pages/eigenvectors.py",
        "Eigenvectors",
        ":material/stacked_line_chart:",
        "Attention",
        "Eigenvectors of a head over the tokens, and the tokens the head keeps returning to.",
    ),
    PageInfo(
        "pages/logit_lens.py",
        "Logit lens",
        ":material/visibility:",
        "Attention",
        "What each layer would predict: the residual stream read through the unembedding (causal LMs).",
    ),
    PageInfo(
        "pages/directions.py",
        "PCA & directions",
        ":material/explore:",
        "Attention",
        "Hidden states in PCA/UMAP, semantic directions from word pairs, bias scores.",
    ),
    PageInfo(
        "pages/weights.py",
        "Weight spectra",
        ":material/bar_chart:",
        "Weights",
        "Singular values and heavy-tail statistics of every weight matrix.",
    ),
    PageInfo(
        "pages/checkpoints.py",
        "Checkpoint series",
        ":material/timeline:",
        "Weights",
        "Weight spectra of a training run's checkpoints against the step; a demo series from the loaded model.",
    ),
    PageInfo(
        "pages/circuits.py",
        "QK/OV circuits",
        ":material/hub:",
        "Weights",
        "OV eigenvalues and copying scores per head; QK and OV singular values.",
    ),
    PageInfo(
        "pages/gershgorin.py",
        "Gershgorin discs",
        ":material/blur_circular:",
        "Weights",
        "Where the eigenvalues must lie, beside where they are.",
    ),
    PageInfo(
        "pages/compression.py",
        "Compression what-if",
        ":material/compress:",
        "Weights",
        "The smallest model within your quality budget: low rank, fewer bits or both, measured.",
    ),
    PageInfo(
        "pages/curvature.py",
        "Loss curvature",
        ":material/landscape:",
        "Training",
        "The loss Hessian's spectrum block by block, every layer at once, and GD's stability limit 2/λ_max.",
    ),
    PageInfo(
        "pages/learn.py",
        "Learn",
        ":material/school:",
        "Learn",
        "Walkthroughs that make the linear algebra visible, tied to the loaded model.",
    ),
]

PAGES: list[PageInfo] = [page for page in _LISTED if (REPO_ROOT / page.path).is_file()]


def page_file(path: str) -> str | None:
    """The file of the listed page at ``path`` (relative to the repo root, e.g. "pages/attention.py") for
    st.page_link / st.switch_page, or None when that page is not in this checkout."""
    return next((page.file for page in PAGES if page.path == path), None)
