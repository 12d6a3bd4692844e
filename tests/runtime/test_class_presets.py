"""Class presets (Cityscapes, ADE20K, VOC), class files, and their errors."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from runtime.classes import (
    PRESETS,
    ClassSpecError,
    check_classes,
    palette_bgr,
    preset,
    read_class_file,
    resolve_class_spec,
)
from runtime.errors import BudgetError
from scenes.classes import CLASS_ID, DEMO_CLASSES, DEMO_PALETTE_RGB


@pytest.mark.parametrize(("name", "count"), [("cityscapes", 19), ("ade20k", 150), ("voc", 21)])
def test_presets_are_complete_and_valid(name, count):
    spec = preset(name)
    assert len(spec.names) == len(spec.palette_rgb) == count
    assert check_classes(spec.names, spec.palette_rgb) == (spec.names, spec.palette_rgb)
    assert spec.source == f"preset {name} ({count} classes)"


@pytest.mark.parametrize(
    ("name", "index", "class_name", "rgb"),
    [
        ("cityscapes", 0, "road", (128, 64, 128)),
        ("cityscapes", 13, "car", (0, 0, 142)),
        ("cityscapes", 18, "bicycle", (119, 11, 32)),
        ("ade20k", 0, "wall", (120, 120, 120)),
        ("ade20k", 7, "bed", (204, 5, 255)),  # 'bed ' upstream, trailing space dropped
        ("ade20k", 136, "traffic light", (41, 0, 255)),
        ("ade20k", 149, "flag", (92, 0, 255)),
        ("voc", 0, "background", (0, 0, 0)),
        ("voc", 15, "person", (192, 128, 128)),
        ("voc", 20, "tvmonitor", (0, 64, 128)),
    ],
)
def test_preset_ids_names_and_colours(name, index, class_name, rgb):
    spec = preset(name)
    assert spec.names[index] == class_name and spec.palette_rgb[index] == rgb


def test_demo_set_is_not_a_runtime_preset():
    """The generated scenes' label set lives with the generator, not in the device runtime."""
    with pytest.raises(ClassSpecError, match="unknown class preset 'demo'"):
        preset("demo")
    assert palette_bgr(DEMO_PALETTE_RGB)[0].tolist() == [128, 64, 128]
    assert CLASS_ID["car"] == 5 and len(DEMO_CLASSES) == 8
    assert palette_bgr(preset("voc").palette_rgb).shape == (21, 3)


def test_spec_resolves_presets_case_insensitively():
    names, palette, source = resolve_class_spec("Cityscapes")
    assert len(names) == 19 and palette[0] == (128, 64, 128) and "cityscapes" in source


def test_json_list_of_names(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps(["background", "crack", "pothole"]))
    spec = resolve_class_spec(str(path))
    assert spec.names == ("background", "crack", "pothole") and spec.palette_rgb is None
    assert spec.source == f"class file {path} (3 classes)"


def test_json_classes_and_palette(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps({"classes": ["a", "b"], "palette": [[1, 2, 3], [250, 0, 9]]}))
    assert read_class_file(path).palette_rgb == ((1, 2, 3), (250, 0, 9))


def test_txt_names_skip_blank_lines_and_comments(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("# my classes\nroad\n\n  traffic light  \n# end\n")
    assert read_class_file(path).names == ("road", "traffic light")


def test_txt_names_with_colours(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("road 128,64,128\ntraffic light\t250,170,30\n")
    spec = read_class_file(path)
    assert spec.names == ("road", "traffic light")
    assert spec.palette_rgb == ((128, 64, 128), (250, 170, 30))


@pytest.mark.parametrize(
    ("file_name", "text", "message"),
    [
        ("c.txt", "a\nb\na\n", "unique; repeated: a"),
        ("c.txt", "# nothing\n\n", "lists no classes"),
        ("c.txt", "a 1,2,3\nb\n", "line 2: some lines give a colour"),
        ("c.txt", "a 1,2,300\n", r"colour of class 0 \(a\) is \[1, 2, 300\]"),
        ("c.json", '["a", ""]', "class 1 has an empty"),
        ("c.json", '{"classes": ["a", "b"], "palette": [[0, 0, 0]]}', "2 classes but 1 palette"),
        ("c.json", '{"classes": ["a"], "palette": [[0, 0]]}', "expected 3 ints 0..255"),
        ("c.json", '{"classes": ["a"], "palette": [[0.5, 0, 0]]}', "expected 3 ints 0..255"),
        ("c.json", '{"classes": ["a"], "colours": []}', r"unknown keys \['colours'\]"),
        ("c.json", '{"names": ["a"]}', "must hold a list of names"),
        ("c.json", "[1, 2", "not valid JSON"),
        ("c.json", "[]", "non-empty list of class names"),
    ],
)
def test_bad_class_files(tmp_path, file_name, text, message):
    path = tmp_path / file_name
    path.write_text(text)
    with pytest.raises(ClassSpecError, match=message):
        resolve_class_spec(str(path))


def test_unknown_spec_is_one_line_listing_the_presets(tmp_path):
    with pytest.raises(ValueError) as err:
        resolve_class_spec("cityscape")
    message = str(err.value)
    assert "\n" not in message and isinstance(err.value, ClassSpecError)
    assert "'cityscape' is neither a preset nor an existing file" in message
    assert ", ".join(PRESETS) in message
    (tmp_path / "classes.yaml").write_text("- a\n")
    with pytest.raises(ClassSpecError, match=r"\.yaml file, expected \.json or \.txt"):
        resolve_class_spec(str(tmp_path / "classes.yaml"))


def test_palette_lookup_covers_every_class():
    table = palette_bgr(preset("ade20k").palette_rgb, 150)
    assert table.shape == (150, 3) and table.dtype == np.uint8
    assert table[2].tolist() == [230, 230, 6]  # sky (6, 230, 230) as BGR


# Not a speed test: the quadratic versions took minutes, linear ones take a fraction of a
# second; the bound is loose enough for a busy CI machine and still catches a quadratic.
QUADRATIC_S = 20.0


def test_150000_class_names_are_refused_at_once(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("".join(f"c{i}\n" for i in range(150_000)))
    start = time.perf_counter()
    with pytest.raises(BudgetError, match="SCASEG_MAX_CLASSES=150000"):
        read_class_file(path)
    assert time.perf_counter() - start < QUADRATIC_S


def test_checking_names_takes_linear_time(monkeypatch):
    """Within a raised budget, 150,000 unique names (and their duplicates) check in well under a
    second: no per-name scan of the whole list."""
    monkeypatch.setenv("SCASEG_MAX_CLASSES", "400000")
    names = [f"c{i}" for i in range(150_000)]
    start = time.perf_counter()
    assert len(check_classes(names)[0]) == 150_000
    with pytest.raises(
        ClassSpecError, match=r"repeated: c0, c1, c10, c100, c1000 and 149,995 more"
    ):
        check_classes(names + names)
    assert time.perf_counter() - start < QUADRATIC_S


def test_a_long_line_of_spaces_is_refused_at_once(tmp_path):
    """'a', 100,000 spaces, 'x': a lazy name-then-colour pattern backtracks quadratically."""
    path = tmp_path / "classes.txt"
    path.write_text("a" + " " * 100_000 + "x\n")
    start = time.perf_counter()
    with pytest.raises(BudgetError, match="SCASEG_MAX_CLASS_NAME_CHARS"):
        read_class_file(path)
    assert time.perf_counter() - start < QUADRATIC_S


@pytest.mark.parametrize(
    ("file_name", "text", "match"),
    [
        ("c.json", json.dumps(["a" * 300]), "SCASEG_MAX_CLASS_NAME_CHARS=300"),
        ("c.json", '{"classes": ' + "[" * 100_000 + "]" * 100_000 + "}", "deeper than 64"),
        ("c.json", "[1" + "0" * 5000 + "]", "not valid JSON"),
        ("c.json", '{"classes": ["a"], "palette": [[' + "[" * 70 + "]" * 70 + "]]}", "DEPTH"),
        ("c.txt", "a 1" + "0" * 5000 + ",0,0\n", "SCASEG_MAX_CLASS_NAME_CHARS"),
    ],
)
def test_class_files_over_budget_or_malformed(tmp_path, file_name, text, match):
    path = tmp_path / file_name
    path.write_text(text)
    with pytest.raises((ClassSpecError, BudgetError), match=match):
        read_class_file(path)


def test_a_huge_class_file_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setenv("SCASEG_MAX_JSON_BYTES", "1000")
    path = tmp_path / "classes.txt"
    path.write_text("road\n" * 1000)
    with pytest.raises(BudgetError, match="SCASEG_MAX_JSON_BYTES"):
        read_class_file(path)


def test_names_with_control_characters_and_markup_are_kept_as_given(tmp_path):
    path = tmp_path / "classes.json"
    names = ["\x1b[2J\x1b[31mroad", "[/]", "[red]car", "per\x07son"]
    path.write_text(json.dumps(names))
    assert read_class_file(path).names == tuple(names)


def test_errors_quoting_names_escape_control_characters(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("\x1b[31mroad\n\x1b[31mroad\n")
    with pytest.raises(ClassSpecError) as err:
        read_class_file(path)
    assert "\x1b" not in str(err.value) and "\\x1b[31mroad" in str(err.value)
