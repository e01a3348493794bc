"""Large solver buffers backed by transparent huge pages (Linux, CPU).

A whole-model Lanczos basis row is 0.54 GB (SmolLM2, float32): 131 k pages of 4 KiB, each faulted in by the
kernel on first write, and a Hessian-vector product makes about 350 k faults in all. In the virtual machines this
project runs on faults are expensive: SmolLM2's whole-model lambda_max (6 products) took 24.8 / 22.7 / 21.2 s with
a plain basis and 20.0 / 19.5 / 20.4 s with this one (fresh processes, alternating). Backed by 2 MiB pages a row
takes 262 faults. The kernel honours the advice when /sys/kernel/mm/transparent_hugepage/enabled is "always" or
"madvise" (the common default); elsewhere, or off Linux, or off the CPU, these are plain torch.empty buffers.
"""

from __future__ import annotations

import ctypes
import math
import sys

import torch

HUGE_PAGE = 1 << 21  # 2 MiB, x86-64 and arm64 with 4 KiB base pages
_MADV_HUGEPAGE = 14  # linux/mman.h
_MIN_BYTES = 16 * HUGE_PAGE  # below this the faults are not worth an aligned over-allocation

_libc = None


def _madvise_huge(address: int, length: int) -> bool:
    """Advise the (Linux) kernel to back [address, address + length) with huge pages; False where it cannot."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        return _libc.madvise(address, length, _MADV_HUGEPAGE) == 0
    except (OSError, AttributeError):
        return False


def empty_huge(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """torch.empty(shape) whose memory starts on a 2 MiB boundary and is advised into huge pages (CPU only;
    elsewhere plain torch.empty). Contents are uninitialised, as torch.empty's. The advice is given before
    the first write, so every fully covered 2 MiB span is faulted in as one huge page."""
    device = torch.device(device)
    nbytes = math.prod(int(size) for size in shape) * dtype.itemsize
    if device.type != "cpu" or nbytes < _MIN_BYTES or not sys.platform.startswith("linux"):
        return torch.empty(shape, dtype=dtype, device=device)
    raw = torch.empty(nbytes + HUGE_PAGE, dtype=torch.uint8)
    offset = -raw.data_ptr() % HUGE_PAGE
    aligned = raw[offset : offset + nbytes]
    _madvise_huge(aligned.data_ptr(), nbytes)
    return aligned.view(dtype).view(shape)
