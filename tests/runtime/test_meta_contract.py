"""The sidecar schema: round trip, refusal of unknown versions and broken files, atomic writes."""

import json
import math
import os

import pytest

from runtime.atomic import atomic_path, atomic_write_text
from runtime.errors import BudgetError
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
        ('{"schema_version": 1, "variant": "t"}', "precision is missing; re-export"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        ('{"schema_version": 1, "n": 1' + "0" * 5000 + "}", "not valid JSON"),
    ],
)
def test_broken_sidecars_get_one_clear_error(tmp_path, text, match):
    artifact = tmp_path / "m.onnx"
    path = sidecar_path(artifact)
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
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


def _static_sidecar() -> dict:
    """A valid sidecar with static shapes (1,3,64,64) -> (1,2,16,16), as plain JSON data."""
    return make_meta(
        input=TensorSpec("input", "float32", "NCHW", (1, 3, 64, 64)),
        output=TensorSpec("logits", "float32", "NCHW", (1, 2, 16, 16)),
    ).to_dict()


def _edit(data: dict, dotted: str, value) -> dict:
    *parents, key = dotted.split(".")
    node = data
    for name in parents:
        node = node[name]
    node[key] = value
    return data


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


HOSTILE_FIELDS = [
    ("preprocess.std", [math.nan] * 3, "preprocess.std is"),
    ("preprocess.std", [0.0, 1.0, 1.0], "positive finite numbers"),
    ("preprocess.std", [-1.0, 1.0, 1.0], "positive finite numbers"),
    ("preprocess.mean", [math.inf, 0.0, 0.0], "preprocess.mean is"),
    ("preprocess.mean", "0,0,0", "a list of 3 finite numbers"),
    ("preprocess.mean", [1, 2], "a list of 3 finite numbers"),
    ("preprocess.height", 64.5, "preprocess.height is 64.5"),
    ("preprocess.height", "64", "preprocess.height is '64'"),
    ("preprocess.color", "cmyk", "preprocess.color is 'cmyk', expected one of rgb, bgr"),
    ("palette_rgb", [[300, 0, 0], [0, 0, 0]], r"palette_rgb\[0\] is \[300, 0, 0\]"),
    ("palette_rgb", [[0, 0], [0, 0, 0]], r"palette_rgb\[0\]"),
    ("palette_rgb", [[0.5, 0, 0], [0, 0, 0]], r"palette_rgb\[0\]"),
    ("palette_rgb", "red", "palette_rgb is 'red'"),
    ("palette_rgb", [[0, 0, 0]], "palette_rgb has 1 colours for 2 class_names"),
    ("class_names", [1, 2], r"class_names\[0\] is 1"),
    ("class_names", "ab", "class_names is 'ab', expected a list"),
    ("output.shape", [1, 5, 16, 16], "class_names lists 2 classes but .* has 5 channels"),
    ("fused_argmax", "false", "fused_argmax is 'false', expected true or false"),
    ("output_stride", 0, "output_stride is 0"),
    (
        "input.shape",
        [1, 3, 128, 128],
        r"preprocess size 64x64 does not match the sidecar input shape \[1, 3, 128, 128\]",
    ),
    ("input.shape", [1, 3, 64], "has 3 dims but layout NCHW needs 4"),
    ("input.shape", [1, 3, -64, 64], "input.shape is"),
    ("input.layout", "CHW", "input.layout is 'CHW'"),
    ("input.profile", [[1, 3, 64, 64]], "3 shapes"),
    ("hashes", {"artifact": 5}, "hashes is"),
    ("variant", ["t"], "variant is"),
]


@pytest.mark.parametrize(("field", "value", "match"), HOSTILE_FIELDS)
def test_each_bad_field_is_named_with_how_to_fix_it(tmp_path, field, value, match):
    artifact = tmp_path / "m.onnx"
    sidecar_path(artifact).write_text(json.dumps(_edit(_static_sidecar(), field, value)))
    with pytest.raises(MetaError, match=match) as err:
        read_meta(artifact)
    assert "re-export" in str(err.value) and "\n" not in str(err.value)


def test_the_static_sidecar_itself_is_valid(tmp_path):
    artifact = tmp_path / "m.onnx"
    sidecar_path(artifact).write_text(json.dumps(_static_sidecar()))
    assert read_meta(artifact).num_classes == 2


@pytest.mark.parametrize(
    ("field", "value", "env"),
    [
        ("preprocess", {"height": 16000, "width": 16000}, "SCASEG_MAX_INPUT_SIDE=16000"),
        ("class_names", [f"c{i}" for i in range(5000)], "SCASEG_MAX_CLASSES=5000"),
        ("class_names", ["a" * 300, "b"], "SCASEG_MAX_CLASS_NAME_CHARS=300"),
        ("extra", {"x": _nested(70)}, "SCASEG_MAX_METADATA_DEPTH"),
    ],
)
def test_sizes_and_counts_over_budget_are_refused(tmp_path, field, value, env):
    artifact = tmp_path / "m.onnx"
    sidecar_path(artifact).write_text(json.dumps(_edit(_static_sidecar(), field, value)))
    with pytest.raises(BudgetError, match=env):
        read_meta(artifact)


def test_a_huge_array_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SCASEG_MAX_METADATA_ITEMS", "1000")
    artifact = tmp_path / "m.onnx"
    data = _edit(_static_sidecar(), "extra", {"x": list(range(2000))})
    sidecar_path(artifact).write_text(json.dumps(data))
    with pytest.raises(BudgetError, match="SCASEG_MAX_METADATA_ITEMS"):
        read_meta(artifact)


def test_json_nested_past_pythons_recursion_limit_is_a_meta_error(tmp_path):
    artifact = tmp_path / "m.onnx"
    sidecar_path(artifact).write_text('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(MetaError, match="nests its JSON far deeper than 64 levels; re-export"):
        read_meta(artifact)


def test_a_huge_sidecar_is_refused_before_it_is_read(tmp_path, monkeypatch):
    artifact = tmp_path / "m.onnx"
    sidecar_path(artifact).write_text(json.dumps(_static_sidecar()))
    monkeypatch.setenv("SCASEG_MAX_JSON_BYTES", "100")
    monkeypatch.setattr("builtins.open", _no_open)
    with pytest.raises(BudgetError, match="SCASEG_MAX_JSON_BYTES"):
        read_meta(artifact)


def _no_open(*args, **kwargs):
    raise AssertionError("the sidecar was opened before its size was checked")
