"""argparse types that check a value when the command line is parsed: a bad hour or date is a usage
error (exit 2) before the JVM starts, a key file is created or any table is read or written."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def checked(parse: Callable[[str], object]) -> Callable[[str], str]:
    """The text as given, once `parse` accepts it (the job parses it again where it uses it), else
    argparse's usage error with `parse`'s message (`ValueError`, which `UsageError` is too)."""
    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
        return text
    check.__name__ = getattr(parse, "__name__", "value")  # argparse names the type in some messages
    return check
