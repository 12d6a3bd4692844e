"""The DeepStream output: an nvinfer config that matches the sidecar, and a Softmax ONNX whose
class map is the artifact's (checked by running both with ONNX Runtime; DeepStream itself needs
a GPU and is not run here)."""

from __future__ import annotations

import configparser

import numpy as np
import onnxruntime as ort
import pytest

from export.deepstream import (
    DeepStreamApproximationWarning,
    DeepStreamConfigError,
    write_deepstream_config,
)
from runtime.meta import read_meta
from tests.support.deploy_models import ORIN_ENGINE, build_model


def read_config(path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text())  # nvinfer reads a GLib key file: INI syntax
    return parser["property"]


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_nvinfer_config_matches_sidecar(tmp_path, dynamic):
    onnx = build_model(tmp_path / "tiny.fp16.onnx", dynamic=dynamic, precision="fp16")
    meta = read_meta(onnx)
    with pytest.warns(DeepStreamApproximationWarning, match="one scale to all channels"):
        path = write_deepstream_config(onnx, tmp_path / "ds")
    cfg = read_config(path)
    assert cfg["network-type"] == "2" and cfg["network-mode"] == "2"  # segmentation, FP16
    assert cfg["infer-dims"] == f"3;{meta.preprocess.height};{meta.preprocess.width}"
    assert cfg["num-detected-classes"] == str(meta.num_classes)
    assert cfg["output-blob-names"] == "probs"
    assert cfg["model-color-format"] == "0"  # RGB, as the sidecar's preprocessing
    assert [float(v) for v in cfg["offsets"].split(";")] == pytest.approx(meta.preprocess.mean)
    assert float(cfg["net-scale-factor"]) == pytest.approx(3 / sum(meta.preprocess.std))
    assert cfg["onnx-file"] == "tiny.fp16.deepstream.onnx"
    assert cfg["model-engine-file"] == "tiny.fp16.deepstream.onnx_b1_gpu0_fp16.engine"
    assert "int8-calib-file" not in cfg
    labels = (tmp_path / "ds" / cfg["labelfile-path"]).read_text().splitlines()
    assert labels == list(meta.class_names)
    assert "nvinfer config-file-path=" + path.name in (tmp_path / "ds" / "pipeline.txt").read_text()


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_nvsegvisual_draws_the_output_size_not_the_input_size(tmp_path, dynamic):
    """nvinfer's class map has the output tensor's H x W (stride 4 here): nvsegvisual must too."""
    onnx = build_model(tmp_path / "tiny.fp32.onnx", dynamic=dynamic)
    meta = read_meta(onnx)
    with pytest.warns(DeepStreamApproximationWarning):
        path = write_deepstream_config(onnx, tmp_path / "ds")
    h, w = meta.preprocess.height // meta.output_stride, meta.preprocess.width // meta.output_stride
    if not dynamic:
        assert tuple(meta.output.shape[-2:]) == (h, w)
    pipeline = (tmp_path / "ds" / "pipeline.txt").read_text()
    assert pipeline.count(f"nvsegvisual width={w} height={h}") == 2
    assert f"nvsegvisual {w}x{h} = the class map nvinfer outputs" in pipeline
    assert f"width x height: {w}x{h}" in path.read_text()  # the derivation, in the config too


def test_an_int8_onnx_is_refused_for_nvinfers_onnx_route(tmp_path):
    """nvinfer builds INT8 only with an int8-calib-file; a Q/DQ ONNX has none, so the config
    would silently build FP16 under another name at every start."""
    onnx = build_model(tmp_path / "tiny.int8.onnx", precision="int8")
    with pytest.raises(
        DeepStreamConfigError, match=r"int8-calib-file.*prebuilt_engine=True"
    ) as err:
        write_deepstream_config(onnx, tmp_path / "ds")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "ds").exists()


def test_int8_engine_route_points_nvinfer_at_the_engine_build_engine_writes(tmp_path):
    from export.artifacts import engine_path_for
    from runtime.meta import check_artifact_hash

    onnx = build_model(tmp_path / "tiny.int8.onnx", precision="int8")
    with pytest.warns(DeepStreamApproximationWarning):
        path = write_deepstream_config(onnx, tmp_path / "ds", prebuilt_engine=True)
    cfg = read_config(path)
    assert cfg["network-mode"] == "1"  # the engine's precision
    assert "onnx-file" not in cfg and "int8-calib-file" not in cfg  # nvinfer never builds
    ds_onnx = tmp_path / "ds" / "tiny.int8.deepstream.onnx"
    assert cfg["model-engine-file"] == engine_path_for(ds_onnx).name
    assert f"scaseg-export build-engine {ds_onnx.name}" in path.read_text()
    meta = read_meta(ds_onnx)  # the sidecar build-engine needs, describing the Softmax output
    assert meta.output.name == "probs" and meta.precision == "int8"
    check_artifact_hash(ds_onnx, meta)


def test_softmax_onnx_keeps_the_class_map(tmp_path):
    onnx = build_model(tmp_path / "tiny.fp32.onnx")
    with pytest.warns(DeepStreamApproximationWarning):
        cfg = read_config(write_deepstream_config(onnx, tmp_path / "ds"))
    x = np.random.default_rng(0).normal(0, 2, (1, 3, 64, 64)).astype(np.float32)
    (logits,) = ort.InferenceSession(str(onnx)).run(None, {"input": x})
    ds = ort.InferenceSession(str(tmp_path / "ds" / cfg["onnx-file"]))
    assert [o.name for o in ds.get_outputs()] == ["probs"]
    (probs,) = ds.run(None, {"input": x})
    assert probs.dtype == np.float32 and probs.shape == logits.shape
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probs.argmax(axis=1), logits.argmax(axis=1))


def test_artifacts_nvinfer_cannot_take_are_refused(tmp_path):
    fused = build_model(tmp_path / "fused.fp32.onnx", fused=True)
    with pytest.raises(DeepStreamConfigError, match="export a plain graph"):
        write_deepstream_config(fused, tmp_path / "ds")
    engine = build_model(tmp_path / "tiny.fp16.engine", precision="fp16", engine=ORIN_ENGINE)
    with pytest.raises(DeepStreamConfigError, match=r"pass the \.onnx"):
        write_deepstream_config(engine, tmp_path / "ds")
    plain = build_model(tmp_path / "tiny.fp32.onnx")
    with pytest.raises(DeepStreamConfigError, match="batch size 4"):
        write_deepstream_config(plain, tmp_path / "ds", batch_size=4)


@pytest.mark.slow
def test_export_cli_gives_an_int8_export_the_engine_route(tmp_path):
    """`scaseg-export --precision int8 --deepstream DIR` never writes network-mode=1 with an
    onnx-file: the config reads the engine build-engine makes from DIR's Softmax ONNX."""
    from typer.testing import CliRunner

    from export import cli
    from export.artifacts import engine_path_for

    out, ds = tmp_path / "out", tmp_path / "ds"
    args = ["--precision", "int8", "--deepstream", str(ds), "--out", str(out), "--input-size",
            "64x64", "--verify-frames", "4", "--calib-samples", "4", "--engines", "no"]  # fmt: skip
    result = CliRunner().invoke(cli.app, args, prog_name="scaseg-export")
    assert result.exit_code == 0, result.output
    (config,) = ds.glob("config_infer_*.txt")
    cfg = read_config(config)
    assert cfg["network-mode"] == "1" and "onnx-file" not in cfg
    ds_onnx = ds / "scaseg_t_demo.int8.deepstream.onnx"
    assert cfg["model-engine-file"] == engine_path_for(ds_onnx).name
    assert f"scaseg-export build-engine {ds_onnx}" in " ".join(result.output.split())


@pytest.mark.parametrize("kind", ["slide", "keep-ratio"])
def test_slide_and_keep_ratio_sidecars_are_refused(tmp_path, kind):
    """nvinfer stretches each frame to one input and runs it once: it cannot cut windows or
    keep the aspect ratio. One line that says why and what to do; nothing written."""
    from tests.support.deploy_models import build_keep_ratio_model, build_slide_model

    build = build_slide_model if kind == "slide" else build_keep_ratio_model
    onnx = build(tmp_path / "m.fp32.onnx")
    match = "nvinfer cannot do" if kind == "slide" else "nvinfer's one fixed input size"
    with pytest.raises(DeepStreamConfigError, match=match) as err:
        write_deepstream_config(onnx, tmp_path / "ds")
    message = str(err.value)
    assert "\n" not in message and "re-export with" in message and "scaseg-run" in message
    assert not (tmp_path / "ds").exists()


def test_the_refusal_is_available_before_exporting():
    """An export that knows its plan (whole or slide, the resize) can refuse --deepstream
    before running, with the same line."""
    from export.deepstream import frame_geometry_refusal
    from runtime.slide import Inference

    assert frame_geometry_refusal("m", Inference(), "stretch", None) is None
    slide = frame_geometry_refusal(
        "m", Inference("slide", (256, 256), (192, 192)), "keep_ratio", (1024, 512)
    )
    assert isinstance(slide, DeepStreamConfigError)
    assert "slide crop 256x256 stride 192x192" in str(slide)
    keep = frame_geometry_refusal("m", Inference(), "keep_ratio", (1024, 512))
    assert "scale (1024, 512)" in str(keep)
