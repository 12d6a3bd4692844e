"""The input normalisation a checkpoint was trained with, read from the config text it carries.

mmengine (mmsegmentation 1.x) stores the training config as text in `meta["cfg"]`, with
`data_preprocessor=dict(mean=[...], std=[...], bgr_to_rgb=True, ...)`; mmsegmentation 0.x stores
it in `meta["config"]` with `img_norm_cfg = dict(mean=[...], std=[...], to_rgb=True)`. The text is
Python source: it is parsed (`ast`) and only literal values are read, never executed.

mmseg loads images as BGR and converts them to RGB when `bgr_to_rgb` / `to_rgb` is true, then
subtracts `mean` and divides by `std` in that converted order: exactly our Preprocess(color, mean,
std) contract.
"""

from __future__ import annotations

import ast

CONFIG_KEYS = ("cfg", "config")  # mmengine / mmcv
ORDER_KEYS = ("bgr_to_rgb", "to_rgb")


def read_preprocess_config(obj: object) -> dict:
    """{"preprocess": {"color", "mean", "std"}, "preprocess_from": where} from the checkpoint's
    config text, {} where there is none, and {"metadata_warnings": [...]} where it cannot be read
    or names two different normalisations."""
    meta = obj.get("meta") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return {}
    for key in CONFIG_KEYS:
        text = meta.get(key)
        if isinstance(text, str) and text.strip():
            return _from_text(text, f"meta.{key}")
    return {}


def _from_text(text: str, where: str) -> dict:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as err:
        return {"metadata_warnings": [f"{where} ignored: not parseable Python ({err.msg})"]}
    found = {}
    for node in ast.walk(tree):
        settings = _norm_settings(node)
        if settings is not None:
            found[repr(sorted(settings.items()))] = settings
    if not found:
        return {}
    if len(found) > 1:
        shown = "; ".join(_describe(s) for s in found.values())
        return {
            "metadata_warnings": [
                f"{where} names more than one input normalisation ({shown}); none was used: "
                "pass --mean/--std/--rgb/--bgr"
            ]
        }
    (settings,) = found.values()
    return {"preprocess": settings, "preprocess_from": f"{where} (training config)"}


def _norm_settings(node: ast.AST) -> dict | None:
    """mean/std/colour order of a `dict(mean=..., std=..., ...)` call or `{...}` literal."""
    values = _keywords(node)
    if values is None or "mean" not in values or "std" not in values:
        return None
    mean, std = _triplet(values["mean"]), _triplet(values["std"])
    if mean is None or std is None or min(std) <= 0:
        return None
    order = next((values[k] for k in ORDER_KEYS if k in values), None)
    rgb = _literal(order) if order is not None else None
    if rgb is not None and not isinstance(rgb, bool):
        return None
    # Without a flag mmseg keeps the decoded BGR order (bgr_to_rgb defaults to False).
    return {"color": "rgb" if rgb else "bgr", "mean": mean, "std": std}


def _keywords(node: ast.AST) -> dict[str, ast.AST] | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return {k.arg: k.value for k in node.keywords if k.arg is not None}
    if isinstance(node, ast.Dict):
        return {
            k.value: v
            for k, v in zip(node.keys, node.values)
            if isinstance(k, ast.Constant) and isinstance(k.value, str)
        }
    return None


def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def _triplet(node: ast.AST) -> list[float] | None:
    value = _literal(node)
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    return [float(v) for v in value]


def _describe(settings: dict) -> str:
    mean = ",".join(f"{v:g}" for v in settings["mean"])
    std = ",".join(f"{v:g}" for v in settings["std"])
    return f"mean {mean} std {std} {settings['color']}"
