"""Benchmark suite: its parsing and bookkeeping (fast), and every table at tiny sizes (slow).

The smoke tests prove each table runs and reports; the numbers they produce at 128x128 with the
tiny variant mean nothing.
"""

from __future__ import annotations

import textwrap

import pytest

from benchmarks import attention, footprint, gpu_trt, pipeline_fps, precision, roofline
from benchmarks.artifacts import ModelSpec
from benchmarks.common import Context, Settings
from benchmarks.run import END, START, main, write_markdown
from runtime.deps import available

TRTEXEC_SUMMARY = textwrap.dedent(
    """\
    [11/25/2026-10:00:00] [I] === Performance summary ===
    [11/25/2026-10:00:00] [I] Throughput: 812.3 qps
    [11/25/2026-10:00:00] [I] Latency: min = 1.30 ms, max = 2.10 ms, mean = 1.40 ms, median = 1.38 ms, percentile(90%) = 1.5 ms
    [11/25/2026-10:00:00] [I] H2D Latency: min = 0.10 ms, max = 0.20 ms, mean = 0.12 ms, median = 0.11 ms, percentile(90%) = 0.13 ms
    [11/25/2026-10:00:00] [I] GPU Compute Time: min = 1.10 ms, max = 1.80 ms, mean = 1.20 ms, median = 1.19 ms, percentile(90%) = 1.3 ms
    [11/25/2026-10:00:00] [I] D2H Latency: min = 0.05 ms, max = 0.09 ms, mean = 0.06 ms, median = 0.06 ms, percentile(90%) = 0.07 ms
    """
)


def test_trtexec_summary_is_parsed():
    stats = gpu_trt.parse_trtexec(TRTEXEC_SUMMARY)
    assert stats["Latency"]["median"] == 1.38 and stats["GPU Compute Time"]["mean"] == 1.20
    assert stats["H2D Latency"]["min"] == 0.10 and stats["D2H Latency"]["max"] == 0.09


def test_gpu_table_is_skipped_with_its_reason_without_a_gpu(tmp_path):
    if gpu_trt.skip_reason() is None:
        pytest.skip("this machine has TensorRT, a CUDA binding, trtexec and a GPU")
    table = gpu_trt.run(Context(Settings(), tmp_path, ModelSpec("tiny", 64, 64)))
    assert "skipped:" in table.lines[0] and "tensorrt" in table.lines[0]


def test_results_block_is_replaced_and_the_rest_kept(tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    write_markdown(md, f"{START}\nold\n{END}\n")
    md.write_text(
        "# Benchmarks\n\nintro\n\n" + md.read_text().split("\n\n", 1)[1] + "\n## Triton\nkept\n"
    )
    write_markdown(md, f"{START}\nnew\n{END}\n")
    text = md.read_text()
    assert "new" in text and "old" not in text
    assert text.startswith("# Benchmarks\n\nintro") and text.rstrip().endswith("## Triton\nkept")


def test_self_attention_map_size_at_1024_is_known():
    assert attention.attention_entries(1024, "self") == (256 * 256) ** 2  # stage 1, one head
    assert attention.attention_entries(1024, "strip") == 256 * 256 * 32 * 32


def test_child_peak_rss_is_the_childs_own(tmp_path, monkeypatch):
    (tmp_path / "alloc200.py").write_text(
        "x = bytearray(200 * 1024 * 1024)\nx[::4096] = b'1' * len(x[::4096])\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    run = footprint.run_child(["alloc200"], tmp_path / "status.txt")
    assert run.returncode == 0, run.stderr_tail
    assert 200 < run.peak_rss_mb < 320  # this test process's own RSS does not leak in


def test_bad_table_name_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--only", "nope"])
    assert "unknown table(s) nope" in capsys.readouterr().err


# --- every table at tiny sizes ----------------------------------------------------------------


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    settings = Settings(iters=2, warmup=1, eval_frames=2, calib_frames=2, video_frames=6, threads=1,
                        sizes=(64,), quick=True)  # fmt: skip
    return Context(settings, tmp_path_factory.mktemp("bench"), ModelSpec("tiny", 64, 64))


@pytest.mark.slow
def test_precision_table(ctx):
    table = precision.run(ctx)
    body = "\n".join(table.lines)
    for name in (
        "PyTorch eager FP32",
        "ONNX Runtime FP32",
        "FP16",
        "TensorRT Q/DQ",
        "CPU QDQ U8S8",
        "QOperator",
    ):
        assert name in body
    assert {t.name for t in table.targets} >= {
        "ONNX Runtime FP32 >= 1.3x faster than PyTorch eager"
    }
    assert "ONNX Runtime FP32" in ctx.cache["latency_p50_ms"]
    if available("openvino"):
        assert "OpenVINO INT8 Q/DQ artifact" in body and "inference precision f32" in body
        assert any(t.name.startswith("INT8 on OpenVINO >= 2x") for t in table.targets)


@pytest.mark.slow
def test_attention_table(ctx):
    table = attention.run(ctx)
    body = "\n".join(table.lines)
    assert body.count("| ok |") == 3 and "strip" in body and "self" in body
    assert table.targets[0].met is not None


@pytest.mark.slow
def test_pipeline_table(ctx):
    table = pipeline_fps.run(ctx)
    assert "scaseg-run pipeline FPS" in "\n".join(table.lines)
    assert table.targets[0].name == "video pipeline efficiency >= 0.9"


@pytest.mark.slow
def test_footprint_table(ctx):
    table = footprint.run(ctx)
    assert "PyTorch runner" in "\n".join(table.lines) and table.targets[0].met is not None
    if available("openvino"):
        assert "scaseg-run --backend openvino" in "\n".join(table.lines)


@pytest.mark.slow
def test_roofline_table(ctx):
    table = roofline.run(ctx)
    body = "\n".join(table.lines)
    assert "matmul peak" in body and "ONNX Runtime FP32" in body
