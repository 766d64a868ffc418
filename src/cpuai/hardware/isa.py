"""ISA features that matter for inference, read from the CPU flags, and the kernel's AMX permission.

The functions take the flag set of /proc/cpuinfo (``avx512_vnni``, ``amx_int8``, ...) and whether
the kernel grants AMX tile state (``None`` when unknown); ``MachineInfo`` exposes them as
``isa``, ``vector_isa``, ``has_avx512``, ``has_amx``, ``has_int8_dot``, ``has_bf16`` and
``accelerated_precisions``.
"""

from __future__ import annotations

import ctypes
import platform

# ISA features that matter for inference, as (display name, /proc/cpuinfo flag).
ISA_FEATURES: tuple[tuple[str, str], ...] = (
    ("AVX2", "avx2"),
    ("FMA", "fma"),
    ("AVX512F", "avx512f"),
    ("AVX512BW", "avx512bw"),
    ("AVX512VL", "avx512vl"),
    ("AVX512-VNNI", "avx512_vnni"),
    ("AVX-VNNI", "avx_vnni"),
    ("AVX512-BF16", "avx512_bf16"),
    ("AVX512-FP16", "avx512_fp16"),
    ("AMX-TILE", "amx_tile"),
    ("AMX-INT8", "amx_int8"),
    ("AMX-BF16", "amx_bf16"),
    ("AMX-FP16", "amx_fp16"),
)


def present_features(flags: frozenset[str]) -> dict[str, bool]:
    """The ISA features that matter, by display name, present or not."""
    return {name: flag in flags for name, flag in ISA_FEATURES}


def widest_vector_isa(flags: frozenset[str]) -> str:
    """Widest vector ISA: AVX-512, AVX2, AVX or SSE (unknown when no flags were read)."""
    if not flags:
        return "unknown"
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        return "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    return "AVX" if "avx" in flags else "SSE"


def amx_usable(flags: frozenset[str], amx_os_enabled: bool | None) -> bool:
    """AMX tiles with INT8 or BF16, and the kernel does not refuse AMX state to this process."""
    return "amx_tile" in flags and bool({"amx_int8", "amx_bf16"} & flags) and amx_os_enabled is not False


def int8_dot_available(flags: frozenset[str], amx_os_enabled: bool | None) -> bool:
    """INT8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8): INT8 beats FP32 here."""
    amx_int8 = amx_usable(flags, amx_os_enabled) and "amx_int8" in flags
    return amx_int8 or bool({"avx512_vnni", "avx_vnni"} & flags)


def bf16_available(flags: frozenset[str], amx_os_enabled: bool | None) -> bool:
    """BF16 arithmetic in hardware (AVX512-BF16 or AMX-BF16)."""
    return "avx512_bf16" in flags or (amx_usable(flags, amx_os_enabled) and "amx_bf16" in flags)


def precision_units(flags: frozenset[str], amx_os_enabled: bool | None) -> dict[str, str]:
    """Precisions faster than FP32 here and the unit that does it, e.g. {"int8": "AVX512-VNNI"}."""
    amx = amx_usable(flags, amx_os_enabled)
    out: dict[str, str] = {}
    if amx and "amx_int8" in flags:
        out["int8"] = "AMX-INT8"
    elif "avx512_vnni" in flags:
        out["int8"] = "AVX512-VNNI"
    elif "avx_vnni" in flags:
        out["int8"] = "AVX-VNNI"
    if amx and "amx_bf16" in flags:
        out["bf16"] = "AMX-BF16"
    elif "avx512_bf16" in flags:
        out["bf16"] = "AVX512-BF16"
    if amx and "amx_fp16" in flags:
        out["fp16"] = "AMX-FP16"
    elif "avx512_fp16" in flags:
        out["fp16"] = "AVX512-FP16"
    return out


def amx_permitted() -> bool | None:
    """Ask the kernel for AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM), as oneDNN does; None if unknown."""
    if platform.machine() != "x86_64":
        return None
    sys_arch_prctl, arch_get_xcomp_supp, arch_req_xcomp_perm, xtiledata = 158, 0x1021, 0x1023, 18
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mask = ctypes.c_uint64(0)
        if libc.syscall(sys_arch_prctl, arch_get_xcomp_supp, ctypes.byref(mask)) != 0:
            return False if ctypes.get_errno() == 22 else None  # EINVAL: kernel without AMX support
        if not mask.value & (1 << xtiledata):
            return False
        return libc.syscall(sys_arch_prctl, arch_req_xcomp_perm, ctypes.c_ulong(xtiledata)) == 0
    except (OSError, AttributeError):
        return None
