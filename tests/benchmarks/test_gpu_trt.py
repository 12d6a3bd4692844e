"""The GPU table's trtexec handling, with a FAKE trtexec script on PATH (no GPU, no TensorRT):
version check, --shapes for dynamic engines, and a failed precision kept as a row."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap

import pytest

from benchmarks import gpu_trt
from benchmarks.artifacts import ModelSpec
from benchmarks.common import Context, Settings
from tests.benchmarks.test_benchmarks import TRTEXEC_SUMMARY
from tests.support.fake_engine import make_engine


@pytest.fixture
def fake_trtexec(tmp_path, monkeypatch):
    """A `trtexec` first on PATH: prints a banner for TensorRT `tag`, records its argv."""

    def install(tag: str = "100300", fail: bool = False):
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        calls = tmp_path / "trtexec_calls.jsonl"
        script = bin_dir / "trtexec"
        script.write_text(
            textwrap.dedent(f"""\
            #!{sys.executable}
            import json, sys
            with open({str(calls)!r}, "a") as f:
                f.write(json.dumps(sys.argv[1:]) + "\\n")
            print("&&&& RUNNING TensorRT.trtexec [TensorRT v{tag}] # trtexec " + " ".join(sys.argv[1:]))
            if "--help" in sys.argv:
                sys.exit(0)
            if {fail!r}:
                print("[E] Error[1]: engine plan file is not compatible with this version")
                sys.exit(1)
            print({TRTEXEC_SUMMARY!r})
            """)
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        return calls

    return install


def _calls(path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec", (8, 6, 1)),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec", (10, 3, 0)),
        ("[TensorRT v110400]", (11, 4, 0)),
        ("[12/02/2026-10:00:00] [I] TensorRT version: 10.3.0\n[TensorRT v8601]", (10, 3, 0)),
        ("no banner at all", None),
    ],
)
def test_trtexec_version_is_read_from_its_banner(text, version):
    assert gpu_trt.parse_trtexec_version(text) == version


def test_trtexec_of_another_tensorrt_is_refused(fake_trtexec):
    fake_trtexec("8601")
    found = gpu_trt.trtexec_version(gpu_trt.find_trtexec())
    assert found == (8, 6, 1)
    gpu_trt.check_trtexec_version(found, "8.6.1.6")  # the banner has no build number
    with pytest.raises(gpu_trt.TrtexecError, match=r"trtexec is TensorRT 8\.6\.1 .* 10\.3\.0\.30"):
        gpu_trt.check_trtexec_version(found, "10.3.0.30")
    with pytest.raises(gpu_trt.TrtexecError, match="cannot tell which TensorRT"):
        gpu_trt.check_trtexec_version(None, "10.3.0.30")


def test_a_dynamic_engine_is_timed_at_the_given_shape_a_static_one_as_built(tmp_path, fake_trtexec):
    calls = fake_trtexec()
    (tmp_path / "dyn").mkdir()
    dynamic, _ = make_engine(tmp_path / "dyn", dynamic=True)
    static, _ = make_engine(tmp_path)
    stats = gpu_trt.trtexec_latency(gpu_trt.find_trtexec(), dynamic, 10, (1, 3, 64, 64))
    assert stats["Latency"]["median"] == 1.38
    gpu_trt.trtexec_latency(gpu_trt.find_trtexec(), static, 10, (1, 3, 64, 64))
    dyn_args, static_args = _calls(calls)
    assert "--shapes=input:1x3x64x64" in dyn_args
    assert not any(a.startswith("--shapes") for a in static_args)


def _ctx(tmp_path, engines: dict) -> Context:
    ctx = Context(Settings(iters=1, warmup=0), tmp_path, ModelSpec("tiny", 64, 64))
    ctx.cache["library"] = {p: engines[p].with_suffix(".onnx") for p in ("fp16", "int8")}
    return ctx


def _stub_runners(monkeypatch, engines: dict, broken: set = frozenset()):
    def build(onnx):
        precision = "int8" if "int8" in onnx.name else "fp16"
        if precision in broken:
            raise RuntimeError(f"TensorRT failed to build the {precision} engine: no tactic")
        return engines[precision]

    monkeypatch.setattr(gpu_trt, "build_engine", build)
    monkeypatch.setattr(gpu_trt, "our_latency", lambda *a: {"total": 2.0, "infer": 1.5})
    monkeypatch.setattr(gpu_trt, "ort_cuda_latency", lambda *a: 3.0)


def _engines(tmp_path) -> dict:
    engines = {}
    for precision in ("fp16", "int8"):
        (tmp_path / precision).mkdir()
        path, _ = make_engine(tmp_path / precision, dynamic=True)
        engines[precision] = path.rename(tmp_path / precision / f"tiny.{precision}.engine")
        (tmp_path / precision / "tiny.fp32.engine.json").rename(f"{engines[precision]}.json")
    return engines


def test_a_failed_precision_is_a_row_and_the_table_is_kept(tmp_path, monkeypatch, fake_trtexec):
    calls = fake_trtexec("100300")
    engines = _engines(tmp_path)
    _stub_runners(monkeypatch, engines, broken={"int8"})
    table = gpu_trt._run_gpu(_ctx(tmp_path, engines), 0.0, trt_version="10.3.0.30")
    body = "\n".join(table.lines)
    fp16 = next(line for line in table.lines if line.startswith("| fp16"))
    int8 = next(line for line in table.lines if line.startswith("| int8"))
    assert "1.38" in fp16 and "1.45x" in fp16  # ours 2.0 / trtexec median 1.38
    assert "failed: TensorRT failed to build the int8 engine: no tactic" in int8
    assert "--shapes=input:1x3x64x64" in _calls(calls)[-1]
    assert body.count("\n") >= 3


def test_a_mismatched_trtexec_keeps_our_numbers_and_says_why(tmp_path, monkeypatch, fake_trtexec):
    calls = fake_trtexec("8601")
    engines = _engines(tmp_path)
    _stub_runners(monkeypatch, engines)
    table = gpu_trt._run_gpu(_ctx(tmp_path, engines), 0.0, trt_version="10.3.0.30")
    rows = [line for line in table.lines if line.startswith(("| fp16", "| int8"))]
    assert len(rows) == 2
    for row in rows:
        assert row.split("|")[2].strip().startswith("2.00")  # our runtime's p50 still there
        assert "trtexec is TensorRT 8.6.1" in row
    assert all(call == ["--help"] for call in _calls(calls))  # never asked to load the engine


def test_an_engine_trtexec_cannot_load_is_a_note_not_a_crash(tmp_path, monkeypatch, fake_trtexec):
    fake_trtexec("100300", fail=True)
    engines = _engines(tmp_path)
    _stub_runners(monkeypatch, engines)
    table = gpu_trt._run_gpu(_ctx(tmp_path, engines), 0.0, trt_version="10.3.0.30")
    assert sum("trtexec could not time" in line for line in table.lines) == 2
