"""Reading a sidecar one field at a time: each value checked for its type, range and budget, and
each refusal naming the field, what it holds and how to fix it.

A sidecar is a user's file like any other (copied, hand-edited, received with a model), so no
value is coerced into shape: "fused_argmax": "false" is not True, 12.7 is not a pixel count,
NaN is not a mean, and [1, 2, 3] are not class names.
"""

from __future__ import annotations

import math

from runtime.budgets import budget, check
from runtime.errors import UserInputError
from runtime.text import printable

FIX = "re-export the model with scaseg-export, or edit the sidecar"
_MISSING = object()


class FieldError(UserInputError):
    """One sidecar field is missing or holds a value the runtime cannot use (turned into a
    MetaError naming the sidecar by runtime.meta)."""


def _shown(value: object) -> str:
    return printable(repr(value), limit=60, markup=False)


class Fields:
    """The fields of one JSON object; `prefix` names where it sits ("preprocess.")."""

    def __init__(self, data: object, prefix: str = "") -> None:
        if not isinstance(data, dict):
            name = prefix.rstrip(".") or "the sidecar"
            raise FieldError(f"{name} must be a JSON object, got {_shown(data)}; {FIX}")
        self.data, self.prefix = data, prefix

    def fail(self, key: str, value: object, expected: str) -> FieldError:
        return FieldError(f"{self.prefix}{key} is {_shown(value)}, expected {expected}; {FIX}")

    def get(self, key: str, default: object = _MISSING) -> object:
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise FieldError(f"{self.prefix}{key} is missing; {FIX}")
        return default

    def sub(self, key: str) -> Fields:
        return Fields(self.get(key), f"{self.prefix}{key}.")

    def text(self, key: str, default: object = _MISSING, limit: int = 256) -> str:
        value = self.get(key, default)
        if not isinstance(value, str) or not value or len(value) > limit:
            raise self.fail(key, value, f"a text of 1 to {limit} characters")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: object = _MISSING) -> str:
        value = self.get(key, default)
        if value not in options:
            raise self.fail(key, value, f"one of {', '.join(options)}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, value, "true or false")
        return value

    def whole(self, key: str, low: int, high: int, default: object = _MISSING) -> int:
        value = self.get(key, default)
        if not _is_int(value) or not low <= value <= high:
            raise self.fail(key, value, f"a whole number from {low} to {high:,}")
        return value

    def pair(self, key: str, low: int, high: int, default: object = _MISSING) -> tuple[int, int]:
        """Two whole numbers low..high ([h, w], [long, short])."""
        value = self.get(key, default)
        ok = isinstance(value, list) and len(value) == 2
        if not ok or not all(_is_int(v) and low <= v <= high for v in value):
            raise self.fail(key, value, f"a list of 2 whole numbers from {low} to {high:,}")
        return int(value[0]), int(value[1])

    def numbers(self, key: str, count: int, default: object, positive: bool = False) -> tuple:
        value = self.get(key, default)
        ok = isinstance(value, (list, tuple)) and len(value) == count
        ok = ok and all(
            _is_number(v) and math.isfinite(v) and (v > 0 or not positive) for v in value
        )
        if not ok:
            kind = "positive finite numbers" if positive else "finite numbers"
            raise self.fail(key, value, f"a list of {count} {kind}")
        return tuple(float(v) for v in value)

    def mapping(self, key: str, default: object) -> dict | None:
        value = self.get(key, default)
        if value is not None and not isinstance(value, dict):
            raise self.fail(key, value, "a JSON object")
        return value

    def hashes(self, key: str) -> dict[str, str]:
        value = self.get(key, {}) or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.fail(key, value, 'an object of texts ({"artifact": "<sha256>", ...})')
        return value

    def names(self, key: str, what: str, default: object = _MISSING) -> tuple[str, ...]:
        """A list of texts, counted against the `classes` budget before any is looked at and
        each against `class_name_chars` (names are kept as given: printing escapes them)."""
        value = self.get(key, default)
        if not isinstance(value, list):
            raise self.fail(key, value, f"a list of {what}")
        check("classes", len(value), f"{self.prefix}{key} in the sidecar")
        limit = budget("class_name_chars").limit
        for i, name in enumerate(value):
            if not isinstance(name, str) or not name:
                raise self.fail(f"{key}[{i}]", name, f"a non-empty text ({what})")
            if len(name) > limit:
                check("class_name_chars", len(name), f"{self.prefix}{key}[{i}] in the sidecar")
        return tuple(value)

    def palette(self, key: str) -> tuple[tuple[int, int, int], ...]:
        value = self.get(key)
        if not isinstance(value, list):
            raise self.fail(key, value, "a list of [r, g, b] colours")
        check("classes", len(value), f"{self.prefix}{key} in the sidecar")
        for i, rgb in enumerate(value):
            ok = isinstance(rgb, list) and len(rgb) == 3
            if not ok or not all(_is_int(v) and 0 <= v <= 255 for v in rgb):
                raise self.fail(f"{key}[{i}]", rgb, "[r, g, b] of 3 whole numbers 0..255")
        return tuple((r, g, b) for r, g, b in value)

    def shape(self, key: str, concrete: bool = False) -> tuple:
        """Dims: whole numbers 1..input_side (or the class budget), or, unless `concrete`,
        names (str) for dynamic dims."""
        value = self.get(key)
        high = max(budget("input_side").limit, budget("classes").limit)
        ok = isinstance(value, list) and 1 <= len(value) <= 8
        if not ok or not all(_is_dim(d, high, concrete) for d in value):
            names = "" if concrete else " or names"
            raise self.fail(
                key, value, f"a list of up to 8 dims (whole numbers 1..{high:,}{names})"
            )
        return tuple(value)

    def profile(self, key: str) -> tuple | None:
        """None, or the (min, opt, max) concrete shapes of a dynamic input."""
        value = self.get(key, None)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) != 3:
            raise self.fail(key, value, "null or 3 shapes (min, opt, max)")
        shapes = Fields({str(i): s for i, s in enumerate(value)}, f"{self.prefix}{key}.")
        return tuple(shapes.shape(str(i), concrete=True) for i in range(3))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_dim(value: object, high: int, concrete: bool) -> bool:
    if isinstance(value, str):
        return not concrete and 0 < len(value) <= 64
    return _is_int(value) and 1 <= value <= high
