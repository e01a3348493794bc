"""One place decides the device and dtype: cuda > mps > cpu unless the user overrides."""

from __future__ import annotations

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def available_devices() -> list[str]:
    """Devices this process can use, best first, e.g. ``["cuda", "cpu"]``."""
    devices = []
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


def resolve_device(requested: str | None = "auto") -> str:
    """Map ``"auto"``/None to the best available device; validate an explicit request.

    Raises ValueError with a readable message for a device this machine does not have.
    """
    devices = available_devices()
    if requested in (None, "", "auto"):
        return devices[0]
    name = str(requested).split(":")[0]
    if name not in devices:
        raise ValueError(f"Device '{requested}' is not available here; choose one of {['auto', *devices]}.")
    return str(requested)


def resolve_dtype(name: str | None, device: str) -> torch.dtype:
    """The model dtype: float32 by default; half precisions only where the device runs them well."""
    if name in (None, "", "auto"):
        return torch.float32
    if name not in DTYPES:
        raise ValueError(f"Unknown dtype '{name}'; choose one of {list(DTYPES)}.")
    if device == "cpu" and name == "float16":
        # fp16 matmuls on CPU are slow and some kernels are missing; bf16 is the CPU half type.
        raise ValueError("float16 is not supported on CPU; use float32 or bfloat16.")
    return DTYPES[name]


def linalg_device(device: str) -> torch.device:
    """Device for the heavy linear algebra. MPS has no float64 and no eig: fall back to CPU there."""
    return torch.device("cpu") if device.startswith("mps") else torch.device(device)
