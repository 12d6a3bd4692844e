"""Class names and palettes from a checkpoint: counts and name lengths within their budgets
(refused fast), consistent with the classifier, and anything unusable left out with a reason
instead of reaching the export as the wrong type."""

from __future__ import annotations

import math
import time

import pytest
import torch

from runtime.errors import BudgetError
from scaseg.checkpoint import CheckpointError, load_model, read_state_dict, save_checkpoint
from scaseg.model import build_model
from tests.scaseg.hostile_checkpoints import resave_safetensors, state_with, tiny_mmengine

pytest.importorskip("mmengine")

PALETTE = [[128, 64, 128], [0, 0, 142], [220, 20, 60]]


def test_150000_class_names_are_refused_by_the_budget_at_once(tmp_path):
    names = tuple(f"class {i}" for i in range(150_000))
    path = tiny_mmengine(tmp_path, classes=names)
    start = time.monotonic()
    with pytest.raises(BudgetError) as err:
        read_state_dict(path)
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "dataset_meta.classes needs 150,000 classes" in message
    assert "SCASEG_MAX_CLASSES" in message and "\n" not in message


def test_a_class_name_longer_than_its_budget_is_refused(tmp_path):
    path = tiny_mmengine(tmp_path, classes=("road", "x" * 10_000, "person"))
    with pytest.raises(BudgetError, match=r"class 1 needs 10,000 characters.*CLASS_NAME_CHARS"):
        read_state_dict(path)


def test_a_classifier_over_the_class_budget_is_refused_before_the_model_is_built(tmp_path):
    model = build_model("tiny", 3)
    state = state_with(model, decode_head__cls_seg__weight=torch.zeros(5000, 32, 1, 1),
                       decode_head__cls_seg__bias=torch.zeros(5000))  # fmt: skip
    torch.save({"state_dict": state}, tmp_path / "wide.pth")
    with pytest.raises(BudgetError, match=r"cls_seg\.weight needs 5,000 classes"):
        load_model(tmp_path / "wide.pth")


@pytest.mark.parametrize(
    ("classes", "palette", "warning"),
    [
        (["road", "car\nInjected: line", "person"], PALETTE, "class 1 ('car\\nInjected: line')"),
        (["road", "road", "person"], PALETTE, "'road' repeats"),
        (["road", " ", "person"], PALETTE, "is empty"),
        (["road", float("nan"), "person"], PALETTE, "class 1 is nan"),
        ({"a": 1}, PALETTE, "not a list of names (a dict of 1 items)"),
        ("road", PALETTE, "not a list of names ('road')"),
        (["road", "car", "person"], [[1, 2, math.nan]] * 3, "colour 0 is [1, 2, nan]"),
        (["road", "car", "person"], [[1.0, 2.0, 3.0]] * 3, "colour 0 is [1.0, 2.0, 3.0]"),
        (["road", "car", "person"], [[1, 2, -1]] * 3, "expected ints 0..255"),
        (["road", "car", "person"], "red", "not a list of RGB triples ('red')"),
        (["road", "car", "person"], [{"r": 1}] * 3, "colour 0 is a dict of 1 items"),
    ],
    ids=["newline", "repeat", "blank", "nan-name", "dict", "str", "nan-colour", "float-colour",
         "negative", "str-palette", "dict-colour"],
)  # fmt: skip
def test_unusable_names_and_colours_are_left_out_with_a_reason(tmp_path, classes, palette, warning):
    path = tiny_mmengine(tmp_path, classes=None, palette=palette)
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["meta"]["dataset_meta"]["classes"] = classes
    torch.save(checkpoint, path)
    _, info = load_model(path)
    warnings = info["metadata_warnings"]
    assert any(warning in w for w in warnings), warnings
    assert all("\n" not in w for w in warnings)
    if "colour" in warning or "RGB" in warning or "0..255" in warning:
        assert "palette_rgb" not in info and info["class_names"] == ["road", "car", "person"]
    else:
        assert "class_names" not in info


def _ours(tmp_path, **info) -> object:
    model = build_model("tiny", 3)
    base = {"variant": "tiny", "num_classes": 3, "class_names": ["a", "b", "c"],
            "palette_rgb": PALETTE}  # fmt: skip
    return save_checkpoint(model, tmp_path / "m.safetensors", dict(base, **info))


@pytest.mark.parametrize(
    ("field", "value", "warning"),
    [
        ("class_names", 5, "class_names ignored: not a list of names (5)"),
        ("class_names", ["a", 2, "c"], "class_names ignored: not a list of names (class 1 is 2)"),
        ("palette_rgb", [[1, 2, 300]] * 3, "palette_rgb ignored"),
        ("palette_rgb", {"0": [1, 2, 3]}, "palette_rgb ignored: not a list of RGB triples"),
    ],
)
def test_our_own_files_metadata_is_checked_the_same_way(tmp_path, field, value, warning):
    src = _ours(tmp_path)
    path = resave_safetensors(src, tmp_path / "edited.safetensors", **{field: value})
    model, info = load_model(path)
    assert any(warning in w for w in info["metadata_warnings"]), info["metadata_warnings"]
    assert model.num_classes == 3


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("num_classes", "3", "num_classes '3' is not a whole number"),
        ("num_classes", 10**9, "num_classes needs 1,000,000,000 classes"),
        ("num_classes", 5, "metadata says 5 classes but its classifier has 3 outputs"),
        ("variant", ["tiny"], "variant a list of 1 items is not a variant name"),
        ("decoder", "strip", "decoder 'strip' is not a dict"),
        ("decoder", {"heads": "abcd"}, "heads must have 4 entries"),
        ("decoder", {"embed_dim": 10**9}, "embed_dim must be in [1, 4096], got 1000000000"),
        ("decoder", {"ffn_ratio": "4"}, "ffn_ratio must be a finite number, got '4'"),
    ],
)
def test_settings_the_model_is_built_from_must_have_their_types(tmp_path, field, value, words):
    src = _ours(tmp_path)
    path = resave_safetensors(src, tmp_path / "edited.safetensors", **{field: value})
    with pytest.raises((CheckpointError, BudgetError)) as err:
        load_model(path)
    assert words in str(err.value) and "\n" not in str(err.value)
