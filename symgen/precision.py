"""Numeric precision of the network: float32, or bfloat16 autocast with float32 weights.

Only the network runs in reduced precision. Its weights, gradients and optimizer state stay
float32, its outputs are cast back to the input's dtype, and everything numerically sensitive
around it keeps its own precision by design: canonicalization and the OT coupling work in
float64, and the losses, the EMA and the solver's state in float32 (see docs/architecture.md).

``"auto"`` picks bfloat16 where the hardware computes it natively (CPUs with AVX-512 BF16, AMX
or Arm BF16; CUDA GPUs with bfloat16 support) and float32 elsewhere, where bfloat16 would be
emulated and slower.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch

from symgen.provenance import cpuinfo

__all__ = [
    "Precision",
    "PrecisionChoice",
    "bfloat16_is_native",
    "check_precision",
    "cpu_flags",
    "resolve_precision",
    "network_autocast",
]

#: A precision the network runs in.
Precision = Literal["float32", "bfloat16"]
#: A precision setting: one of :data:`Precision`, or ``"auto"``.
PrecisionChoice = Literal["auto", "float32", "bfloat16"]


#: CPU feature flags (``/proc/cpuinfo``) of bfloat16 arithmetic in hardware: x86's AVX-512 BF16
#: and AMX, Arm's BF16 extension.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (``None`` where there is no such file)."""
    info = cpuinfo()
    if info is None:
        return None
    return frozenset(info.get("flags", info.get("Features", "")).split())


def bfloat16_is_native(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 arithmetic in hardware.

    CUDA: ``torch.cuda.is_bf16_supported()``. CPU: the processor's feature flags name AVX-512
    BF16, AMX or Arm BF16 (:data:`NATIVE_BF16_FLAGS`). oneDNN also runs bfloat16 on plain
    AVX-512 CPUs, by emulation, which is slower than float32; so where the flags cannot be read
    (no ``/proc/cpuinfo``), oneDNN's answer is used and ``"auto"`` training times both
    precisions before choosing.

    Examples:
        >>> isinstance(bfloat16_is_native("cpu"), bool)
        True
    """
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    flags = cpu_flags()
    if flags is not None:
        return bool(flags & NATIVE_BF16_FLAGS)
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN, or an older torch
        return False


def check_precision(value: str, *, allow_auto: bool = False) -> None:
    """Raise ``ValueError`` naming ``value`` unless it is a precision (or ``"auto"``).

    Examples:
        >>> check_precision("bfloat16")
        >>> check_precision("auto", allow_auto=True)
    """
    allowed = ("auto", "float32", "bfloat16") if allow_auto else ("float32", "bfloat16")
    if value not in allowed:
        raise ValueError(f"unknown precision {value!r}; choose {', '.join(allowed)}")


def resolve_precision(choice: PrecisionChoice | str, device: torch.device | str) -> Precision:
    """The precision to use for ``choice`` on ``device`` (``"auto"`` decided by the hardware).

    Raises:
        ValueError: an unknown choice.

    Examples:
        >>> resolve_precision("float32", "cpu")
        'float32'
    """
    check_precision(choice, allow_auto=True)
    if choice == "auto":
        return "bfloat16" if bfloat16_is_native(device) else "float32"
    return choice  # type: ignore[return-value]


@contextmanager
def network_autocast(precision: Precision, device_type: str) -> Iterator[None]:
    """Autocast to bfloat16 on ``device_type`` for ``"bfloat16"``; nothing for ``"float32"``."""
    if precision == "float32":
        yield
        return
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
        yield
