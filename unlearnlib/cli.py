"""What the command-line tools share: argument types that check their values, and one-line user errors.

An argument type raises :class:`argparse.ArgumentTypeError`, which argparse
prints as one line naming the option (``error: argument --epochs: ...``) with
exit status 2, before any work starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "whole number"
    return parse


def names(choices: Sequence[str], what: str) -> Callable[[str], list[str]]:
    """An argparse type: comma-separated names among ``choices`` (spaces around them ignored, repeats dropped)."""

    def parse(text: str) -> list[str]:
        chosen = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
        if not chosen:
            raise argparse.ArgumentTypeError(f"give at least one {what}; choose from {', '.join(choices)}")
        unknown = [name for name in chosen if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(map(repr, unknown))}; choose from {', '.join(choices)}"
            )
        return chosen

    parse.__name__ = f"list of {what}s"
    return parse


def split_names(values: Sequence[str]) -> list[str]:
    """Names given as several arguments, comma-separated ones, or both, stripped, repeats dropped."""
    return list(dict.fromkeys(part.strip() for value in values for part in value.split(",") if part.strip()))
