"""The engine builder's logic, run against a FAKE tensorrt module (tests/support/fake_tensorrt.py).

These prove which TensorRT calls we make on each version, not that real TensorRT accepts them.
"""

from __future__ import annotations

import json
from dataclasses import replace

import onnx
import pytest

from export.trt_build import EngineBuildError, EngineOptions, build_command, build_engine
from runtime.meta import ModelMeta, TensorSpec, read_meta, write_meta
from runtime.preprocess import Preprocess
from tests.support.fake_cuda import FakeCuda
from tests.support.fake_tensorrt import FakeTrt

LAYERS = ["/m/Conv", "/m/norm1/LayerNormalization", "/m/attn/Softmax_1", "/m/MatMul"]
FP32_NODES = ("/m/norm1/LayerNormalization", "/m/attn/Softmax")


def _artifact(tmp_path, precision="fp16", dynamic=False, name="m"):
    path = tmp_path / f"{name}.{precision}.onnx"
    # A real (empty-graph) ONNX: the external-data guard parses it; the fake parser never does.
    path.write_bytes(
        onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])).SerializeToString()
    )
    shape = ("batch", 3, "height", "width") if dynamic else (1, 3, 64, 64)
    profile = ((1, 3, 64, 64), (1, 3, 128, 128), (2, 3, 256, 256)) if dynamic else None
    meta = ModelMeta(
        variant="tiny",
        precision=precision,
        class_names=("a", "b"),
        palette_rgb=((0, 0, 0), (1, 1, 1)),
        input=TensorSpec("input", "float32", "NCHW", shape, profile),
        output=TensorSpec("logits", "float32", "NCHW", (1, 2, 16, 16)),
        output_kind="logits",
        output_stride=4,
        preprocess=Preprocess(64, 64),
        fp32_nodes=FP32_NODES if precision == "fp16" else (),
    )
    write_meta(path, meta)
    return path


def _build(tmp_path, version="10.3.0", precision="fp16", options=None, **fake_kw):
    """Build with a FAKE tensorrt module; fake_kw: dynamic, dla_cores, build_error, ..."""
    dynamic = fake_kw.pop("dynamic", False)
    trt = FakeTrt(version, layer_names=LAYERS, **fake_kw)
    path = _artifact(tmp_path, precision, dynamic=dynamic)
    result = build_engine(path, options or EngineOptions(), trt=trt, cuda=FakeCuda())
    return trt, result


def test_tensorrt_10_builds_fp16_onnx_strongly_typed_without_precision_flags(tmp_path):
    trt, result = _build(tmp_path, "10.3.0")
    flag = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert trt.fake.networks[0].flags == flag  # no EXPLICIT_BATCH on 10 (deprecated, gone in 11)
    cfg = trt.fake.configs[0]
    assert trt.BuilderFlag.FP16 not in cfg.fake_flags and trt.BuilderFlag.INT8 not in cfg.fake_flags
    assert result.mode == "strongly-typed" and result.precision == "fp16"
    assert cfg.fake_pool_limits[trt.MemoryPoolType.WORKSPACE] == 2 * 1024**3


def test_tensorrt_11_without_precision_flags_builds_strongly_typed(tmp_path):
    trt, result = _build(tmp_path, "11.4.0", precision="int8")
    assert not hasattr(trt.BuilderFlag, "FP16")
    assert result.mode == "strongly-typed" and result.precision == "int8"


def test_tensorrt_8_6_uses_flags_and_pins_fragile_layers_to_fp32(tmp_path):
    trt, result = _build(tmp_path, "8.6.1")
    net, cfg = trt.fake.networks[0], trt.fake.configs[0]
    assert net.flags == 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    assert {trt.BuilderFlag.FP16, trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS} <= cfg.fake_flags
    pinned = {layer.name: layer for layer in net.fake_layers if layer.fake_precision_set}
    assert all(layer.precision == "float32" for layer in pinned.values())
    assert set(pinned) == {"/m/norm1/LayerNormalization", "/m/attn/Softmax_1"}
    assert all(layer.fake_output_types == {0: "float32"} for layer in pinned.values())
    assert result.mode == "builder-flags" and set(result.pinned_fp32_layers) == set(pinned)


def test_tensorrt_8_6_int8_qdq_sets_int8_flag_only(tmp_path):
    trt, _ = _build(tmp_path, "8.6.1", precision="int8")
    cfg = trt.fake.configs[0]
    assert trt.BuilderFlag.INT8 in cfg.fake_flags and trt.BuilderFlag.FP16 not in cfg.fake_flags


def test_profile_shapes_come_from_the_sidecar(tmp_path):
    trt, _ = _build(tmp_path, dynamic=True)
    (profile,) = trt.fake.configs[0].fake_profiles
    assert profile.fake_shapes == {"input": ((1, 3, 64, 64), (1, 3, 128, 128), (2, 3, 256, 256))}


def test_static_export_adds_no_profile(tmp_path):
    trt, _ = _build(tmp_path)
    assert trt.fake.configs[0].fake_profiles == []


def test_timing_cache_is_written_and_reused_by_the_next_build(tmp_path):
    _, first = _build(tmp_path)
    assert not first.timing_cache_reused and first.timing_cache.read_bytes() == b"fake-timing-cache"
    trt2 = FakeTrt("10.3.0", layer_names=LAYERS)
    second = build_engine(_artifact(tmp_path, "int8"), EngineOptions(), trt=trt2, cuda=FakeCuda())
    assert second.timing_cache_reused
    assert trt2.fake.configs[0].fake_timing_cache.fake_data == b"fake-timing-cache"


def test_a_refused_timing_cache_is_replaced_by_an_empty_one(tmp_path):
    (tmp_path / "tensorrt.timing.cache").write_bytes(b"from-another-gpu")
    trt, result = _build(tmp_path, rejected_cache=b"from-another-gpu")
    assert not result.timing_cache_reused
    assert trt.fake.configs[0].fake_timing_cache.fake_data == b""


def test_a_timing_cache_from_another_tensorrt_is_dropped_with_its_errors(tmp_path):
    """TensorRT returns None (and logs errors) for a cache of another version; the build goes on
    with an empty one, and a later build failure does not blame the cache."""
    (tmp_path / "tensorrt.timing.cache").write_bytes(b"from-tensorrt-8.6")
    trt, result = _build(tmp_path, corrupt_cache=b"from-tensorrt-8.6")
    assert not result.timing_cache_reused and trt.fake.configs[0].fake_timing_cache.fake_data == b""
    with pytest.raises(EngineBuildError) as err:
        _build(tmp_path, options=EngineOptions(force=True), corrupt_cache=b"from-tensorrt-8.6",
               build_error="some layer has no implementation")  # fmt: skip
    assert "some layer has no implementation" in str(err.value)
    assert "kMAGIC_TAG" not in str(err.value)


def test_fp32_layer_names_match_exactly_or_with_the_parsers_counter(tmp_path):
    """onnx-tensorrt names a node's further layers <node>_<counter>; a layer with an integer
    output is not pinned at all; a kept-FP32 node with no layer of its name is warned about."""
    layers = ["/m/norm1/LayerNormalization", "/m/norm1/LayerNormalization_37:int32",
              "/m/attn/Softmax_12", "/m/attn/SoftmaxCast", "/m/Conv"]  # fmt: skip
    trt = FakeTrt("8.6.1", layer_names=layers)
    path = _artifact(tmp_path, "fp16")
    meta = read_meta(path)
    write_meta(path, replace(meta, fp32_nodes=(*FP32_NODES, "/m/gone/ReduceMean")))
    with pytest.warns(UserWarning, match=r"1 of the 3 nodes .* /m/gone/ReduceMean"):
        result = build_engine(path, EngineOptions(), trt=trt, cuda=FakeCuda())
    net = trt.fake.networks[0]
    pinned = {layer.name: layer for layer in net.fake_layers if layer.fake_precision_set}
    assert set(pinned) == {"/m/norm1/LayerNormalization", "/m/attn/Softmax_12"}
    assert pinned["/m/norm1/LayerNormalization"].fake_output_types == {0: "float32"}
    int_layer = net.fake_layers[1]  # its requested output type reads FLOAT, its tensor is int32
    assert int_layer.get_output_type(0) == "float32" and int_layer.get_output(0).dtype == "int32"
    assert not int_layer.fake_precision_set and int_layer.fake_output_types == {}
    assert set(result.pinned_fp32_layers) == set(pinned)


def test_pinning_an_integer_output_layer_fails_the_fake_8_6_build_as_the_real_one_can(tmp_path):
    """The fake's OBEY_PRECISION_CONSTRAINTS check: the old pinning (every matched layer, the
    type read from get_output_type) would have pinned the int32 layer and failed here."""
    from export import trt_compat
    from runtime.trt_compat import make_logger

    trt = FakeTrt("8.6.1", layer_names=["/m/attn/Softmax", "/m/attn/Softmax_3:int32"])
    builder = trt.Builder(make_logger(trt))
    net = builder.create_network(0)
    for layer in net.fake_layers:  # what the old code did
        layer.precision = trt.float32
    cfg = builder.create_builder_config()
    cfg.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    assert builder.build_serialized_network(net, cfg) is None
    net = builder.create_network(0)
    assert trt_compat.constrain_fp32_layers(trt, net, ["/m/attn/Softmax"]) == ["/m/attn/Softmax"]
    assert builder.build_serialized_network(net, cfg) == b"FAKE-ENGINE"


def test_an_invalid_profile_is_refused(tmp_path):
    path = _artifact(tmp_path, "fp16", dynamic=True)
    meta = read_meta(path)
    bad = ((1, 3, 256, 256), (1, 3, 128, 128), (2, 3, 512, 512))  # min > opt
    write_meta(path, replace(meta, input=replace(meta.input, profile=bad)))
    with pytest.raises(EngineBuildError, match="refused the optimization profile"):
        build_engine(path, EngineOptions(), trt=FakeTrt("10.3.0"), cuda=FakeCuda())


def test_fp32_engines_are_built_without_tf32(tmp_path):
    trt, result = _build(tmp_path, precision="fp32")
    assert result.mode == "fp32"
    assert trt.BuilderFlag.TF32 in trt.fake.configs[0].fake_cleared
    (tmp_path / "fp16").mkdir()
    trt16, _ = _build(tmp_path / "fp16", precision="fp16")
    assert trt16.fake.configs[0].fake_cleared == set()  # FP16/INT8 graphs carry their own types


def test_one_logger_per_tensorrt_module_and_errors_per_operation():
    """TensorRT keeps the first logger it is given; later Builders/Runtimes share it."""
    from runtime.trt_compat import make_logger

    trt = FakeTrt("10.3.0")
    logger = make_logger(trt)
    assert make_logger(trt) is logger and make_logger(FakeTrt("10.3.0")) is not logger
    logger.log(trt.ILogger.ERROR, "old")
    mark = logger.mark()
    logger.log(trt.ILogger.ERROR, "new")
    assert logger.errors_since(mark) == ["new"]
    logger.forget_since(mark)
    assert logger.errors_since(mark) == [] and logger.errors[-1] == "old"


def test_the_logger_never_raises_into_tensorrt(recwarn):
    import warnings

    from runtime.trt_compat import make_logger

    trt = FakeTrt("10.3.0")
    logger = make_logger(trt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what `python -W error` does
        logger.log(trt.ILogger.WARNING, "a warning TensorRT logs")  # must not raise


def test_dla_core_with_gpu_fallback(tmp_path):
    trt, _ = _build(tmp_path, options=EngineOptions(dla_core=1), dla_cores=2)
    cfg = trt.fake.configs[0]
    assert cfg.default_device_type == trt.DeviceType.DLA and cfg.DLA_core == 1
    assert trt.BuilderFlag.GPU_FALLBACK in cfg.fake_flags


def test_dla_on_tensorrt_10_uses_precision_flags(tmp_path):
    trt, result = _build(tmp_path, options=EngineOptions(dla_core=0), dla_cores=1)
    assert result.mode == "builder-flags"
    assert trt.BuilderFlag.FP16 in trt.fake.configs[0].fake_flags


def test_dla_refuses_fp32(tmp_path):
    with pytest.raises(ValueError, match="DLA runs FP16 and INT8 only"):
        _build(tmp_path, precision="fp32", options=EngineOptions(dla_core=0), dla_cores=1)


def test_dla_core_missing_on_the_device_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="has 0 DLA core"):
        _build(tmp_path, options=EngineOptions(dla_core=0), dla_cores=0)


def test_out_of_memory_build_says_so(tmp_path):
    msg = "Requested amount of GPU memory (4294967296 bytes) could not be allocated"
    with pytest.raises(EngineBuildError, match=r"ran out of memory.*--workspace-gib"):
        _build(tmp_path, build_error=msg)
    assert not list(tmp_path.glob("*.engine"))


def test_parse_errors_are_reported(tmp_path):
    with pytest.raises(EngineBuildError, match=r"could not parse.*Unsupported op Foo"):
        _build(tmp_path, parse_errors=["Unsupported op Foo"])


def test_engine_sidecar_records_provenance_and_the_build_command(tmp_path):
    _, result = _build(tmp_path, options=EngineOptions(workspace_gib=1.5))
    meta = read_meta(result.path)
    assert result.path.read_bytes() == b"FAKE-ENGINE"  # a plain engine file, no header
    assert meta.precision == "fp16"
    assert meta.engine["tensorrt_version"] == "10.3.0"
    assert meta.engine["gpu_name"] == "Fake GPU" and meta.engine["compute_capability"] == "8.7"
    assert meta.engine["build_command"].startswith("scaseg-export build-engine ")
    assert "--workspace-gib 1.5" in meta.engine["build_command"]
    assert meta.hashes["source_onnx"] and meta.hashes["artifact"]
    json.loads((tmp_path / "m.fp16.engine.json").read_text())


def test_existing_engine_needs_force(tmp_path):
    _build(tmp_path)
    trt = FakeTrt("10.3.0", layer_names=LAYERS)
    with pytest.raises(FileExistsError, match="force=True"):
        build_engine(tmp_path / "m.fp16.onnx", EngineOptions(), trt=trt, cuda=FakeCuda())


def test_implicit_int8_calibrator_is_refused_on_tensorrt_11(tmp_path):
    trt = FakeTrt("11.4.0", layer_names=LAYERS)
    path = _artifact(tmp_path, "fp32")
    options = EngineOptions(implicit_int8=True, calib_data="generated", calib_samples=1)
    with pytest.raises(RuntimeError, match="no implicit INT8 calibrator"):
        build_engine(path, options, trt=trt, cuda=FakeCuda())


def test_build_command_is_exact():
    options = EngineOptions(workspace_gib=1, dla_core=0)
    cmd = build_command("out/m.int8.onnx", options)
    assert cmd == "scaseg-export build-engine out/m.int8.onnx --workspace-gib 1 --dla-core 0"


def test_implicit_int8_entropy_calibrator_on_tensorrt_8_6(tmp_path):
    trt = FakeTrt("8.6.1", layer_names=LAYERS)
    cuda = FakeCuda()
    options = EngineOptions(implicit_int8=True, calib_data="generated", calib_samples=2)
    path = _artifact(tmp_path, "fp32")
    result = build_engine(path, options, trt=trt, cuda=cuda)
    cfg = trt.fake.configs[0]
    assert result.precision == "int8" and result.mode == "implicit-int8"
    assert (
        read_meta(result.path).calibration["library"].endswith("IInt8EntropyCalibrator2 (implicit)")
    )
    assert trt.BuilderFlag.INT8 in cfg.fake_flags
    # The fake build fed both batches through one device buffer (allocated inside an active
    # context, as pycuda requires), then the buffer was freed and the cache written.
    assert len(trt.fake.calibration) == 2 and trt.fake.calibration[0] == trt.fake.calibration[1]
    (pointer,) = trt.fake.calibration[0]
    assert (pointer, (1, 3, 64, 64)) in cuda.device.htod
    assert cuda.allocated == set() and not cuda.closed  # a caller's CUDA handle stays open
    caches = list(tmp_path.glob("m.fp32.calib-*.cache"))
    assert len(caches) == 1 and caches[0].read_bytes() == b"fake-calibration-table"
    # A rebuild reads the cache instead of calibrating again.
    trt2 = FakeTrt("8.6.1", layer_names=LAYERS)
    build_engine(path, EngineOptions(implicit_int8=True, calib_data="generated", calib_samples=2, force=True), trt=trt2,
                 cuda=FakeCuda())  # fmt: skip
    assert trt2.fake.calibration == ["cache"]


def test_external_data_outside_the_folder_is_refused_before_tensorrt_parses(tmp_path):
    """TensorRT's parser follows external-data paths; the guard refuses before it is reached."""
    from onnx import TensorProto, helper

    from runtime.meta import MetaError

    path = _artifact(tmp_path, "fp32")
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0] * 4)
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [x], [weight])
    path.write_bytes(helper.make_model(graph).SerializeToString())
    trt = FakeTrt("10.3.0", layer_names=LAYERS)
    with pytest.raises(MetaError, match=r"refusing to load.*etc/passwd"):
        build_engine(path, EngineOptions(), trt=trt, cuda=FakeCuda())
    assert not trt.fake.networks  # the fake parser was never handed the file


def test_force_rebuild_drops_the_old_sidecar_before_the_new_engine_lands(tmp_path, monkeypatch):
    """A kill between the engine's rename and its sidecar must not leave the old sidecar."""
    import os
    from pathlib import Path

    import runtime.atomic
    from export.artifacts import engine_path_for
    from runtime.meta import sidecar_path

    path = _artifact(tmp_path, "fp16")
    engine = engine_path_for(path)
    engine.write_bytes(b"old engine")
    sidecar_path(engine).write_text("{}")
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append((Path(dst).name, sidecar_path(engine).exists()))
        real_replace(src, dst)

    monkeypatch.setattr(runtime.atomic.os, "replace", replace)
    build_engine(path, EngineOptions(force=True), trt=FakeTrt("10.3.0", layer_names=LAYERS),
                 cuda=FakeCuda())  # fmt: skip
    assert (engine.name, False) in seen  # the sidecar was gone when the engine was renamed
    assert read_meta(engine).hashes["artifact"]  # and the new one describes the new engine


def test_implicit_int8_of_a_user_model_needs_its_calibration_data(tmp_path):
    """Generated scenes are the demo model's data: another model's implicit INT8 build is refused
    before TensorRT is touched, naming --calib-data."""
    trt = FakeTrt("8.6.1", layer_names=LAYERS)
    path = _artifact(tmp_path, "fp32")
    with pytest.raises(ValueError, match="--implicit-int8 needs --calib-data"):
        build_engine(path, EngineOptions(implicit_int8=True), trt=trt, cuda=FakeCuda())
    assert not trt.fake.configs  # refused before any TensorRT object was made


def test_dla_refuses_a_dynamic_shape_before_tensorrt_is_imported(tmp_path):
    """DLA needs min = opt = max; checked from the sidecar, so with no TensorRT at all."""
    path = _artifact(tmp_path, "fp16", dynamic=True)
    with pytest.raises(ValueError, match=r"needs a static input shape \(min = opt = max\)"):
        build_engine(path, EngineOptions(dla_core=0), trt=None, cuda=FakeCuda())


def test_dla_accepts_a_profile_with_min_equal_to_max(tmp_path):
    path = _artifact(tmp_path, "fp16", dynamic=True)
    meta = read_meta(path)
    one = ((1, 3, 64, 64),) * 3
    write_meta(path, replace(meta, input=replace(meta.input, profile=one)))
    trt = FakeTrt("10.3.0", layer_names=LAYERS, dla_cores=1)
    build_engine(path, EngineOptions(dla_core=0), trt=trt, cuda=FakeCuda())
    assert trt.fake.configs[0].fake_profiles[0].fake_shapes == {"input": one}


def test_dla_on_tensorrt_8_refuses_the_qdq_int8_onnx_but_not_implicit_int8(tmp_path):
    with pytest.raises(ValueError, match=r"DLA on TensorRT 8\.6\.1 cannot run the Q/DQ"):
        _build(tmp_path, "8.6.1", precision="int8", options=EngineOptions(dla_core=0), dla_cores=1)
    (tmp_path / "implicit").mkdir()
    trt = FakeTrt("8.6.1", layer_names=LAYERS, dla_cores=1)
    options = EngineOptions(dla_core=0, implicit_int8=True, calib_data="generated", calib_samples=1)
    result = build_engine(
        _artifact(tmp_path / "implicit", "fp32"), options, trt=trt, cuda=FakeCuda()
    )
    assert result.mode == "implicit-int8" and trt.fake.configs[0].DLA_core == 0
    (tmp_path / "ten").mkdir()
    _, result = _build(tmp_path / "ten", "10.3.0", precision="int8",
                       options=EngineOptions(dla_core=0), dla_cores=1)  # fmt: skip
    assert result.precision == "int8"


def test_dla_sidecar_records_how_many_layers_dla_takes(tmp_path):
    _, result = _build(tmp_path, options=EngineOptions(dla_core=0), dla_cores=1,
                       dla_incapable={"/m/attn/Softmax_1"})  # fmt: skip
    layers = read_meta(result.path).engine["dla_layers"]
    assert layers["on_dla"] == 3 and layers["total"] == 4
    (tmp_path / "gpu").mkdir()
    _, plain = _build(tmp_path / "gpu")
    assert "dla_layers" not in read_meta(plain.path).engine


def test_dla_build_with_no_layer_dla_can_run_is_refused(tmp_path):
    with pytest.raises(EngineBuildError, match="none of the 4 layers can run on DLA core 0"):
        _build(tmp_path, options=EngineOptions(dla_core=0), dla_cores=1, dla_incapable=set(LAYERS))
    assert not list(tmp_path.glob("*.engine"))


def test_implicit_int8_cache_is_keyed_by_the_onnx_bytes_not_its_name(tmp_path):
    """Weights re-exported under the same file name must be calibrated again."""
    path = _artifact(tmp_path, "fp32")
    options = EngineOptions(implicit_int8=True, calib_data="generated", calib_samples=1)
    trt = FakeTrt("8.6.1", layer_names=LAYERS)
    build_engine(path, options, trt=trt, cuda=FakeCuda())
    assert trt.fake.calibration != ["cache"]
    graph = onnx.helper.make_graph([], "re-exported weights", [], [])  # same name, other bytes
    path.write_bytes(onnx.helper.make_model(graph).SerializeToString())
    trt2 = FakeTrt("8.6.1", layer_names=LAYERS)
    build_engine(path, replace(options, force=True), trt=trt2, cuda=FakeCuda())
    assert trt2.fake.calibration != ["cache"]  # calibrated again, not the old scales
    assert len(list(tmp_path.glob("m.fp32.calib-*.cache"))) == 2
    trt3 = FakeTrt("8.6.1", layer_names=LAYERS)
    build_engine(path, replace(options, force=True), trt=trt3, cuda=FakeCuda())
    assert trt3.fake.calibration == ["cache"]  # same bytes, same data: the cache is reused


def test_build_engine_cli_refuses_dla_on_a_dynamic_onnx_without_tensorrt(tmp_path):
    """Through the real console entry point, on a machine without TensorRT: exit 2, one line."""
    import subprocess
    import sys

    from tests.support.deploy_models import build_model

    onnx = build_model(tmp_path / "tiny.fp16.onnx", dynamic=True, precision="fp16")
    done = subprocess.run(
        [sys.executable, "-m", "export.cli", "build-engine", str(onnx), "--dla-core", "0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1 and "needs a static input shape" in lines[0], lines
    assert "TensorRT" not in lines[0]  # refused before TensorRT was looked for


def test_the_logger_drops_info_and_verbose_before_touching_the_message(monkeypatch):
    """TensorRT calls an ILogger subclass for every message of a build; INFO/VERBOSE must cost
    one comparison: the message is never formatted, stored or warned about."""
    import warnings

    from runtime.trt_compat import make_logger

    class Message:
        touched = 0

        def __str__(self) -> str:
            Message.touched += 1
            return "message"

        def __format__(self, spec: str) -> str:
            return str(self)

    trt = FakeTrt("8.6.1")
    logger = make_logger(trt)
    warned = []
    monkeypatch.setattr(warnings, "warn", lambda *a, **k: warned.append(a))
    for severity in (trt.ILogger.INFO, trt.ILogger.VERBOSE):
        logger.log(severity, Message())
    assert Message.touched == 0 and warned == [] and logger.total == 0
    logger.log(trt.ILogger.WARNING, Message())
    logger.log(trt.ILogger.ERROR, Message())
    assert len(warned) == 1 and logger.errors == ["message"] and Message.touched == 2
