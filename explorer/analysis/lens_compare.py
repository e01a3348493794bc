"""The logit lens of model A against a variant B on the same tokens (explorer.analysis.variants names B).

Each model's residual stream after block l is read through its own final norm and unembedding
(explorer.analysis.logit_lens), and per layer and position the two next-token distributions are compared:
KL(A ‖ B) = Σ_v p_A(v) log(p_A(v) / p_B(v)) in nats, and whether their top-1 tokens agree. At the last layer this
is the models' own outputs (the weights page's KL and top-1 agreement, there over every position but the last).
Computed in float64 from the float32 lens logits, position chunk by position chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from explorer import tasks
from explorer.analysis.logit_lens import POSITION_CHUNK, lens_logits, residual_stream
from explorer.models import LoadedModel
from explorer.models.choice import TextChoice


@dataclass(frozen=True)
class LensComparison:
    """kl: (layer, token) float64, KL(A ‖ B) of the lens distributions in nats (>= 0; exactly 0 where A's and
    B's logits are equal). agree: (layer, token) bool, the lens's top-1 tokens are the same."""

    kl: np.ndarray
    agree: np.ndarray

    @property
    def mean_kl(self) -> np.ndarray:
        """(layer,) float64: KL(A ‖ B) averaged over positions."""
        return self.kl.mean(axis=1)

    @property
    def top1_agreement(self) -> np.ndarray:
        """(layer,) float64 in [0, 1]: share of positions whose top-1 tokens agree."""
        return self.agree.mean(axis=1)

    @property
    def unchanged(self) -> bool:
        return bool(np.all(self.kl == 0.0) and self.agree.all())


@torch.no_grad()
def compare_lens(
    loaded_a: LoadedModel,
    loaded_b: LoadedModel,
    token_ids: np.ndarray,
    progress: tasks.Progress | None = None,
) -> LensComparison:
    """The lens of A and of B (e.g. ``Variant.loaded(A)``) on ``token_ids`` (token,), compared per layer and
    position: one forward pass of each, then every layer's lens logits chunk by chunk (POSITION_CHUNK)."""
    ids = np.asarray(token_ids, dtype=np.int64)
    residuals_a, _ = residual_stream(loaded_a, ids)
    residuals_b, _ = residual_stream(loaded_b, ids)
    n_layers, n_tokens = int(residuals_a.shape[0]), int(ids.shape[0])
    kl = np.zeros((n_layers, n_tokens))
    agree = np.zeros((n_layers, n_tokens), dtype=bool)
    for layer in range(n_layers):
        for start in range(0, n_tokens, POSITION_CHUNK):
            chunk = slice(start, min(start + POSITION_CHUNK, n_tokens))
            a = lens_logits(loaded_a, residuals_a[layer, chunk]).double()
            b = lens_logits(loaded_b, residuals_b[layer, chunk]).double()
            agree[layer, chunk] = (a.argmax(dim=-1) == b.argmax(dim=-1)).cpu().numpy()
            log_a, log_b = torch.log_softmax(a, dim=-1), torch.log_softmax(b, dim=-1)
            # KL >= 0 (Gibbs); clamp the ~1e-16 rounding that nearly equal distributions leave.
            kl[layer, chunk] = (log_a.exp() * (log_a - log_b)).sum(dim=-1).clamp_min(0.0).cpu().numpy()
        if progress is not None:
            progress((layer + 1) / n_layers, f"lens of A and B: layer {layer + 1} of {n_layers}")
    for array in (kl, agree):
        array.setflags(write=False)
    return LensComparison(kl, agree)


@dataclass(frozen=True)
class LensComparisonSpec(tasks.Spec):
    """The task comparing A's logit lens with the variant ``variant``'s (a variants.VariantSpec) on the text
    ``text_key`` (text and token limit)."""

    KIND: ClassVar[str] = "lens-compare"
    RESULT: ClassVar[object] = LensComparison
    MAX_FINISHED: ClassVar[int] = 4
    variant: tasks.Spec
    text_key: TextChoice

    @property
    def label(self) -> str:
        return f"logit lens of A and {self.variant.label}"
