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
import math

from runtime.budgets import check
from scaseg.metadata_walk import describe

CONFIG_KEYS = ("cfg", "config")  # mmengine / mmcv
ORDER_KEYS = ("bgr_to_rgb", "to_rgb")
COLORS = ("rgb", "bgr")


def read_preprocess_config(obj: object, what: str = "checkpoint") -> dict:
    """{"preprocess": {"color", "mean", "std"}, "preprocess_from": where} from the checkpoint's
    config text, {} where there is none, and {"metadata_warnings": [...]} where it cannot be read,
    names two different normalisations, or one that cannot be used (std <= 0, not finite).
    Config text longer than `config_text_chars` is refused (BudgetError naming `what`)."""
    meta = obj.get("meta") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return {}
    for key in CONFIG_KEYS:
        text = meta.get(key)
        if isinstance(text, str) and text.strip():
            check("config_text_chars", len(text), f"{what}: its training config meta.{key}")
            return _from_text(text, f"meta.{key}")
    return {}


def check_preprocess(settings, where: str) -> tuple[dict | None, str | None]:
    """(settings, None) when `settings` is {"color": "rgb"|"bgr", "mean": 3 finite numbers,
    "std": 3 finite numbers > 0} (other keys are left out), else (None, the reason)."""
    if not isinstance(settings, dict):
        return None, f"{where} ignored: not a dict ({describe(settings)})"
    color = settings.get("color", "rgb")
    if color not in COLORS:
        return None, f"{where} ignored: color {describe(color)} is not rgb or bgr"
    found = {"color": color}
    for key in ("mean", "std"):
        if key not in settings:
            continue
        values = settings[key]
        numbers = isinstance(values, (list, tuple)) and len(values) == 3
        if not numbers or not all(_is_number(v) for v in values):
            return None, f"{where} ignored: {key} is {describe(values)}, expected 3 numbers"
        found[key] = [float(v) for v in values]
    problem = _unusable(found)
    return (None, f"{where} ignored: {problem}") if problem else (found, None)


def _unusable(settings: dict) -> str | None:
    for key in ("mean", "std"):
        values = settings.get(key, ())
        if not all(math.isfinite(v) for v in values):
            return f"{key} {_shown(values)} is not finite; pass --mean/--std"
    if any(v <= 0 for v in settings.get("std", ())):
        return f"std {_shown(settings['std'])} must be > 0 (it divides); pass --std"
    return None


def _from_text(text: str, where: str) -> dict:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as err:
        return {"metadata_warnings": [f"{where} ignored: not parseable Python ({err})"]}
    except (MemoryError, RecursionError) as err:  # the parser's own limits on nesting
        return {"metadata_warnings": [f"{where} ignored: it nests too deep to parse ({err!r})"]}
    found, warnings = {}, []
    for node in ast.walk(tree):
        settings = _norm_settings(node, where)
        if isinstance(settings, str):
            warnings.append(settings)
        elif settings is not None:
            found[repr(sorted(settings.items()))] = settings
    if len(found) > 1:
        shown = "; ".join(_describe(s) for s in found.values())
        return {
            "metadata_warnings": [
                f"{where} names more than one input normalisation ({shown}); none was used: "
                "pass --mean/--std/--rgb/--bgr"
            ]
        }
    if not found:
        return {"metadata_warnings": warnings[:1]} if warnings else {}
    (settings,) = found.values()
    info = {"preprocess": settings, "preprocess_from": f"{where} (training config)"}
    return dict(info, metadata_warnings=warnings) if warnings else info


def _norm_settings(node: ast.AST, where: str) -> dict | str | None:
    """mean/std/colour order of a `dict(mean=..., std=..., ...)` call or `{...}` literal; a
    warning when it names three of each that cannot be used; None when it is not one."""
    values = _keywords(node)
    if values is None or "mean" not in values or "std" not in values:
        return None
    mean, std = _triplet(values["mean"]), _triplet(values["std"])
    if mean is None or std is None:
        return None  # not three channels of numbers: some other mean/std, not ours
    order = next((values[k] for k in ORDER_KEYS if k in values), None)
    rgb = order.value if isinstance(order, ast.Constant) else None
    if order is not None and not isinstance(rgb, bool):
        return f"{where}: the input normalisation's colour order is not True/False; ignored"
    # Without a flag mmseg keeps the decoded BGR order (bgr_to_rgb defaults to False).
    settings = {"color": "rgb" if rgb else "bgr", "mean": mean, "std": std}
    problem = _unusable(settings)
    return f"{where}: its input normalisation is ignored: {problem}" if problem else settings


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


def _triplet(node: ast.AST) -> list[float] | None:
    """Three literal numbers ([1, -2.5, 3e2]); anything computed is not read (no literal_eval:
    its recursion follows the text's nesting)."""
    if not isinstance(node, (ast.List, ast.Tuple)) or len(node.elts) != 3:
        return None
    values = [_number(e) for e in node.elts]
    return None if any(v is None for v in values) else values


def _number(node: ast.AST) -> float | None:
    sign = 1.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign, node = (-1.0 if isinstance(node.op, ast.USub) else 1.0), node.operand
    if isinstance(node, ast.Constant) and _is_number(node.value):
        try:
            return sign * float(node.value)
        except OverflowError:  # an int literal of 400 digits
            return sign * math.inf
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(values) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def _describe(settings: dict) -> str:
    mean = ",".join(f"{v:g}" for v in settings["mean"])
    std = ",".join(f"{v:g}" for v in settings["std"])
    return f"mean {mean} std {std} {settings['color']}"
