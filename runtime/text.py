"""Text read from files, made safe to print: the one place that escapes what reports show.

Class names, variant names, node names and paths come from files a user was handed. Printed raw,
an ESC sequence repaints or hides the terminal, a carriage return overwrites the line before it,
and rich markup such as `[/]` or `[red]` either restyles the report or, unbalanced, makes rich
raise after the work is done. `printable` shows such characters as visible escapes instead.
"""

from __future__ import annotations

import os
import unicodedata

# Categories shown as escapes: control characters (C0, DEL, C1), format characters (bidi
# overrides that reorder what is shown, zero-width characters), line/paragraph separators,
# lone surrogates.
_HIDDEN = ("Cc", "Cf", "Zl", "Zp", "Cs")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}
DEFAULT_LIMIT = 200  # characters shown; a class name or a path is shorter


def _visible(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if unicodedata.category(ch) not in _HIDDEN:
        return ch
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a file name that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, *, limit: int = DEFAULT_LIMIT, markup: bool = True) -> str:
    """`value` as one line of visible text: control and format characters become escapes
    (ESC -> \\x1b, CR -> \\r, C1 controls -> \\x9b...), text past `limit` characters is cut
    with '…', and with `markup` (for rich strings printed with markup on, the default) rich
    markup is escaped. Use markup=False for text that is escaped later (error messages)."""
    text = value if isinstance(value, str) else str(value)
    cut = len(text) > limit
    shown = "".join(_visible(ch) for ch in text[:limit])
    if cut:
        shown += f"… ({len(text):,} characters)"
    if not markup:
        return shown
    # Imported here: the serving side (sidecars, backends) prints no rich text, and the Triton
    # Python backend's environment carries only what serving imports.
    from rich.markup import escape

    return escape(shown)


def shown(path: str | bytes | os.PathLike) -> str:
    """A path as visible text, whole (paths are not cut): bytes that were not UTF-8 as \\xNN,
    control and format characters escaped. No rich markup escaping: callers printing with
    markup on wrap it in rich.markup.escape."""
    text = os.fsdecode(path)
    return text if text.isprintable() else "".join(_visible(ch) for ch in text)
