"""What a checkpoint file is, and the class names and palette it carries.

mmengine (mmsegmentation 1.x) keeps them in `meta["dataset_meta"]["classes" / "palette"]`,
mmsegmentation 0.x (and the original SegNeXt code) in `meta["CLASSES"]` / `meta["PALETTE"]`.
Values that are not plain lists of names and RGB triples are left out, with the reason recorded.
"""

from __future__ import annotations

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


def read_dataset_meta(obj: object) -> dict:
    """{"class_names", "palette_rgb", "metadata_warnings"} found in the checkpoint's `meta`."""
    meta = obj.get("meta") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return {"metadata_warnings": []}
    dataset_meta = meta.get("dataset_meta")
    if isinstance(dataset_meta, dict):
        names, colours, where = (
            dataset_meta.get("classes"),
            dataset_meta.get("palette"),
            "dataset_meta",
        )
    else:
        names, colours, where = meta.get("CLASSES"), meta.get("PALETTE"), "meta"
    info: dict = {"metadata_warnings": []}
    warnings = info["metadata_warnings"]
    label = "classes" if where == "dataset_meta" else "CLASSES"
    if names is not None:
        class_names = _class_names(names)
        if class_names is None:
            warnings.append(f"{where}.{label} ignored: not a list of names ({_describe(names)})")
        else:
            info["class_names"] = class_names
    label = "palette" if where == "dataset_meta" else "PALETTE"
    if colours is not None:
        palette = _palette(colours)
        if palette is None:
            warnings.append(
                f"{where}.{label} ignored: not a list of RGB triples ({_describe(colours)})"
            )
        else:
            info["palette_rgb"] = palette
    return info


def reconcile_classes(info: dict, num_classes: int) -> dict:
    """Drop class names / palette that do not fit the classifier, saying why."""
    info = dict(info, metadata_warnings=list(info.get("metadata_warnings", [])))
    names = info.get("class_names")
    if names is not None and len(names) != num_classes:
        info["metadata_warnings"].append(
            f"class names ignored: {len(names)} names for a classifier of {num_classes} classes"
        )
        del info["class_names"]
    palette = info.get("palette_rgb")
    if palette is not None and len(palette) < num_classes:
        info["metadata_warnings"].append(
            f"palette ignored: {len(palette)} colours for {num_classes} classes"
        )
        del info["palette_rgb"]
    return info


def _class_names(value) -> list[str] | None:
    if not isinstance(value, (list, tuple)) or not value:
        return None
    if not all(isinstance(n, str) for n in value):
        return None
    return list(value)


def _palette(value) -> list[list[int]] | None:
    if not isinstance(value, (list, tuple)) or not value:
        return None
    palette = []
    for colour in value:
        if not isinstance(colour, (list, tuple)) or len(colour) != 3:
            return None
        if not all(type(c) is int and 0 <= c <= 255 for c in colour):
            return None
        palette.append([int(c) for c in colour])
    return palette


def _describe(value) -> str:
    if isinstance(value, (list, tuple)) and value:
        return f"{type(value).__name__} of {_describe(value[0])}, ..."
    return repr(value) if len(repr(value)) <= 60 else type(value).__name__
