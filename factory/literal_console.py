"""A rich Console that prints every string as it is stored (issue 23 item B).

The CLI prints stored text (query results, sample texts, model and mixture names) that a
model or a user wrote. A normal Console parses strings as markup: `[/x]` raised
MarkupError (a traceback), `[bold red]hidden[/]` printed as "hidden", `:smile:` became an
emoji; and an ESC sequence in a value went to the terminal, which obeyed it. What is shown
must be what is stored, so this console never parses markup or emoji codes, and control
characters (and the bidi overrides that reorder a line) are printed as visible escapes.
Styling that the CLI itself adds is built as rich Text (render.explain_view), never markup.
"""
from __future__ import annotations

import unicodedata

from rich.console import Console
from rich.text import Text

_KEPT = frozenset("\n\t")  # line structure of multi-line cells and trees
# Format characters that reorder or hide what follows on the line (Trojan Source).
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """text with each control character (but newline and tab) written as an escape:
    ESC shows as the four characters \\x1b and the terminal sees no escape sequence."""
    if text.isprintable():  # the common case: nothing to replace
        return text
    return "".join(_escape(ch) if (ch not in _KEPT and unicodedata.category(ch) == "Cc") or ch in _BIDI
                   else ch for ch in text)


def literal(text: str, style: str = "") -> Text:
    """A Text of stored text: no markup parsed, control characters visible."""
    return Text(visible(text), style=style)


class LiteralConsole(Console):
    """Every str it renders (print arguments, table cells, titles, tree labels) goes through
    render_str: here with markup and emoji off and control characters made visible."""

    def render_str(self, text: str, **kwargs) -> Text:
        kwargs["markup"] = False
        kwargs["emoji"] = False
        return super().render_str(visible(text), **kwargs)
