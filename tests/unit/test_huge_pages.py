"""Huge-page solver buffers: the same tensor semantics as torch.empty, on a 2 MiB boundary when large."""

from __future__ import annotations

import sys

import pytest
import torch

from explorer.spectra.memory import _MIN_BYTES, HUGE_PAGE, empty_huge


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((3, (_MIN_BYTES // 4) // 3 + 5), torch.float32),
        ((_MIN_BYTES // 8 + 1,), torch.float64),
        ((4, 5), torch.float32),
    ],
)
def test_empty_huge_is_a_writable_contiguous_tensor_of_that_shape(shape, dtype):
    x = empty_huge(shape, dtype=dtype)
    assert x.shape == torch.Size(shape) and x.dtype == dtype and x.is_contiguous()
    x.fill_(1.5)  # every entry writable, none shared with another view
    x.view(-1)[-1] = 2.0
    assert float(x.sum()) == pytest.approx(1.5 * (x.numel() - 1) + 2.0, rel=0)
    large = x.numel() * x.element_size() >= _MIN_BYTES
    if large and sys.platform.startswith("linux"):
        assert x.data_ptr() % HUGE_PAGE == 0


def test_empty_huge_rows_are_independent_and_outlive_the_allocation_call():
    rows = empty_huge((2, _MIN_BYTES // 4), dtype=torch.float32)
    first, second = rows  # unpacked views keep the storage alive
    del rows
    first.fill_(1.0)
    second.fill_(-1.0)
    assert float(first.sum()) == first.numel() and float(second.sum()) == -second.numel()
