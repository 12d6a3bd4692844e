"""The sidecar schema: round trip, refusal of unknown versions and broken files, atomic writes."""

import json
import os

import pytest

from runtime.atomic import atomic_path, atomic_write_text
from runtime.meta import MetaError, ModelMeta, TensorSpec, read_meta, sidecar_path, write_meta
from runtime.preprocess import Preprocess


def make_meta(**kw) -> ModelMeta:
    base = dict(
        variant="tiny", precision="fp32", class_names=("a", "b"), palette_rgb=((1, 2, 3), (4, 5, 6)),
        input=TensorSpec("input", "float32", "NCHW", ("batch", 3, "height", "width"),
                         profile=((1, 3, 32, 32), (1, 3, 64, 64), (2, 3, 128, 128))),
        output=TensorSpec("logits", "float32", "NCHW", ("batch", 2, "h4", "w4")),
        output_kind="logits", output_stride=4, preprocess=Preprocess(64, 64),
    )  # fmt: skip
    base.update(kw)
    return ModelMeta(**base)


def test_round_trip(tmp_path):
    artifact = tmp_path / "m.fp32.onnx"
    meta = make_meta(hashes={"checkpoint": "ab"}, engine={"tensorrt_version": "10.3.0"})
    path = write_meta(artifact, meta)
    assert path == sidecar_path(artifact) and path.name == "m.fp32.onnx.json"
    back = read_meta(artifact)
    assert back == meta and back.input.dynamic and back.num_classes == 2


def test_unknown_schema_version_is_refused(tmp_path):
    artifact = tmp_path / "m.onnx"
    data = make_meta().to_dict()
    data["schema_version"] = 99
    sidecar_path(artifact).write_text(json.dumps(data))
    with pytest.raises(MetaError, match="schema_version 99 is not supported"):
        read_meta(artifact)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"schema_version": 1, "variant": "t"}', "invalid or missing field"),
    ],
)
def test_broken_sidecars_get_one_clear_error(tmp_path, text, match):
    artifact = tmp_path / "m.onnx"
    sidecar_path(artifact).write_text(text)
    with pytest.raises(MetaError, match=match):
        read_meta(artifact)


def test_missing_sidecar_says_how_to_fix(tmp_path):
    with pytest.raises(MetaError, match="re-export with scaseg-export"):
        read_meta(tmp_path / "m.onnx")


def test_invalid_values_are_refused():
    with pytest.raises(MetaError, match="precision"):
        make_meta(precision="int4")
    with pytest.raises(MetaError, match="palette"):
        make_meta(palette_rgb=((1, 2, 3),))


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "artifact.onnx"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert os.listdir(tmp_path) == []


def test_atomic_write_refuses_to_replace_unless_asked(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_text(target, "one")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        atomic_write_text(target, "two", overwrite=False)
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


def test_atomic_write_into_a_missing_folder_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "a.json", "x")


def test_an_artifact_replaced_after_export_is_refused(tmp_path):
    """The sidecar's recorded sha256 ties it to the artifact's bytes."""
    from dataclasses import replace

    from runtime.backends import BackendOptions, open_backend
    from runtime.meta import sha256_file
    from tests.support.tiny_onnx import build_tiny_model

    model = build_tiny_model(tmp_path / "m.onnx")
    meta = read_meta(model)
    write_meta(model, replace(meta, hashes={"artifact": sha256_file(model)}))
    with open_backend(model, options=BackendOptions(provider="cpu")) as backend:
        assert backend.meta.hashes["artifact"]  # the matching pair opens
    other = build_tiny_model(tmp_path / "other.onnx", num_classes=3)
    model.write_bytes(other.read_bytes())  # a different model copied over, sidecar left behind
    with pytest.raises(MetaError, match=r"does not match its sidecar m\.onnx\.json.*re-export"):
        open_backend(model, options=BackendOptions(provider="cpu"))
