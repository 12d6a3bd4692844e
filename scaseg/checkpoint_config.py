"""The input normalisation a checkpoint was trained with, read from the config text it carries.

mmengine (mmsegmentation 1.x) stores the training config as text in `meta["cfg"]`, with
`data_preprocessor=dict(mean=[...], std=[...], bgr_to_rgb=True, ...)`; mmsegmentation 0.x stores
it in `meta["config"]` with `img_norm_cfg = dict(mean=[...], std=[...], to_rgb=True)`. The text is
Python source: it is parsed (`ast`) and only literal values are read, never executed.

mmseg loads images as BGR and converts them to RGB when `bgr_to_rgb` / `to_rgb` is true, then
subtracts `mean` and divides by `std` in that converted order: exactly our Preprocess(color, mean,
std) contract.

`read_inference_config` reads, the same way, how mmseg scores the model: the test-time Resize
of `test_pipeline` (or of `test_dataloader.dataset.pipeline`) and `model.test_cfg` (whole or
slide inference, crop_size and stride), for runtime.preprocess's keep_ratio resize and
runtime.slide's Inference.
"""

from __future__ import annotations

import ast
import math

from runtime.budgets import check
from runtime.text import printable
from scaseg.metadata_walk import describe

CONFIG_KEYS = ("cfg", "config")  # mmengine / mmcv
ORDER_KEYS = ("bgr_to_rgb", "to_rgb")
COLORS = ("rgb", "bgr")


def read_preprocess_config(obj: object, what: str = "checkpoint") -> dict:
    """{"preprocess": {"color", "mean", "std"}, "preprocess_from": where} from the checkpoint's
    config text, {} where there is none, and {"metadata_warnings": [...]} where it cannot be read,
    names two different normalisations, or one that cannot be used (std <= 0, not finite).
    Config text longer than `config_text_chars` is refused (BudgetError naming `what`)."""
    found = _config_text(obj, what)
    return _from_text(*found) if found else {}


def _config_text(obj: object, what: str) -> tuple[str, str] | None:
    """(the training config's text, where it sits: meta.cfg / meta.config), or None; its length
    is checked against `config_text_chars` first (BudgetError naming `what`)."""
    meta = obj.get("meta") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return None
    for key in CONFIG_KEYS:
        text = meta.get(key)
        if isinstance(text, str) and text.strip():
            check("config_text_chars", len(text), f"{what}: its training config meta.{key}")
            return text, f"meta.{key}"
    return None


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


def _parse(text: str, where: str) -> ast.Module | str:
    """The config text's syntax tree, or why it has none (a warning)."""
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError) as err:
        return f"{where} ignored: not parseable Python ({err})"
    except (MemoryError, RecursionError) as err:  # the parser's own limits on nesting
        return f"{where} ignored: it nests too deep to parse ({err!r})"


def _from_text(text: str, where: str) -> dict:
    tree = _parse(text, where)
    if isinstance(tree, str):
        return {"metadata_warnings": [tree]}
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


# --- test-time resize and inference mode -------------------------------------------------------

RESIZE_TYPES = ("Resize", "mmcv.Resize", "mmseg.Resize")
MAX_HOPS = 16  # `a = b`, `b = c`, ...: names followed before giving up (and cycles end)


def read_inference_config(obj: object, what: str = "checkpoint") -> dict:
    """How mmseg scores the checkpoint, from its config text (parsed, never executed):

        {"inference": {"mode": "whole"} or {"mode": "slide", "crop": (h, w), "stride": (h, w)},
         "resize": {"mode": "keep_ratio" | "stretch", "scale": (a, b)},
         "inference_from": where, "metadata_warnings": [...]}

    `inference` comes from `model = dict(test_cfg=...)`, a top-level `test_cfg = ...` or
    `model.test_cfg = ...`; `resize` from the one Resize step of `test_pipeline` or of
    `test_dataloader.dataset.pipeline` (or mmseg 0.x's `data.test.pipeline`, its
    MultiScaleFlipAug's img_scale). `scale` is as the config writes it: for keep_ratio only its
    larger and smaller values count; for stretch it is (w, h) as mmcv reads it. Keys are left
    out when the config does not say; values that cannot be read, cannot be used or contradict
    each other are left out too, with a warning saying why. Config text longer than
    `config_text_chars` is refused (BudgetError naming `what`)."""
    found = _config_text(obj, what)
    return _inference_from_text(*found) if found else {}


def _inference_from_text(text: str, where: str) -> dict:
    tree = _parse(text, where)
    if isinstance(tree, str):
        return {"metadata_warnings": [tree]}
    config = _Config(tree, text, where)
    info: dict = {}
    inference = config.one("test_cfg", config.test_cfgs(), config.read_test_cfg)
    if inference is not None:
        info["inference"] = inference
    resize = config.one("test pipeline Resize", config.pipelines(), config.read_pipeline)
    if resize is not None:
        info["resize"] = resize
    if info:
        info["inference_from"] = f"{where} (training config)"
    if config.warnings:
        info["metadata_warnings"] = config.warnings
    return info


class _Config:
    """The top-level assignments of one config text, and the warnings found reading them."""

    def __init__(self, tree: ast.Module, text: str, where: str) -> None:
        self.text, self.where, self.warnings = text, where, []
        self.names: dict[str, ast.AST] = {}
        self.model_test_cfg: list[ast.AST] = []  # `model.test_cfg = ...`, `model["test_cfg"] = ...`
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, value = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                target, value = stmt.target, stmt.value
            else:
                continue
            if isinstance(target, ast.Name):
                self.names[target.id] = value
            elif _is_model_test_cfg(target):
                self.model_test_cfg.append(value)

    def resolve(self, node: ast.AST | None) -> ast.AST | None:
        """A name's value (`crop_size` -> its tuple), followed through other names."""
        for _ in range(MAX_HOPS):
            if not isinstance(node, ast.Name) or node.id not in self.names:
                return node
            node = self.names[node.id]
        return node

    def fields(self, node: ast.AST | None) -> dict[str, ast.AST] | None:
        return _keywords(self.resolve(node)) if node is not None else None

    def shown(self, node: ast.AST) -> str:
        """The node's source text, one line, cut to 60 characters (never its whole repr)."""
        source = ast.get_source_segment(self.text, node) or type(node).__name__
        return printable(" ".join(source[:200].split()), limit=60, markup=False)

    def one(self, what: str, candidates: list[tuple[str, ast.AST]], read) -> dict | None:
        """The value every candidate place agrees on; None with a warning when they differ."""
        found: dict[str, tuple[str, dict]] = {}
        seen: list[ast.AST] = []  # `pipeline=test_pipeline` is test_pipeline: read it once
        for place, node in candidates:
            target = self.resolve(node)
            if any(target is other for other in seen):
                continue
            seen.append(target)
            value = read(place, node)
            if value is not None:
                found.setdefault(repr(sorted(value.items())), (place, value))
        if len(found) > 1:
            shown = "; ".join(f"{place}: {_shown_setting(v)}" for place, v in found.values())
            self.warnings.append(
                f"{self.where} names more than one {what} ({shown}); none was used"
            )
            return None
        return next(iter(found.values()))[1] if found else None

    def test_cfgs(self) -> list[tuple[str, ast.AST]]:
        out = []
        model = self.fields(self.names.get("model"))
        if model is not None and "test_cfg" in model:
            out.append(("model.test_cfg", model["test_cfg"]))
        out += [("model.test_cfg", node) for node in self.model_test_cfg]
        if "test_cfg" in self.names:
            out.append(("test_cfg", self.names["test_cfg"]))
        return out

    def read_test_cfg(self, place: str, node: ast.AST) -> dict | None:
        cfg = self.fields(node)
        if cfg is None:
            return self.warn(f"{place} is {self.shown(node)}, not a dict")
        mode_node = cfg.get("mode")
        mode = "whole" if mode_node is None else _constant(self.resolve(mode_node))
        if mode == "whole":
            return {"mode": "whole"}
        if mode != "slide":
            shown = self.shown(mode_node)
            return self.warn(f"{place} mode {shown} is not 'whole' or 'slide'")
        pairs = {}
        for key in ("crop_size", "stride"):
            pair = _int_pair(self.resolve(cfg.get(key)))
            if pair is None or min(pair) <= 0:
                shown = "missing" if key not in cfg else self.shown(cfg[key])
                return self.warn(f"{place} {key} is {shown}, expected (h, w): 2 whole numbers > 0")
            pairs[key] = pair
        crop, stride = pairs["crop_size"], pairs["stride"]
        if stride[0] > crop[0] or stride[1] > crop[1]:
            return self.warn(f"{place} stride {stride} is larger than its crop_size {crop}")
        return {"mode": "slide", "crop": crop, "stride": stride}

    def pipelines(self) -> list[tuple[str, ast.AST]]:
        out = []
        if "test_pipeline" in self.names:
            out.append(("test_pipeline", self.names["test_pipeline"]))
        for place, path in (
            ("test_dataloader.dataset.pipeline", ("test_dataloader", "dataset", "pipeline")),
            ("data.test.pipeline", ("data", "test", "pipeline")),
        ):
            node: ast.AST | None = self.names.get(path[0])
            for key in path[1:]:
                fields = self.fields(node)
                node = fields.get(key) if fields is not None else None
            if node is not None:
                out.append((place, node))
        return out

    def read_pipeline(self, place: str, node: ast.AST) -> dict | None:
        steps = self.resolve(node)
        if not isinstance(steps, (ast.List, ast.Tuple)):
            return self.warn(f"{place} is {self.shown(node)}, not a list of steps")
        found = []
        for step in steps.elts:
            fields = self.fields(step) or {}
            kind = _constant(self.resolve(fields.get("type")))
            if kind in RESIZE_TYPES:
                found.append(self.read_resize(place, fields, None, keep_default=False))
            elif kind == "MultiScaleFlipAug":
                found.append(self.read_flip_aug(place, fields))
            elif isinstance(kind, str) and "Resize" in kind:
                return self.warn(f"{place} resizes with {kind} (random): not reproducible")
        if len(found) != 1:
            count = "no Resize step" if not found else f"{len(found)} Resize steps"
            return self.warn(f"{place} has {count}; scaseg needs exactly one (scale, keep_ratio)")
        return found[0]

    def read_flip_aug(self, place: str, fields: dict[str, ast.AST]) -> dict | None:
        """mmseg 0.x: MultiScaleFlipAug(img_scale=..., flip=False, transforms=[Resize, ...])."""
        if "img_ratios" in fields or _constant(self.resolve(fields.get("flip"))) not in (
            None,
            False,
        ):
            return self.warn(f"{place} tests with multi-scale or flip augmentation: not reproduced")
        inner = self.resolve(fields.get("transforms"))
        steps = inner.elts if isinstance(inner, (ast.List, ast.Tuple)) else []
        for step in steps:
            resize = self.fields(step) or {}
            if _constant(self.resolve(resize.get("type"))) in RESIZE_TYPES:
                return self.read_resize(place, resize, fields.get("img_scale"), keep_default=True)
        return self.warn(f"{place} MultiScaleFlipAug has no Resize step")

    def read_resize(
        self, place: str, fields: dict[str, ast.AST], outer_scale, keep_default: bool
    ) -> dict | None:
        """One Resize: `scale` (mmcv 2.x), `img_scale` (mmseg 0.x) or its MultiScaleFlipAug's;
        keep_ratio False by default in mmcv 2.x, True in mmseg 0.x."""
        if "scale_factor" in fields:
            return self.warn(f"{place} Resize uses scale_factor: not supported, give scale")
        node = fields.get("scale", fields.get("img_scale", outer_scale))
        value = self.resolve(node)
        scale = (value.value,) * 2 if _is_int_constant(value) else _int_pair(value)
        if scale is None or min(scale) <= 0:
            shown = "missing" if node is None else self.shown(node)
            return self.warn(f"{place} Resize scale is {shown}, expected 2 whole numbers > 0")
        keep_node = fields.get("keep_ratio")
        keep = keep_default if keep_node is None else _constant(self.resolve(keep_node))
        if not isinstance(keep, bool):
            return self.warn(
                f"{place} Resize keep_ratio is {self.shown(keep_node)}, not True/False"
            )
        return {"mode": "keep_ratio" if keep else "stretch", "scale": scale}

    def warn(self, message: str) -> None:
        self.warnings.append(f"{self.where}: {message}; ignored")
        return None


def _is_model_test_cfg(target: ast.AST) -> bool:
    """`model.test_cfg` or `model["test_cfg"]` as an assignment target."""
    if isinstance(target, ast.Attribute):
        owner, key = target.value, target.attr
    elif isinstance(target, ast.Subscript):
        owner, key = target.value, _constant(target.slice)
    else:
        return False
    return isinstance(owner, ast.Name) and owner.id == "model" and key == "test_cfg"


def _constant(node: ast.AST | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def _is_int_constant(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _int_pair(node: ast.AST | None) -> tuple[int, int] | None:
    """(a, b) of a 2-element literal tuple/list of whole numbers, else None."""
    if not isinstance(node, (ast.Tuple, ast.List)) or len(node.elts) != 2:
        return None
    if not all(_is_int_constant(e) for e in node.elts):
        return None
    return node.elts[0].value, node.elts[1].value


def _shown_setting(value: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in value.items())
