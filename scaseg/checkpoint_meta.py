"""What a checkpoint file is, and the class names and palette it carries.

mmengine (mmsegmentation 1.x) keeps them in `meta["dataset_meta"]["classes" / "palette"]`,
mmsegmentation 0.x (and the original SegNeXt code) in `meta["CLASSES"]` / `meta["PALETTE"]`, our
safetensors files in their JSON (`class_names`, `palette_rgb`). Names that are not unique,
non-empty, printable text, and colours that are not RGB triples of ints 0..255, are left out
with the reason recorded (the export then numbers the classes, or takes --classes). Counts over
the `classes` budget and names over `class_name_chars` are refused: both are checked before the
list is walked, so 150,000 names cost nothing.
"""

from __future__ import annotations

from runtime.budgets import check
from scaseg.metadata_walk import clip, describe

MMENGINE = "mmengine/mmseg 1.x"
MMSEG_0X = "mmseg 0.x"
PLAIN = "plain state dict"
SAFETENSORS = "safetensors (scaseg)"
SAFETENSORS_BARE = "safetensors"


def describe_format(obj: object, state_key: str | None) -> str:
    """A name for the layout of an unpickled checkpoint (see the constants above)."""
    if state_key is None:
        return PLAIN
    meta = obj.get("meta") if isinstance(obj, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    if "message_hub" in obj or "dataset_meta" in meta or "mmengine_version" in meta:
        return MMENGINE
    if "CLASSES" in meta or "PALETTE" in meta or "mmcv_version" in meta:
        return MMSEG_0X
    return f"state dict under {state_key!r}"


def read_dataset_meta(obj: object, what: str = "checkpoint") -> dict:
    """{"class_names", "palette_rgb", "metadata_warnings"} found in the checkpoint's `meta`;
    `what` names the file in budget errors."""
    meta = obj.get("meta") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return {"metadata_warnings": []}
    dataset_meta = meta.get("dataset_meta")
    if isinstance(dataset_meta, dict):
        names, colours = dataset_meta.get("classes"), dataset_meta.get("palette")
        labels = ("dataset_meta.classes", "dataset_meta.palette")
    else:
        names, colours = meta.get("CLASSES"), meta.get("PALETTE")
        labels = ("meta.CLASSES", "meta.PALETTE")
    return read_classes(names, colours, labels, what)


def read_classes(names, colours, labels: tuple[str, str], what: str) -> dict:
    """Checked class names and palette (None: absent), each dropped with a warning when it is
    not usable; `labels` say where they came from."""
    info: dict = {"metadata_warnings": []}
    for value, label, key, read in (
        (names, labels[0], "class_names", _class_names),
        (colours, labels[1], "palette_rgb", _palette),
    ):
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            check("classes", len(value), f"{what}: {label}")
        found, problem = read(value, f"{what}: {label}")
        if problem is None:
            info[key] = found
        else:
            info["metadata_warnings"].append(f"{label} ignored: {problem}")
            _problem(info, key, f"its {label} is {problem}")
    return info


def _problem(info: dict, key: str, text: str) -> None:
    """Record why `key` was dropped, so a command that would have used it can refuse instead
    of guessing (see export/model_info.resolve_classes)."""
    info.setdefault("metadata_problems", {})[key] = text


def reconcile_classes(info: dict, num_classes: int) -> dict:
    """Drop class names / palette that do not fit the classifier, saying why."""
    info = dict(info, metadata_warnings=list(info.get("metadata_warnings", [])),
                metadata_problems=dict(info.get("metadata_problems", {})))  # fmt: skip
    names = info.get("class_names")
    if names is not None and len(names) != num_classes:
        info["metadata_warnings"].append(
            f"class names ignored: {len(names)} names for a classifier of {num_classes} classes"
        )
        _problem(info, "class_names",
                 f"it names {len(names)} classes for a classifier of {num_classes}")  # fmt: skip
        del info["class_names"]
    palette = info.get("palette_rgb")
    if palette is not None and len(palette) < num_classes:
        info["metadata_warnings"].append(
            f"palette ignored: {len(palette)} colours for {num_classes} classes"
        )
        _problem(
            info, "palette_rgb", f"its palette has {len(palette)} colours for {num_classes} classes"
        )
        del info["palette_rgb"]
    return info


def _class_names(value, what: str) -> tuple[list[str] | None, str | None]:
    if not isinstance(value, (list, tuple)) or not value:
        return None, f"not a list of names ({_describe(value)})"
    seen: set[str] = set()
    for i, name in enumerate(value):
        if not isinstance(name, str):
            return None, f"not a list of names (class {i} is {describe(name)})"
        check("class_name_chars", len(name), f"{what}: class {i}")
        if not name.strip() or not name.isprintable():
            return None, f"class {i} ({clip(name)}) is empty or holds control characters"
        if name in seen:
            return None, f"class names must be unique; {clip(name)} repeats (class {i})"
        seen.add(name)
    return list(value), None


def _palette(value, what: str) -> tuple[list[list[int]] | None, str | None]:
    if not isinstance(value, (list, tuple)) or not value:
        return None, f"not a list of RGB triples ({_describe(value)})"
    palette = []
    for i, colour in enumerate(value):
        if not isinstance(colour, (list, tuple)) or len(colour) != 3:
            return None, f"not a list of RGB triples (colour {i} is {_describe(colour)})"
        if not all(type(c) is int and 0 <= c <= 255 for c in colour):
            shown = ", ".join(describe(c) for c in colour)
            return (
                None,
                f"not a list of RGB triples (colour {i} is [{shown}]; expected ints 0..255)",
            )
        palette.append([int(c) for c in colour])
    return palette, None


def _describe(value) -> str:
    if isinstance(value, (list, tuple)) and value:
        return f"{type(value).__name__} of {describe(value[0])}, ... ({len(value):,} items)"
    return describe(value)
