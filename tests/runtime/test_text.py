"""Text from files printed as text: runtime.text.printable."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from runtime.text import printable


def _shown(markup: str) -> str:
    """What a terminal shows for `markup` printed by rich (colour off, no wrapping)."""
    out = io.StringIO()
    Console(file=out, width=400, color_system=None, highlight=False).print(markup, soft_wrap=True)
    return out.getvalue().rstrip("\n")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("road", "road"),
        ("[/]", "[/]"),
        ("[red]car", "[red]car"),
        ("a[b", "a[b"),
        ("back\\slash", "back\\slash"),
        ("c:\\[red]", "c:\\[red]"),
        ("\x1b[2J\x1b[31mroad", "\\x1b[2J\\x1b[31mroad"),
        ("car\r", "car\\r"),
        ("line\nbreak", "line\\nbreak"),
        ("per\x07son", "per\\x07son"),
        ("del\x7f", "del\\x7f"),
        ("csi\x9b31m", "csi\\x9b31m"),
        ("bidi\u202egnp.exe", "bidi\\u202egnp.exe"),
        ("straße ✓ 東京", "straße ✓ 東京"),
    ],
)
def test_what_the_terminal_shows_is_the_text_with_visible_escapes(raw, shown):
    assert _shown(f"name: {printable(raw)}") == f"name: {shown}"


def test_markup_after_an_escaped_value_still_works():
    """A value ending in a backslash must not escape the caller's next tag (rich then shows it
    doubled, the price of not crashing on the caller's closing tag)."""
    assert _shown(f"[bold]{printable('dir' + chr(92))}[/] done").endswith(" done")


def test_without_markup_only_control_characters_are_escaped():
    assert printable("[red]\x1b", markup=False) == "[red]\\x1b"


def test_length_is_bounded_and_the_cut_is_said():
    text = printable("x" * 100_000, limit=50)
    assert text == "x" * 50 + "… (100,000 characters)"


def test_any_value_becomes_text():
    assert printable(None) == "None" and printable(3) == "3"
