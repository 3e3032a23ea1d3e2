"""What the machine runs natively: CPU vector capability, bf16 support, and ``precision="auto"``.

bf16 pays off on a CPU only when both hold: the chip has bf16 instructions (AVX512-BF16 dot
products or AMX tiles, from ``/proc/cpuinfo`` flags on Linux) *and* torch dispatches to its AVX512
kernels (``torch.backends.cpu.get_cpu_capability()``; ``ATEN_CPU_CAPABILITY=default|avx2`` selects
kernels that convert bf16 to fp32 and back, slower than fp32). On CUDA, ``torch.cuda.is_bf16_supported``.
Nothing is probed on import.
"""
from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import Any

import torch

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""either marks a CPU with native bf16 arithmetic (Cooper Lake / Sapphire Rapids and later, Zen 4+)"""
BF16_TORCH_CAPABILITIES = ("AVX512",)
"""prefixes of torch CPU kernel levels that use the bf16 instructions (DEFAULT, AVX2 and NO AVX do not)"""


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty off Linux or when unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / aarch64
            return frozenset(value.split())
    return frozenset()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_cpu_capability() -> str:
    """torch's CPU kernel level: DEFAULT, AVX2, AVX512, ... (honours ATEN_CPU_CAPABILITY)."""
    return str(torch.backends.cpu.get_cpu_capability())


def native_bf16_cpu(flags: frozenset[str] | set[str] | None = None, capability: str | None = None) -> bool:
    """bf16 instructions present (avx512_bf16 or amx_bf16) and torch using its AVX512 kernels."""
    flags = cpu_flags() if flags is None else flags
    capability = torch_cpu_capability() if capability is None else capability
    return any(f in flags for f in BF16_CPU_FLAGS) and capability.upper().startswith(BF16_TORCH_CAPABILITIES)


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively (faster than fp32), not by emulation."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return native_bf16_cpu()
    return False  # mps, xpu, ...: stay in fp32 until measured


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """``auto`` -> ``bf16`` where :func:`native_bf16`, else ``fp32``; other values unchanged."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def cpu_capability() -> dict[str, Any]:
    """A record of the CPU for benchmark results and run params: model, torch kernel level, bf16/AMX flags."""
    flags = cpu_flags()
    info: dict[str, Any] = {
        "cpu": _cpu_model(), "arch": platform.machine(), "torch": torch.__version__,
        "torch_capability": torch_cpu_capability(),
        "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
        "amx_tile": "amx_tile" in flags, "amx_bf16": "amx_bf16" in flags,
        "native_bf16": native_bf16_cpu(flags),
    }
    if torch.cuda.is_available():
        info["cuda"] = torch.cuda.get_device_name()
        info["cuda_bf16"] = native_bf16("cuda")
    return info


def capability_line(info: dict[str, Any] | None = None) -> str:
    """One human line of :func:`cpu_capability`, for markdown headers and logs."""
    info = cpu_capability() if info is None else info
    yes = lambda k: "yes" if info.get(k) else "no"  # noqa: E731
    line = (f"{info['cpu']} ({info['arch']}), torch {info['torch']} kernels {info['torch_capability']}, "
            f"avx512_bf16 {yes('avx512_bf16')}, amx_bf16 {yes('amx_bf16')} -> native bf16 {yes('native_bf16')}")
    if "cuda" in info:
        line += f"; GPU {info['cuda']} (bf16 {yes('cuda_bf16')})"
    return line
