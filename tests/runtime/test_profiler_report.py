"""Profile reports (stable JSON schema, CSV, PNG, comparison) and environment capture."""

from __future__ import annotations

import csv
import json

import pytest

from runtime.deps import MissingDependencyError
from runtime.profiling import envinfo
from runtime.profiling.envinfo import capture_environment, jetson_info, measure_memory
from runtime.profiling.report import (
    SCHEMA_VERSION,
    ReportError,
    compare_reports,
    read_report,
    write_report,
)
from tests.support.profile_reports import MODEL, make_report

TOP_KEYS = {"schema_version", "tool", "created_utc", "command", "model", "run", "stages",
            "end_to_end", "samples_ms", "layers", "memory", "environment"}  # fmt: skip
STAT_KEYS = {"count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "std_ms",
             "jitter_ms", "throughput_fps"}  # fmt: skip


def test_report_has_the_documented_schema():
    report = make_report()
    assert set(report) == TOP_KEYS and report["schema_version"] == SCHEMA_VERSION
    assert list(report["stages"]) == ["decode", "preprocess", "infer"]
    for stats in (*report["stages"].values(), report["end_to_end"]):
        assert set(stats) == STAT_KEYS
    assert report["end_to_end"]["count"] == 6  # 8 frames - 2 warm-up
    assert set(report["run"]["stages_timed"]) == {"decode", "preprocess", "infer", "end_to_end"}
    assert len(report["samples_ms"]["infer"]) == 6
    assert set(report["memory"]) >= {"rss_peak_mb", "gpu_used_mb", "engine_device_memory_mb"}
    env = report["environment"]
    assert set(env) == {"os", "cpu", "memory_total_mb", "gpu", "jetson", "versions", "backend"}
    json.dumps(report)  # JSON-ready as it is


def test_files_are_written_and_csv_matches_json(tmp_path):
    report = make_report()
    written, skipped = write_report(report, tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["layers.csv", "op_types.csv", "profile.json", "profile.png", "stages.csv"]
    assert skipped is None
    rows = list(csv.DictReader((tmp_path / "out" / "stages.csv").open()))
    assert [r["stage"] for r in rows] == ["decode", "preprocess", "infer", "end_to_end"]
    assert float(rows[2]["p50_ms"]) == report["stages"]["infer"]["p50_ms"]
    assert (tmp_path / "out" / "profile.png").read_bytes()[:4] == b"\x89PNG"
    assert read_report(tmp_path / "out" / "profile.json") == report


def test_missing_matplotlib_skips_only_the_png_and_says_so(tmp_path, monkeypatch):
    import runtime.profiling.report as pr

    def no_matplotlib(module, purpose):
        raise MissingDependencyError(
            f"{module} is needed {purpose} but is not installed: pip install matplotlib"
        )

    monkeypatch.setattr(pr, "require", no_matplotlib)
    written, skipped = write_report(make_report(layers=False), tmp_path)
    assert sorted(p.name for p in written) == ["profile.json", "stages.csv"]
    assert "PNG not written" in skipped and "pip install matplotlib" in skipped


def test_compare_gives_b_over_a_ratios_and_what_changed():
    a, b = make_report(10.0), make_report(20.0)
    b["model"] = {**MODEL, "precision": "int8"}
    comparison = compare_reports(a, b)
    infer = next(r for r in comparison.rows if r.stage == "infer")
    assert infer.p50_ratio == pytest.approx(20.5 / 10.5)
    assert next(r for r in comparison.rows if r.stage == "decode").p50_ratio == pytest.approx(1.0)
    assert comparison.end_to_end.p50_ratio == pytest.approx(23.0 / 13.0, rel=1e-3)
    assert "precision: fp32 -> int8" in comparison.differences


def test_unreadable_or_other_version_reports_are_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReportError, match="is not valid JSON"):
        read_report(bad)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema_version": 0}))
    with pytest.raises(ReportError, match="schema_version 0 is not 1"):
        read_report(old)


def test_environment_capture_never_fails_here():
    env = capture_environment()
    assert env["cpu"]["logical_cores"] >= 1 and env["versions"]["python"]
    memory = measure_memory()
    assert memory.rss_peak_mb > 0 and memory.gpu_used_mb is None


def test_jetson_power_mode_and_clocks_are_read_where_present(monkeypatch):
    files = {
        "/etc/nv_tegra_release": "# R36 (release), REVISION: 3.0, GCID: 1, BOARD: generic",
        "/proc/device-tree/model": "NVIDIA Jetson AGX Orin Developer Kit",
    }
    monkeypatch.setattr(envinfo, "read_text", lambda path: files.get(str(path)))
    monkeypatch.setattr(envinfo, "run_quiet", lambda args, timeout_s=5.0: (
        "NV Power Mode: MAXN\n0" if args[0] == "nvpmodel" else None))  # fmt: skip
    info = jetson_info()
    assert info["model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert info["l4t_release"].startswith("# R36") and info["power_mode"] == "MAXN"
    assert info["power_mode_id"] == "0"


def test_no_jetson_here_is_none(monkeypatch):
    monkeypatch.setattr(envinfo, "read_text", lambda path: None)
    assert jetson_info() is None


def test_nvidia_smi_without_compute_cap_is_asked_again_without_it(monkeypatch):
    """A FAKE nvidia-smi from a driver that does not know compute_cap (it refuses the query)."""
    asked = []

    def fake_smi(args, timeout_s=5.0):
        asked.append(args[1])
        if "compute_cap" in args[1]:
            return None  # "Field "compute_cap" is not a valid field to query."
        return "NVIDIA T4, 470.57, 15109, 300, 405, 1590, P8, 9.53, 70.00"

    monkeypatch.setattr(envinfo, "run_quiet", fake_smi)
    (gpu,) = envinfo.nvidia_smi_gpus()
    assert len(asked) == 2 and "compute_cap" not in asked[1]
    assert gpu["name"] == "NVIDIA T4" and gpu["driver_version"] == "470.57"
    assert "compute_cap" not in gpu


def _printed(renderable) -> str:
    import io

    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=300, color_system=None).print(renderable, soft_wrap=True)
    return out.getvalue()


def test_names_from_the_model_and_the_reports_print_as_text(tmp_path):
    """Layer and file names with rich markup, ESC and '$' print, and plot, as themselves."""
    from runtime.profiling.layer_profile import aggregate
    from runtime.profiling.report import comparison_table, layers_table, summary_lines

    report = make_report()
    names = {"[/]conv\x1b[2J": "Conv[red]", "mm$^^$": "MatMul"}  # '$^^$': bad mathtext
    report["layers"] = aggregate({n: 1.0 for n in names}, names, 2, "test").to_dict()
    text = _printed(layers_table(report))
    assert "[/]conv\\x1b[2J" in text and "Conv[red]" in text and "\x1b" not in text
    b = make_report(20.0)
    b["environment"]["cpu"]["model"] = "cpu [/]\x1b]0;pwned\x07"
    b["model"] = {**MODEL, "name": "[bold]m.onnx"}
    comparison = compare_reports(make_report(), b)
    text = _printed(comparison_table(comparison, "a[/].json", "b.json"))
    text += "".join(_printed(f"differs: {line}") for line in comparison.differences)
    text += "".join(_printed(line) for line in summary_lines(b))
    assert "a[/].json" in text and "[bold]m.onnx" in text and "cpu [/]\\x1b]0;pwned\\x07" in text
    assert "\x1b" not in text and "\x07" not in text
    write_report(report, tmp_path / "png")  # '$...$' would be a mathtext formula
    assert (tmp_path / "png" / "profile.png").exists()


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: r.update(stages={"infer": {"p50_ms": "fast"}}),
        lambda r: r.update(environment=[]),
        lambda r: r.update(model=None),
    ],
)
def test_reports_missing_what_a_comparison_reads_are_refused(tmp_path, edit):
    report = make_report()
    edit(report)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(report))
    with pytest.raises(ReportError, match=r"pass a profile\.json written by scaseg-profile"):
        read_report(path)


def test_a_report_nested_past_the_recursion_limit_is_refused(tmp_path):
    path = tmp_path / "profile.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ReportError, match="far deeper than 64 levels"):
        read_report(path)
