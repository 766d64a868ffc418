"""The machine summary every report carries, and whether BF16 is accelerated here.

It comes from ``cpuai.hardware.probe().summary()`` (the same facts ``cpuai doctor`` prints). If the
probe is unavailable the summary falls back to the core budget and /proc/cpuinfo, and says so.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from cpuai import hardware


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary() -> dict[str, Any]:
    """A JSON-ready summary of the CPU, its ISA and the core budget (probe, or a stated fallback)."""
    summary: dict[str, Any]
    probe = getattr(hardware, "probe", None)
    try:
        summary = dict(probe().summary()) if probe is not None else {}
        source = "cpuai.hardware.probe" if summary else "fallback"
    except Exception as exc:  # noqa: BLE001 - a broken probe must not stop a benchmark
        summary, source = {}, f"fallback (probe failed: {exc})"
    if not summary:
        flags = _cpu_flags()
        summary = {
            "cpu": _cpu_model(),
            "logical_cpus": os.cpu_count(),
            "usable_cpus": len(hardware.usable_cpus()),
            "isa": sorted(
                f
                for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
                if f in flags
            ),
        }
    summary.setdefault("core_budget", hardware.core_budget())
    summary["source"] = source
    return summary


def bf16_accelerated() -> bool:
    """True when the CPU runs BF16 in hardware (AVX512_BF16 or AMX-BF16), per the probe or cpuinfo."""
    probe = getattr(hardware, "probe", None)
    if probe is not None:
        try:
            info = probe()
            for attr in ("bf16_accelerated", "bf16", "has_bf16"):
                value = getattr(info, attr, None)
                if isinstance(value, bool):
                    return value
                if callable(value):
                    return bool(value())
        except Exception:  # noqa: BLE001
            pass
    flags = _cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)
