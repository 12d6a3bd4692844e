"""Class names and palette for an export: unusable metadata is refused unless --classes says."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.model_info import resolve_classes
from export.request import ExportInputError
from scaseg.checkpoint_meta import read_classes, reconcile_classes

LABELS = ("dataset_meta.classes", "dataset_meta.palette")


@pytest.mark.parametrize(
    ("names", "palette", "words"),
    [
        (["a", "b", "c"], [[300, 0, 0], [0, 0, 0], [1, 1, 1]], "expected ints 0..255"),
        (["a", "b", "c"], "red", "palette is not a list of RGB triples"),
        (["a", "b", "c"], [[float("nan"), 0, 0]] * 3, "palette is not a list"),
        (["a", 2, "c"], None, "classes is not a list of names"),
        (["a", "b"], None, "names 2 classes for a classifier of 3"),
        (["a", "b", "c"], [[1, 2, 3]], "palette has 1 colours for 3 classes"),
    ],
)
def test_unusable_class_metadata_is_refused_without_classes(names, palette, words):
    info = reconcile_classes(read_classes(names, palette, LABELS, "m.pth"), 3)
    with pytest.raises(ExportInputError, match="pass --classes") as err:
        resolve_classes(None, info, 3, Path("m.pth"))
    assert words in str(err.value)


def test_classes_flag_overrides_unusable_metadata(tmp_path):
    info = reconcile_classes(read_classes(["a", 2, "c"], "red", LABELS, "m.pth"), 3)
    names_file = tmp_path / "classes.txt"
    names_file.write_text("road\ncar\nperson\n")
    names, colours, source, _ = resolve_classes(str(names_file), info, 3, Path("m.pth"))
    assert names == ("road", "car", "person") and len(colours) == 3
    assert source.startswith("--classes")


def test_usable_metadata_is_taken_as_given():
    info = reconcile_classes(read_classes(["a", "b"], [[1, 2, 3], [4, 5, 6]], LABELS, "m"), 2)
    names, colours, source, warnings = resolve_classes(None, info, 2, Path("m.pth"))
    assert source == "checkpoint metadata"
    assert names == ("a", "b") and colours == ((1, 2, 3), (4, 5, 6)) and not warnings
