"""The checkpoint series figures' step axis: integer steps only, every checkpoint's step when there are few."""

import numpy as np

from explorer.analysis.checkpoint_series import checkpoint_series
from explorer.figures.checkpoint_series import make_series_figure, make_series_loss_figure
from tests.conftest import write_doubled_series


def test_few_checkpoints_get_a_tick_each(tmp_path):
    write_doubled_series(tmp_path)
    fig = make_series_figure(checkpoint_series(tmp_path), "spectral_norm")
    assert list(fig.layout.xaxis.tickvals) == [0, 1] and fig.layout.xaxis.tickmode == "array"


def test_many_checkpoints_get_integer_ticks():
    steps = np.arange(0, 2000, 100)  # 20 checkpoints
    fig = make_series_loss_figure(steps, np.linspace(3.0, 1.0, steps.size))
    assert fig.layout.xaxis.tickformat == "d" and fig.layout.xaxis.tickvals is None
    assert list(fig.data[0].x) == list(steps)
