"""Splitting a shell's input into `;`-terminated statements (pure: no Spark).

A `;` ends a statement unless it is inside a quoted string ('...', "..."), a quoted name (`...`), a
`--` line comment or a `/* */` block comment. Backslash escapes a character inside a string, as in
Spark SQL. Statements that are only whitespace or comments are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    """Complete statements (without their `;`) and the unfinished rest of the input."""

    statements: tuple[str, ...]
    rest: str


def split_statements(text: str) -> Split:
    out: list[str] = []
    start, i, n = 0, 0, len(text)
    quote: str | None = None
    while i < n:
        c = text[i]
        if quote is not None:
            if c == "\\" and quote != "`":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"`":
            quote = c
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        elif c == ";":
            out.append(text[start:i])
            start = i + 1
        i += 1
    kept = tuple(s.strip() for s in out if not is_blank(s))
    return Split(kept, text[start:])


def is_blank(statement: str) -> bool:
    """Only whitespace and comments."""
    text, i = statement, 0
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
        else:
            return False
    return True
