"""PNG plots of reports (matplotlib, Agg backend): latency and throughput against batch or cores."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from cpuai.bench.report import Report, _writable
from cpuai.errors import ConfigError, require


def _pyplot() -> Any:
    require("matplotlib", "train")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series_by(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[str(r[key])].append(r)
    return out


def plot_report(report: Report, path: str | Path) -> Path:
    """Draw ``report`` to a PNG: left latency (median, p99), right throughput."""
    target = _writable(path, ".png")
    if target.suffix.lower() != ".png":
        raise ConfigError(f"--plot {target} is not a .png file", fix="give a file name ending in .png")
    plt = _pyplot()
    fig, (ax_lat, ax_tp) = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = report.rows()
    if report.kind == "scaling":
        xs_key, xlabel = "cores", "cores used"
        lat = [r for r in rows if r.get("median_ms") is not None]
        tp = [r for r in rows if r.get("samples_per_s") is not None]
        lat_x = [r["threads"] for r in lat]
        tp_x = [r["streams"] for r in tp]
        ax_lat.plot(lat_x, [r["median_ms"] for r in lat], "o-", label="median (1 stream × c threads)")
        ax_lat.plot(lat_x, [r["p99_ms"] for r in lat], "s--", label="p99")
        ax_tp.plot(tp_x, [r["samples_per_s"] for r in tp], "o-", label="c streams × 1 thread")
        ax_lat.set_xlabel(xlabel)
        ax_tp.set_xlabel(xlabel)
    else:
        for label, group in _series_by(rows, "label").items():
            group = sorted(group, key=lambda r: r["batch"])
            xs = [r["batch"] for r in group]
            if any(r.get("median_ms") is not None for r in group):
                ax_lat.plot(xs, [r.get("median_ms") for r in group], "o-", label=f"{label} median")
                ax_lat.plot(xs, [r.get("p99_ms") for r in group], "x--", label=f"{label} p99")
            if any(r.get("samples_per_s") is not None for r in group):
                ax_tp.plot(xs, [r.get("samples_per_s") for r in group], "o-", label=label)
        for ax in (ax_lat, ax_tp):
            ax.set_xlabel("batch size")
            ax.set_xscale("log", base=2)
        xs_key = "batch"
    ax_lat.set_ylabel("latency per request (ms)")
    ax_tp.set_ylabel("throughput (samples/s)")
    name = ", ".join(p["name"] for p in report.packages)
    ax_lat.set_title(f"{report.kind}: {name} — latency")
    ax_tp.set_title(f"throughput ({xs_key})")
    for ax in (ax_lat, ax_tp):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    cpu = report.machine.get("model") or report.machine.get("cpu") or ""
    cores = report.machine.get("thread_budget") or report.machine.get("core_budget")
    fig.suptitle(f"cpuai {report.kind} on {cpu} ({cores} cores)", fontsize=9)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
