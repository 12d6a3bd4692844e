"""Checkpoint metadata that refers to itself, nests deep or is huge is refused with one line, and
every reader of metadata (classes, config, format) stays bounded."""

from __future__ import annotations

import time

import pytest

from runtime.errors import BudgetError
from scaseg.checkpoint import CheckpointError, load_model, read_state_dict
from scaseg.metadata_walk import check_tree, describe
from scaseg.model import build_model
from tests.support.checkpoints import mmengine_checkpoint

pytest.importorskip("mmengine")


def _save_with_meta(tmp_path, **meta):
    import torch

    checkpoint = mmengine_checkpoint(build_model("tiny", 3))
    dataset_meta = meta.pop("dataset_meta", {})
    checkpoint["meta"]["dataset_meta"].update(dataset_meta)
    checkpoint["meta"].update(meta)
    path = tmp_path / "m.pth"
    torch.save(checkpoint, path)
    return path


def _nested(depth: int, inner=None) -> list:
    value = [] if inner is None else inner
    for _ in range(depth):
        value = [value]
    return value


def test_class_names_that_contain_themselves_are_refused(tmp_path):
    """The pickle memo lets a list hold itself; describing it must not recurse forever."""
    classes: list = []
    classes += [classes, "road"]
    path = _save_with_meta(tmp_path, dataset_meta={"classes": classes})
    with pytest.raises(CheckpointError, match=r"contains itself .*re-save") as err:
        load_model(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("where", ["classes", "elsewhere"])
def test_metadata_nesting_deeper_than_the_budget_is_refused(tmp_path, where):
    deep = _nested(300)  # pickle itself refuses about 400
    meta = {"dataset_meta": {"classes": deep}} if where == "classes" else {"notes": deep}
    path = _save_with_meta(tmp_path, **meta)
    with pytest.raises(BudgetError, match=r"needs \d+ levels of nesting.*METADATA_DEPTH"):
        read_state_dict(path)


def test_metadata_of_millions_of_items_is_refused_quickly(tmp_path):
    path = _save_with_meta(tmp_path, history=list(range(2_000_000)))
    start = time.monotonic()
    with pytest.raises(BudgetError, match=r"needs 1,000,001 items.*SCASEG_MAX_METADATA_ITEMS"):
        read_state_dict(path)
    assert time.monotonic() - start < 10


def test_shared_objects_are_walked_once_and_measured_along_their_deepest_path():
    leaf = _nested(30)
    fine = [leaf] * 10_000  # shared 10,000 times: 10,000 items, not 300,000
    check_tree(fine, "fine")
    with pytest.raises(BudgetError, match="levels of nesting"):
        check_tree([leaf, _nested(40, leaf)], "deep")  # leaf again, 40 levels further down
    with pytest.raises(BudgetError, match="levels of nesting"):
        check_tree([_nested(40, leaf), leaf], "deep")  # the same, deepest path seen first


def test_descriptions_of_untrusted_values_stay_short_and_on_one_line():
    for value in ("x" * 10_000_000, "a\nb\x1b[31m", 10**5000, b"z" * 10**6, list(range(10**5))):
        text = describe(value)
        assert len(text) < 120 and "\n" not in text and "\x1b" not in text, text
