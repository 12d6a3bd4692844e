"""The soak harness (benchmarks/soak.py) at a few hundred frames: the structure of its result, the
Markdown section it writes between its markers, and its plot. No timing is asserted; the memory
verdict of so short a run means nothing, so it is not asserted either."""

from __future__ import annotations

import pytest

from benchmarks import soak, soak_harness, soak_plot, soak_report, soak_result
from benchmarks.run import END as BENCH_END
from benchmarks.run import START as BENCH_START
from tests.support.tiny_onnx import build_tiny_model

FRAMES, EVERY = 300, 50
SAMPLE_MD = (
    "# Benchmarks\n\nintro\n\n"
    f"{BENCH_START}\n\n### 1. a table\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n{BENCH_END}\n\n"
    "## Reading the results (hand-written)\n\nkept as it is\n"
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("soak_cache")


@pytest.fixture(scope="module")
def tiny(cache):
    return build_tiny_model(cache / "tiny.fp32.onnx")


@pytest.fixture(scope="module")
def result(tiny, cache, tmp_path_factory):
    config = soak_result.SoakConfig(
        frames=FRAMES, every=EVERY, model=tiny, cache=cache, frame_hw=(96, 160), video_frames=40,
        workdir=tmp_path_factory.mktemp("soak_out"), progress=False,
    )  # fmt: skip
    return soak_harness.run_soak(config)


def test_samples_every_n_frames_and_growth_from_warmup_end(result):
    assert result.frames == FRAMES
    assert [s.frames for s in result.samples] == list(range(0, FRAMES + 1, EVERY))
    assert result.config.warmup == 2 * EVERY and result.warm.frames == 2 * EVERY
    assert result.last.frames == FRAMES and result.after.frames == FRAMES
    warm, last = result.warm.rss_mib, result.last.rss_mib
    assert result.growth_pct == pytest.approx(100 * (last - warm) / warm)
    assert result.max_growth_pct >= result.growth_pct
    assert all(s.rss_mib > 0 and s.fds > 0 and s.threads > 0 for s in result.samples)
    # the pipeline's per-frame latency list grows with the frames and is freed afterwards
    assert result.last.stats_mib > result.warm.stats_mib > 0 and result.after.stats_mib == 0
    assert result.passed == (result.growth_pct < soak_result.TARGET_PCT)


def test_the_real_sinks_wrote_every_frame(result):
    assert f"({FRAMES} frames" in result.outputs["overlay"]
    assert f"({FRAMES} lines" in result.outputs["jsonl"]


def test_section_is_written_between_markers_and_the_rest_kept(result, tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(SAMPLE_MD)
    block = soak_report.render(
        result, "python -m benchmarks.soak --frames 300", "docs/soak_rss.png"
    )
    soak_report.write_section(md, block)
    text = md.read_text()
    assert text.startswith(SAMPLE_MD.rstrip("\n")) and text.count(soak_report.START) == 1
    section = text.split(soak_report.START, 1)[1].split(soak_report.END, 1)[0]
    assert "growth" in section and "![RSS vs frames](docs/soak_rss.png)" in section
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(result.samples) + 1  # header, samples, "after close"

    # a second run replaces the section in place; text after it survives byte for byte
    md.write_text(text + "\n## later\n\nalso kept\n")
    soak_report.write_section(md, soak_report.render(result, "second run", None))
    again = md.read_text()
    assert again.count(soak_report.START) == again.count(soak_report.END) == 1
    assert "second run" in again and "python -m benchmarks.soak --frames 300" not in again
    assert again.startswith(SAMPLE_MD.rstrip("\n"))
    assert again.endswith(f"{soak_report.END}\n\n## later\n\nalso kept\n")


def test_hand_written_notes_in_the_section_survive_a_rewrite(result, tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(SAMPLE_MD)
    soak_report.write_section(md, soak_report.render(result, "first run", None))
    notes = f"{soak_report.NOTES_START}\n\n**Reading:** by hand.\n\n{soak_report.NOTES_END}"
    md.write_text(md.read_text().replace(soak_report.END, notes + "\n\n" + soak_report.END))
    for run in ("second run", "third run"):
        soak_report.write_section(md, soak_report.render(result, run, None))
        text = md.read_text()
        assert text.count(notes) == 1 and run in text and text.count(soak_report.START) == 1
        assert text.index(soak_report.START) < text.index(notes) < text.index(soak_report.END)
        assert text.startswith(SAMPLE_MD.rstrip("\n"))


def test_section_is_appended_or_the_file_created(result, tmp_path):
    block = soak_report.render(result, "cmd", None)
    created = tmp_path / "new.md"
    soak_report.write_section(created, block)
    assert created.read_text().startswith("# Benchmarks\n\n" + soak_report.START)
    bench_only = tmp_path / "bench_only.md"
    bench_only.write_text(SAMPLE_MD)
    soak_report.write_section(bench_only, block)
    assert bench_only.read_text() == SAMPLE_MD + "\n" + block


def test_plot_is_a_png(result, tmp_path):
    path = soak_plot.plot(result, tmp_path / "docs" / "soak_rss.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_writes_section_and_plot(tiny, cache, tmp_path):
    md, png = tmp_path / "BENCHMARKS.md", tmp_path / "docs" / "soak_rss.png"
    md.write_text(SAMPLE_MD)
    code = soak.main(
        ["--frames", "150", "--every", "50", "--model", str(tiny), "--cache", str(cache),
         "--frame-size", "160x96", "--video-frames", "40", "--workdir", str(tmp_path / "out"),
         "--write", str(md), "--plot", str(png), "--no-progress"]
    )  # fmt: skip
    assert code in (0, 1)  # 1: growth past 5%, possible in a run this short
    text = md.read_text()
    assert text.startswith(SAMPLE_MD.rstrip("\n")) and "![RSS vs frames](docs/soak_rss.png)" in text
    assert "--frames 150" in text and png.is_file()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="warmup"):
        soak_result.SoakConfig(frames=100, every=50)  # warm-up 100 frames leaves nothing to measure
    with pytest.raises(SystemExit):
        soak.main(["--frame-size", "641x360"])


@pytest.mark.slow
def test_default_model_is_the_exported_tiny_variant(tmp_path):
    path = soak_harness.tiny_model(tmp_path, 64)
    assert path.name == "scaseg_tiny_64.fp32.onnx" and (tmp_path / f"{path.name}.json").is_file()
    mtime = path.stat().st_mtime_ns
    assert (
        soak_harness.tiny_model(tmp_path, 64) == path and path.stat().st_mtime_ns == mtime
    )  # cached
