"""Profile reports: one JSON document (stable schema, for CI), CSV tables, a PNG, a console table,
and the comparison of two reports.

JSON schema (SCHEMA_VERSION 1); a key is never renamed or removed without bumping the version:

    schema_version, tool, created_utc, command,
    model:       path, name, variant, precision, input {name, dtype, shape}, output {...},
                 fused_preprocess, fused_argmax
    run:         mode ("sequential" | "pipelined"), frames, warmup, source, stages_timed {stage: meaning}
    stages:      {stage: LatencyStats}  (only stages that ran, in pipeline order)
    end_to_end:  LatencyStats | null
    samples_ms:  {stage | "end_to_end": [ms, ...]}  (timed frames only)
    layers:      null | {source, runs, total_ms, layers [...], op_types [...]}
    memory:      rss_peak_mb, rss_peak_source, rss_now_mb, gpu_used_mb, gpu_source,
                 engine_device_memory_mb, model_file_mb
    environment: os, cpu, memory_total_mb, gpu, jetson, versions, backend

LatencyStats: count, mean_ms, p50_ms, p90_ms, p99_ms, min_ms, max_ms, std_ms, jitter_ms (p99 - p50),
throughput_fps.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rich.table import Table

from runtime.atomic import atomic_path, atomic_write_text
from runtime.deps import require
from runtime.errors import UserInputError
from runtime.jsonfile import read_json
from runtime.profiling.profiler import STAGE_MEANINGS, STAGES, LatencyStats, StageRecorder
from runtime.text import printable

SCHEMA_VERSION = 1
STAT_FIELDS = tuple(LatencyStats.__dataclass_fields__)
FILES = {"json": "profile.json", "stages": "stages.csv", "layers": "layers.csv",
         "op_types": "op_types.csv", "png": "profile.png"}  # fmt: skip


class ReportError(UserInputError):
    """A report that cannot be read or compared."""


def model_section(path: str | os.PathLike, meta: object) -> dict:
    return {
        "path": str(path),
        "name": Path(path).name,
        "variant": meta.variant,
        "precision": meta.precision,
        "input": {"name": meta.input.name, "dtype": meta.input.dtype, "shape": list(meta.input.shape)},
        "output": {"name": meta.output.name, "dtype": meta.output.dtype, "shape": list(meta.output.shape)},
        "fused_preprocess": meta.fused_preprocess,
        "fused_argmax": meta.fused_argmax,
        "estimated_peak_activation_mb": (getattr(meta, "memory", None) or {}).get("peak_activation_mb"),
    }  # fmt: skip


def build_report(
    *,
    tool: str,
    command: str,
    model: dict,
    recorder: StageRecorder,
    warmup: int,
    source: str,
    pipelined: bool,
    layers: object | None,
    memory: object,
    environment: dict,
) -> dict:
    """The JSON document described in this module's docstring."""
    stages, e2e = recorder.stats(skip=warmup, pipelined=pipelined)
    samples = {s: [round(v, 4) for v in recorder.samples[s][warmup:]] for s in stages}
    samples["end_to_end"] = [round(v, 4) for v in recorder.end_to_end_ms(warmup)]
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": tool,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "model": model,
        "run": {
            "mode": "pipelined" if pipelined else "sequential",
            "frames": e2e.count if e2e else 0,
            "warmup": warmup,
            "source": source,
            "stages_timed": {s: STAGE_MEANINGS[s] for s in (*stages, "end_to_end")},
        },
        "stages": {s: stats.to_dict() for s, stats in stages.items()},
        "end_to_end": e2e.to_dict() if e2e else None,
        "samples_ms": samples,
        "layers": layers.to_dict() if layers is not None else None,
        "memory": memory.to_dict(),
        "environment": environment,
    }


# ---------------------------------------------------------------------------------------------
# Files


def write_report(report: dict, out_dir: Path, png: bool = True) -> tuple[list[Path], str | None]:
    """Write JSON and CSVs (and the PNG if asked) into out_dir, each atomically.

    Returns (paths written, why the PNG was skipped or None). Only a missing matplotlib skips
    the PNG; every other failure raises.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_text(out_dir / FILES["json"], json.dumps(report, indent=2) + "\n")]
    written.append(atomic_write_text(out_dir / FILES["stages"], stages_csv(report)))
    if report["layers"]:
        written.append(atomic_write_text(out_dir / FILES["layers"], layers_csv(report, "layers")))
        written.append(
            atomic_write_text(out_dir / FILES["op_types"], layers_csv(report, "op_types"))
        )
    skipped = None
    if png:
        try:
            written.append(write_png(report, out_dir / FILES["png"]))
        except ImportError as err:
            skipped = f"PNG not written: {err}"
    return written, skipped


def _csv(rows: list[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def stages_csv(report: dict) -> str:
    rows = [["stage", *STAT_FIELDS]]
    for name, stats in report["stages"].items():
        rows.append([name, *(stats[f] for f in STAT_FIELDS)])
    if report["end_to_end"]:
        rows.append(["end_to_end", *(report["end_to_end"][f] for f in STAT_FIELDS)])
    return _csv(rows)


def layers_csv(report: dict, key: str) -> str:
    rows = [["rank", "name", "op_type", "mean_ms", "share", "count"]]
    for rank, t in enumerate(report["layers"][key], 1):
        rows.append([rank, t["name"], t["op_type"], t["mean_ms"], t["share"], t["count"]])
    return _csv(rows)


def write_png(report: dict, path: Path, top_k: int = 15) -> Path:
    """Latency histogram, per-stage bars and top layers in one figure (matplotlib, lazily)."""
    require("matplotlib", "to draw the profile PNG (the JSON and CSV do not need it)")
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede pyplot
    import matplotlib.pyplot as plt

    fig, (ax_hist, ax_stage, ax_layer) = plt.subplots(1, 3, figsize=(18, 5.5))
    _plot_histogram(ax_hist, report)
    _plot_stages(ax_stage, report)
    _plot_layers(ax_layer, report, top_k)
    fig.suptitle(_title(report), fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _title(report: dict) -> str:
    env, model = report["environment"], report["model"]
    device = (env.get("gpu") or {}).get("name") or env["cpu"].get("model") or "?"
    backend = (env.get("backend") or {}).get("description") or "?"
    return _plot_text(
        f"{model['name']} ({model['precision']}) - {backend} - {device} - {report['created_utc']}"
    )


def _plot_text(text: str) -> str:
    """Text for matplotlib: control characters escaped, '$' literal (not a mathtext formula,
    which an odd count in a layer or file name would make fail while saving)."""
    return printable(text, limit=300, markup=False).replace("$", r"\$")


def _plot_histogram(ax, report: dict) -> None:
    for key in ("end_to_end", "infer"):
        values = report["samples_ms"].get(key) or []
        if values:
            ax.hist(values, bins=min(40, max(5, len(values) // 3)), alpha=0.6, label=key)
    e2e = report["end_to_end"]
    if e2e:
        for q, style in (("p50_ms", "-"), ("p99_ms", "--")):
            ax.axvline(e2e[q], color="k", linestyle=style, linewidth=1, label=f"e2e {q[:3]}")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("frames")
    ax.set_title("latency per frame")
    ax.legend(fontsize=8)


def _plot_stages(ax, report: dict) -> None:
    names = list(report["stages"])
    means = [report["stages"][n]["mean_ms"] for n in names]
    p99 = [report["stages"][n]["p99_ms"] for n in names]
    ax.barh(names, means, color="tab:blue", label="mean")
    ax.scatter(p99, names, color="tab:red", marker="|", s=200, label="p99", zorder=3)
    ax.invert_yaxis()
    ax.set_xlabel("ms per frame")
    ax.set_title(f"per stage ({report['run']['mode']})")
    ax.legend(fontsize=8)


def _plot_layers(ax, report: dict, top_k: int) -> None:
    layers = (report["layers"] or {}).get("layers") or []
    if not layers:
        ax.text(
            0.5, 0.5, "no per-layer profile\n(scaseg-profile --layers)", ha="center", va="center"
        )
        ax.set_axis_off()
        return
    top = layers[:top_k]
    labels = [_plot_text(_short(t["name"], 38) + f" [{t['op_type']}]") for t in top]
    ax.barh(labels, [t["mean_ms"] for t in top], color="tab:green")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("ms per inference")
    ax.set_title(f"top {len(top)} layers")


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3) :]


# ---------------------------------------------------------------------------------------------
# Console


def stages_table(report: dict) -> Table:
    table = Table(title="latency per frame (ms)", title_justify="left")
    table.add_column("stage", no_wrap=True)
    for col in ("mean", "p50", "p90", "p99", "min", "max", "jitter", "FPS"):
        table.add_column(col, justify="right")
    rows = [*report["stages"].items()]
    if report["end_to_end"]:
        rows.append(("end to end", report["end_to_end"]))
    for name, s in rows:
        table.add_row(
            name,
            *(f"{s[k]:.2f}" for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms", "min_ms", "max_ms")),
            f"{s['jitter_ms']:.2f}",
            f"{s['throughput_fps']:.1f}",
        )
    return table


def layers_table(report: dict, top_k: int = 10) -> Table | None:
    layers = report["layers"]
    if not layers:
        return None
    source = printable(layers["source"])
    table = Table(title=f"top {top_k} layers - {source}", title_justify="left")
    for col, justify in (
        ("#", "right"),
        ("layer", "left"),
        ("op", "left"),
        ("ms", "right"),
        ("share", "right"),
    ):
        table.add_column(col, justify=justify)
    for rank, t in enumerate(layers["layers"][:top_k], 1):
        table.add_row(
            str(rank),
            printable(_short(t["name"], 60)),  # layer and op names come from the model file
            printable(t["op_type"], limit=60),
            f"{t['mean_ms']:.3f}",
            f"{t['share']:.1%}",
        )
    return table


def summary_lines(report: dict) -> list[str]:
    """Memory and environment in a few lines (what the timings were measured on), as rich
    markup with every value escaped."""
    env, mem = report["environment"], report["memory"]
    cpu, gpu, jet = env["cpu"], env.get("gpu") or {}, env.get("jetson") or {}
    p = printable
    lines = [f"backend: {p((env.get('backend') or {}).get('description'))}"]
    lines.append(f"cpu: {p(cpu.get('model'))} ({p(cpu.get('usable_cores'))} usable cores)")
    if gpu:
        lines.append(f"gpu: {p(gpu.get('name'))} (compute {p(gpu.get('compute_capability'))})")
    if jet:
        lines.append(f"jetson: {p(jet.get('model'))}, power mode {p(jet.get('power_mode'))}")
    mb = [f"RSS peak {_mb(mem['rss_peak_mb'])}"]
    if mem["gpu_used_mb"] is not None:
        mb.append(f"GPU {_mb(mem['gpu_used_mb'])}")
    if mem["engine_device_memory_mb"] is not None:
        mb.append(f"engine device memory {_mb(mem['engine_device_memory_mb'])}")
    estimate = (report.get("model") or {}).get("estimated_peak_activation_mb")
    if isinstance(estimate, (int, float)):
        mb.append(f"activations estimated at export {_mb(estimate)}")
    lines.append("memory: " + ", ".join(mb))
    return lines


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MB"


# ---------------------------------------------------------------------------------------------
# Comparison


@dataclass(frozen=True)
class RatioRow:
    stage: str
    a_ms: float  # p50 of report A
    b_ms: float
    p50_ratio: float  # B / A: above 1 means B is slower
    mean_ratio: float
    p99_ratio: float


@dataclass(frozen=True)
class Comparison:
    rows: tuple[RatioRow, ...]
    differences: tuple[str, ...]  # environment / model fields that differ: "what changed"

    @property
    def end_to_end(self) -> RatioRow | None:
        return next((r for r in self.rows if r.stage == "end_to_end"), None)


def read_report(path: str | os.PathLike) -> dict:
    """A profile.json to compare: within the JSON budgets, schema version checked, and the
    fields a comparison reads checked for their types."""
    fix = "pass a profile.json written by scaseg-profile"
    try:
        data = read_json(path, ReportError, fix)
    except OSError as err:
        raise ReportError(f"cannot read profile {path}: {err.strerror}; {fix}") from err
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise ReportError(
            f"{path}: schema_version {printable(repr(version), markup=False)} is not "
            f"{SCHEMA_VERSION}; re-run scaseg-profile with this version to compare"
        )
    problem = _shape_problem(data)
    if problem:
        raise ReportError(f"{path}: {problem}; {fix}")
    return data


def _shape_problem(data: dict) -> str | None:
    """What a comparison would trip over in a report, or None."""
    stages = data.get("stages")
    if not isinstance(stages, dict):
        return "'stages' is not an object"
    stats = [*stages.values(), *([data["end_to_end"]] if data.get("end_to_end") else [])]
    for entry in stats:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), (int, float)) for k in ("p50_ms", "mean_ms", "p99_ms")
        ):
            return "a stage has no numeric p50_ms, mean_ms and p99_ms"
    model, env, run = data.get("model"), data.get("environment"), data.get("run")
    if not all(isinstance(x, dict) for x in (model, env, run)):
        return "'model', 'environment' or 'run' is not an object"
    if not isinstance(env.get("cpu"), dict) or not isinstance(env.get("versions"), dict):
        return "'environment' has no 'cpu' and 'versions' objects"
    return None


def compare_reports(a: dict, b: dict) -> Comparison:
    """B relative to A, stage by stage (stages present in both) and end to end."""
    order = [*STAGES, "end_to_end"]
    sa = {**a["stages"], **({"end_to_end": a["end_to_end"]} if a["end_to_end"] else {})}
    sb = {**b["stages"], **({"end_to_end": b["end_to_end"]} if b["end_to_end"] else {})}
    rows = tuple(
        RatioRow(s, sa[s]["p50_ms"], sb[s]["p50_ms"], *(_ratio(sb[s][k], sa[s][k]) for k in ("p50_ms", "mean_ms", "p99_ms")))
        for s in order if s in sa and s in sb
    )  # fmt: skip
    return Comparison(rows, tuple(_differences(a, b)))


def _ratio(b: float, a: float) -> float:
    return b / a if a > 0 else float("inf")


def _differences(a: dict, b: dict) -> list[str]:
    fields = {
        "model": lambda r: r["model"]["name"],
        "precision": lambda r: r["model"]["precision"],
        "backend": lambda r: (r["environment"].get("backend") or {}).get("description"),
        "cpu": lambda r: r["environment"]["cpu"].get("model"),
        "gpu": lambda r: (r["environment"].get("gpu") or {}).get("name"),
        "power mode": lambda r: (r["environment"].get("jetson") or {}).get("power_mode"),
        "mode": lambda r: r["run"]["mode"],
    }
    p = printable  # values from two report files, shown as rich markup
    out = [f"{k}: {p(get(a))} -> {p(get(b))}" for k, get in fields.items() if get(a) != get(b)]
    va, vb = a["environment"]["versions"], b["environment"]["versions"]
    out += [
        f"{p(k)}: {p(va.get(k))} -> {p(vb.get(k))}"
        for k in sorted(set(va) | set(vb))
        if va.get(k) != vb.get(k)
    ]
    return out


def comparison_table(comparison: Comparison, name_a: str, name_b: str) -> Table:
    names = f"A = {printable(name_a)}, B = {printable(name_b)}"
    table = Table(title=f"B / A  ({names}; > 1 means B is slower)", title_justify="left")
    for col in ("stage", "A p50 ms", "B p50 ms", "p50 B/A", "mean B/A", "p99 B/A"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for r in comparison.rows:
        table.add_row(
            r.stage,
            f"{r.a_ms:.2f}",
            f"{r.b_ms:.2f}",
            f"{r.p50_ratio:.2f}x",
            f"{r.mean_ratio:.2f}x",
            f"{r.p99_ratio:.2f}x",
        )
    return table
