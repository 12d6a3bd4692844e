"""The soak plot: RSS against frames, with the warm-up and the +5% band above its end marked."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.soak_result import TARGET_PCT, SoakResult


def plot(result: SoakResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result.run_samples
    warm = result.warm
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    ax.axvspan(
        0, result.config.warmup, color="0.85", label=f"warm-up ({result.config.warmup} frames)"
    )
    ax.axhspan(
        warm.rss_mib, warm.rss_mib * (1 + TARGET_PCT / 100), color="tab:green", alpha=0.15,
        label=f"+{TARGET_PCT:g}% of RSS at warm-up end",
    )  # fmt: skip
    ax.plot([s.frames for s in runs], [s.rss_mib for s in runs], "o-", color="tab:blue", ms=3,
            label="RSS")  # fmt: skip
    ax.set_xlabel("frames")
    ax.set_ylabel("RSS (MiB)")
    ax.set_xlim(0, max(s.frames for s in runs))
    verdict = "met" if result.passed else "NOT met"
    ax.set_title(
        f"soak: {result.frames} frames, growth after warm-up {result.growth_pct:+.2f}% "
        f"(< {TARGET_PCT:g}%: {verdict})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path
