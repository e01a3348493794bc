"""The Checkpoint series page's sentences on a series whose change is known: layer 0's MLP down-projection
doubled between two steps. Stable rank is scale invariant (a theorem), so its sentences must not name a move;
the spectral norm of that one matrix doubles, so they name MLP down and layer 0."""

import pytest

from explorer.analysis.checkpoint_series import checkpoint_series
from explorer.ui.series_view import heatmap_sentence, lines_sentence
from tests.conftest import write_doubled_series


@pytest.fixture(scope="module")
def doubled(tmp_path_factory):
    root = tmp_path_factory.mktemp("series")
    write_doubled_series(root)
    return checkpoint_series(root)


def test_a_scale_invariant_metric_is_said_not_to_move(doubled):
    assert "no matrix kind's median stable rank changed at the precision shown" in lines_sentence(
        doubled, "stable_rank"
    )
    assert "no layer's stable rank changed since step 0" in heatmap_sentence(
        doubled, "stable_rank", "mlp_down"
    )


def test_the_doubled_matrix_is_named(doubled):
    assert "the median spectral norm σ₁ of the MLP down matrices moved most" in lines_sentence(
        doubled, "spectral_norm"
    )
    assert "layer 0's changed most since step 0" in heatmap_sentence(doubled, "spectral_norm", "mlp_down")
