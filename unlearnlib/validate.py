"""Checks of arguments: whole numbers, positive numbers, fractions in an interval, and class ids.

Every public function of the package checks its counts, sizes, epochs, seeds,
class ids, fractions and rates here, before any expensive work, so that bad
input always meets the same clear error: a :class:`TypeError` for a value of
the wrong kind (a ``float`` or a ``bool`` where a whole number is needed, a
string where a number is), a :class:`ValueError` for one out of range.  Both
name the argument, the value given and what is allowed.

A ``bool`` is not a number here (``True`` as an epoch count or a class id is a
mistake, never meant as 1), and a float is not a whole number, even ``3.0``.
NumPy and PyTorch integer scalars count as whole numbers, their floating scalars
as numbers.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch


def _scalar(value: object) -> object:
    """A one-element tensor or NumPy 0-d array as its Python value; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.item() if value.dtype != torch.bool else bool(value.item())
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def _kind(value: object) -> str:
    return type(value).__name__


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def integer(name: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int``, after checking it is a whole number (not a bool, not a float) in range.

    ``minimum`` and ``maximum`` are inclusive bounds.
    """
    plain = _scalar(value)
    if isinstance(plain, bool | np.bool_) or not isinstance(plain, numbers.Integral):
        hint = " (a bool is not a number here)" if isinstance(plain, bool | np.bool_) else ""
        raise TypeError(f"{name} must be a whole number, got {_show(value)} ({_kind(value)}){hint}")
    number = int(plain)
    if minimum is not None and maximum is not None and not minimum <= number <= maximum:
        raise ValueError(f"{name} must be in {minimum}..{maximum}, got {number}")
    if minimum is not None and number < minimum:
        bound = {0: ">= 0", 1: "positive (at least 1)"}.get(minimum, f"at least {minimum}")
        raise ValueError(f"{name} must be {bound}, got {number}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {number}")
    return number


def optional_integer(name: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """``None``, or ``value`` checked as :func:`integer`."""
    return None if value is None else integer(name, value, minimum=minimum, maximum=maximum)


def seed(name: str, value: object) -> int:
    """A seed: a whole number in 0..2**32 - 1 (the range every generator the package seeds accepts)."""
    return integer(name, value, minimum=0, maximum=2**32 - 1)


def real(name: str, value: object) -> float:
    """``value`` as a finite ``float``, after checking it is a real number (not a bool, not a string)."""
    plain = _scalar(value)
    if isinstance(plain, bool | np.bool_) or not isinstance(plain, numbers.Real):
        hint = " (a bool is not a number here)" if isinstance(plain, bool | np.bool_) else ""
        raise TypeError(f"{name} must be a number, got {_show(value)} ({_kind(value)}){hint}")
    number = float(plain)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    return number


def positive(name: str, value: object) -> float:
    """``value`` as a ``float``, after checking it is a finite number above 0."""
    number = real(name, value)
    if not number > 0:
        raise ValueError(f"{name} must be positive, got {number}")
    return number


def non_negative(name: str, value: object) -> float:
    """``value`` as a ``float``, after checking it is a finite number of at least 0."""
    number = real(name, value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {number}")
    return number


def interval(
    name: str,
    value: object,
    low: float = 0.0,
    high: float = 1.0,
    *,
    low_open: bool = True,
    high_open: bool = False,
) -> float:
    """``value`` as a ``float``, after checking it lies in the interval from ``low`` to ``high``.

    The default is (0, 1], a share of something that must not be empty;
    ``low_open`` and ``high_open`` say whether each end is excluded.
    """
    number = real(name, value)
    above = number > low if low_open else number >= low
    below = number < high if high_open else number <= high
    if not (above and below):
        shown = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {shown}, got {number}")
    return number


def fraction(name: str, value: object) -> float:
    """A fraction in (0, 1]: a share of a set that keeps at least something."""
    return interval(name, value, 0.0, 1.0)


def class_id(name: str, value: object, num_classes: int, *, dataset: str | None = None) -> int:
    """A class index: a whole number in 0..num_classes - 1 (``dataset`` names the data in the error)."""
    plain = _scalar(value)
    if isinstance(plain, bool | np.bool_) or not isinstance(plain, numbers.Integral):
        raise TypeError(
            f"{name} must be a class index (a whole number in 0..{num_classes - 1}) or a class name, "
            f"got {_show(value)} ({_kind(value)})"
        )
    index = int(plain)
    if not 0 <= index < num_classes:
        where = f" for {dataset}" if dataset else ""
        which = "" if name == "class" else f" ({name})"
        raise ValueError(f"unknown class {index}{which}{where}: classes are 0..{num_classes - 1}")
    return index


def real_array(what: str, values: object) -> np.ndarray:
    """``values`` (an array, tensor or nested list of real numbers) as a float64 NumPy array.

    A ``TypeError`` naming ``what`` when they are not real numbers; NaN and infinities pass (callers decide).
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.dtype == torch.bool or values.is_complex():
            raise TypeError(f"{what} must be real numbers, got a tensor of {values.dtype}")
    else:
        try:
            kind = np.asarray(values).dtype.kind
        except ValueError as err:  # ragged nested lists
            raise ValueError(f"{what} must be one array of numbers: {err}") from None
        if isinstance(values, str | bytes) or kind not in "iuf":
            raise TypeError(f"{what} must be real numbers (an array, tensor or list of them), got {values!r:.60}")
    return np.asarray(values, dtype=np.float64)


def check_positive(**values: object) -> None:
    """Raise, naming it, if any of ``values`` is not a positive finite number (learning rates, weights, scales)."""
    for name, value in values.items():
        positive(name, value)


def check_counts(**values: object) -> None:
    """Raise, naming it, if any of ``values`` is not a whole number of at least 1 (epochs, sizes, steps)."""
    for name, value in values.items():
        integer(name, value, minimum=1)


def check_fraction(name: str, value: object) -> None:
    """Raise unless ``0 < value <= 1``."""
    fraction(name, value)
