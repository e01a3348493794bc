"""What every per-head comparison of a model A with a variant B answers the same way (the attention page's
``AttentionComparison``; the circuits page's ``CircuitComparison`` can share it): whether any head changed, and
which changed most in one quantity."""

from __future__ import annotations

import numpy as np


class HeadChanges:
    """Mixin for a comparison with ``same``, a (layer, head) bool array (the head is bitwise equal in A and B),
    and ``delta(metric)``, a (layer, head) float64 array of the change in ``metric`` (NaN where it has no value)."""

    @property
    def unchanged(self) -> bool:
        """No head differs between A and B (the page says "no change")."""
        return bool(self.same.all())

    def most_changed(self, metric: str) -> tuple[int, int] | None:
        """(layer, head) of the largest |delta| of ``metric``, or None when every delta is 0 or NaN."""
        size = np.abs(self.delta(metric))
        if not np.any(size > 0):  # NaN compares False
            return None
        layer, head = np.unravel_index(np.nanargmax(size), size.shape)
        return int(layer), int(head)
