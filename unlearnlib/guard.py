"""The guard against divergence shared by every training and unlearning loop.

A loop that diverges fills its network with NaN or infinite weights; unchecked,
such a network goes on to be evaluated, cached or compared, and the failure shows
up far away (an accuracy of 1/K, a puzzling membership-inference error).  Every
loop steps through :class:`unlearnlib.train.Stepper`, which stops it with a
:class:`Diverged` error as soon as the loss or the weights are not finite, naming
what was being trained (the method or the training run), its hyperparameters and
the epoch.

:func:`running` tells the steppers started inside it what they are training:
the registered unlearning methods wrap their run in it (see
:class:`unlearnlib.unlearn.Method`), and :func:`check_weights` is the last check
of the network a method returns, for methods without a training loop too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn


class Diverged(FloatingPointError):
    """A training or unlearning run produced a non-finite loss or non-finite weights."""


_CURRENT: ContextVar[tuple[str, dict] | None] = ContextVar("unlearnlib_current_run", default=None)


@contextmanager
def running(name: str, hyperparameters: Mapping[str, object]) -> Iterator[None]:
    """Within this block, a stepper that meets a non-finite value names ``name`` and ``hyperparameters``."""
    token = _CURRENT.set((name, dict(hyperparameters)))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> tuple[str, dict] | None:
    """The run announced by the innermost :func:`running` block, if any: its name and hyperparameters."""
    return _CURRENT.get()


def describe(name: str, hyperparameters: Mapping[str, object]) -> str:
    """``name (key=value, ...)``: a run as an error message names it."""
    if not hyperparameters:
        return name
    return f"{name} ({', '.join(f'{key}={value!r}' for key, value in hyperparameters.items())})"


def non_finite_entries(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors in ``tensors`` that hold a NaN or an infinity."""
    names = [name for name, t in tensors.items() if t.is_floating_point() or t.is_complex()]
    if not names:
        return []
    finite = torch.stack([tensors[name].detach().isfinite().all() for name in names]).cpu()
    return [name for name, ok in zip(names, finite.tolist()) if not ok]


def check_weights(model: nn.Module, what: str, advice: str = "lower its learning rate and run it again") -> nn.Module:
    """``model``, after checking that its weights and buffers are finite; :class:`Diverged` names ``what`` otherwise."""
    bad = non_finite_entries(model.state_dict())
    if bad:
        shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
        raise Diverged(f"{what} produced a network with non-finite weights ({shown}): it diverged; {advice}")
    return model
