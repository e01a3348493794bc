"""Weight quantization what-ifs: round-to-nearest codes, their exact storage, and low-rank combinations.

A weight matrix W (out x in, as stored) is cut into groups of consecutive input columns (a whole row when
``group_size`` is None: "per output channel"), and each group gets its own grid:

- symmetric: w ≈ scale · q with q an integer in [-qmax, qmax], qmax = 2^(bits-1) - 1 and scale = absmax / qmax;
- asymmetric: w ≈ low + scale · q with q in [0, 2^bits - 1], scale = (max - min) / (2^bits - 1), low = min
  (a float offset, as GGUF's Q4_1 stores its "minimum").

Both are round-to-nearest with every value inside its grid's range, so |w - dequant(quant(w))| ≤ scale / 2 for
every entry (the tests check it). Scales and offsets are stored in fp16 and the codes are computed against the
stored values (see ``quantize``); grids are computed in float64, so a
matrix already on a grid with fp16 scale and offset (as GGUF's Q4_1) comes back exactly. Storage counts real bytes: the codes packed (bits / 8 bytes each) plus an fp16 scale
per group and, asymmetric, an fp16 offset per group.

Combinations: low-rank factors whose factors are then quantized, and the spectral split W = W_r + (W - W_r)
with the top-r singular directions kept in fp16 and the residual quantized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from explorer.spectra.ranks import energy_rank

FP16_BYTES = 2


@dataclass(frozen=True)
class QuantScheme:
    """Round-to-nearest quantization: ``bits`` per weight, groups of ``group_size`` input columns (None: one
    group per output row), symmetric grid or with an offset."""

    bits: int
    group_size: int | None = None
    symmetric: bool = True

    def __post_init__(self):
        if self.bits not in (2, 3, 4, 8):
            raise ValueError(f"bits must be 2, 3, 4 or 8, not {self.bits}")
        if self.group_size is not None and self.group_size < 1:
            raise ValueError("group_size must be positive (or None for one group per row)")
        if self.symmetric and self.bits < 3:
            raise ValueError("a symmetric grid needs at least 3 bits")

    @property
    def name(self) -> str:
        """``int8``, ``int4-g32``, ``int4-g64-asym``: the report's method names."""
        group = "" if self.group_size is None else f"-g{self.group_size}"
        return f"int{self.bits}{group}" + ("" if self.symmetric else "-asym")

    @property
    def levels(self) -> int:
        return 2**self.bits

    def groups_per_row(self, n_in: int) -> int:
        return 1 if self.group_size is None else math.ceil(n_in / self.group_size)

    def nbytes(self, shape: tuple[int, int]) -> int:
        """Bytes to store a (out, in) matrix: packed codes, then fp16 scale (and offset) per group."""
        m, n = shape
        codes = math.ceil(m * n * self.bits / 8)
        per_group = FP16_BYTES * (1 if self.symmetric else 2)
        return codes + m * self.groups_per_row(n) * per_group


INT8 = QuantScheme(8)
INT4_SCHEMES = tuple(QuantScheme(4, g, sym) for g in (32, 64, 128) for sym in (True, False))


@dataclass(frozen=True)
class Quantized:
    """A quantized matrix.

    Attributes:
        codes: int16 tensor of shape (out, groups, group_size): the integer codes (padding past ``in`` is 0).
        scale: float64 tensor of shape (out, groups, 1); offset: the same (zeros when symmetric).
        shape: (out, in) of the original matrix.
    """

    scheme: QuantScheme
    codes: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor
    shape: tuple[int, int]

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The matrix the codes stand for, shape (out, in)."""
        w = self.codes.to(torch.float64).mul_(self.scale)
        if not self.scheme.symmetric:  # a symmetric offset is zero (and the int16 codes have no -0 to undo)
            w.add_(self.offset)
        m, n = self.shape
        return w.reshape(m, -1)[:, :n].to(dtype)

    @property
    def nbytes(self) -> int:
        return self.scheme.nbytes(self.shape)


def _grouped(w: torch.Tensor, group_size: int | None, fill: str) -> tuple[torch.Tensor, int]:
    """(out, in) -> a new float64 tensor (out, groups, g) and the padding past ``in`` (0 when g divides in).

    The padding repeats each row's last value (``fill`` "edge": min and max of the last group stay those of its
    real entries) or is zero ("zero": absmax unchanged, code 0). A copy either way: callers work on it in place.
    """
    m, n = w.shape
    g = n if group_size is None else group_size
    groups = math.ceil(n / g)
    pad = groups * g - n
    values = w.detach().to(torch.float64, copy=True)
    if pad:
        edge = values[:, -1:].expand(m, pad) if fill == "edge" else values.new_zeros(m, pad)
        values = torch.cat([values, edge], dim=1)
    return values.reshape(m, groups, g), pad


def _to_fp16(x: torch.Tensor, direction: float = 0.0) -> torch.Tensor:
    """float64 values rounded to fp16 (what is stored), as float64: to nearest (direction 0), or towards -inf
    (direction < 0)."""
    half = x.to(torch.float16)
    if direction < 0:
        above = half.to(torch.float64) > x
        half = torch.where(above, torch.nextafter(half, torch.full_like(half, -math.inf)), half)
    return half.to(torch.float64)


def quantize(w: torch.Tensor, scheme: QuantScheme) -> Quantized:
    """Round-to-nearest quantization of ``w`` (out, in), on w's device, grids in float64.

    Scales and offsets are the fp16 values that are stored, and codes are computed against them. The offset is
    rounded down (the group's minimum stays on the grid); the scale to nearest, which moves the grid's top by at
    most (levels - 1) · 2^-11 steps < 1/2 step, so no value is clamped and |w - dequant| ≤ scale / 2 holds for the
    stored scale. A group already on an fp16 grid (GGUF's Q4_1) gets that grid back exactly.
    """
    if w.ndim != 2:
        raise ValueError(f"expected a matrix, got shape {tuple(w.shape)}")
    # In place on one float64 copy: a 576 x 1536 matrix is 7 MB, and each extra temporary is another pass.
    values, pad = _grouped(w, scheme.group_size, "zero" if scheme.symmetric else "edge")
    if scheme.symmetric:
        qmax = scheme.levels // 2 - 1
        # max(amax, -amin) is max|w| without a full-size |w| temporary; abs() keeps an all-zero group's +0.
        absmax = torch.maximum(values.amax(-1, keepdim=True), values.amin(-1, keepdim=True).neg_()).abs_()
        scale = _to_fp16(absmax / qmax)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        codes = values.div_(safe).round_().clamp_(-qmax, qmax)
        offset = torch.zeros_like(scale)
    else:
        low = _to_fp16(values.amin(-1, keepdim=True), -1)
        high = values.amax(-1, keepdim=True)
        scale = _to_fp16((high - low) / (scheme.levels - 1))
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        codes = values.sub_(low).div_(safe).round_().clamp_(0, scheme.levels - 1)
        offset = low
    if pad:
        codes.view(codes.shape[0], -1)[:, -pad:] = 0
    return Quantized(scheme, codes.to(torch.int16), scale, offset, (int(w.shape[0]), int(w.shape[1])))


def fake_quantize(w: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """dequantize(quantize(w)) in w's dtype: what the model computes with."""
    return quantize(w, scheme).dequantize(w.dtype)


@dataclass(frozen=True)
class FactorQuantization:
    """Low-rank factors W ≈ U B (U: out x k, B: k x in), each factor quantized with ``scheme``."""

    U: Quantized
    B: Quantized

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return (self.U.dequantize(torch.float64) @ self.B.dequantize(torch.float64)).to(dtype)

    @property
    def nbytes(self) -> int:
        return self.U.nbytes + self.B.nbytes


def quantize_factors(U: torch.Tensor, B: torch.Tensor, scheme: QuantScheme) -> FactorQuantization:
    """Quantize both factors of U B (groups run along each factor's own input dimension)."""
    return FactorQuantization(quantize(U, scheme), quantize(B, scheme))


def energy_rank_of(sigma: torch.Tensor, energy: float) -> int:
    """Smallest r with sum_{i<r} σ_i² ≥ energy · sum σ_i² (σ decreasing): ``ranks.energy_rank``, the one
    definition (with its rounding tolerance); 0 for a zero matrix, which has nothing to keep."""
    S = sigma.detach().to("cpu", torch.float64).numpy()
    if not (S**2).sum() > 0.0:
        return 0
    return int(energy_rank(S, energy))


@dataclass(frozen=True)
class SpectralSplit:
    """W = W_r + R: the top-r singular part kept in fp16 as two factors (out x r and r x in), the residual R
    quantized."""

    rank: int
    left: torch.Tensor  # (out, r) float64: U_r diag(σ_r)
    right: torch.Tensor  # (r, in) float64: V_r^T
    residual: Quantized

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return (self.left @ self.right + self.residual.dequantize(torch.float64)).to(dtype)

    @property
    def nbytes(self) -> int:
        m, n = self.residual.shape
        return FP16_BYTES * self.rank * (m + n) + self.residual.nbytes


def spectral_split(w: torch.Tensor, rank: int, scheme: QuantScheme) -> SpectralSplit:
    """Keep the top ``rank`` singular directions of ``w`` (out, in) at full precision and quantize the rest.

    The split is an SVD in float64 (the residual's quantization error, not the SVD's rounding, is what this
    measures). ``rank`` = min(out, in) keeps everything (the residual is zero).
    """
    w64 = w.detach().to(torch.float64)
    U, S, Vh = torch.linalg.svd(w64, full_matrices=False)
    r = int(max(0, min(rank, S.numel())))
    left, right = U[:, :r] * S[:r], Vh[:r]
    # At full rank the residual is zero in exact arithmetic; what is left is the SVD's rounding (~1e-16), which
    # fp16 offsets cannot even represent: store it as the zero it is.
    residual = torch.zeros_like(w64) if r == S.numel() else w64 - left @ right
    return SpectralSplit(r, left, right, quantize(residual, scheme))
