"""The registry of unlearning methods: names to functions, for sweeps and the leaderboard.

Every method has one call shape, ``method(model, request, data, **hyperparameters) -> nn.Module``:
``model`` is the trained network (or a cached :class:`~unlearnlib.checkpoints.TrainedModel`),
``request`` the :class:`~unlearnlib.forget.ForgetRequest`, ``data`` the
:class:`~unlearnlib.data.ImageData` it was trained on.  A method returns a new
network in eval mode and never changes the one it was given.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..data import ImageData
from ..forget import ForgetRequest

REQUEST_KINDS = ("random", "class", "corrective")
FAMILIES = ("exact", "influence", "fine-tuning", "adversarial", "class")
"""The families of methods (one notebook each): the gold standard first, then in teaching order."""


@dataclass(frozen=True)
class Method:
    """A registered unlearning method."""

    name: str
    function: Callable[..., nn.Module]
    family: str
    """The notebook family: one of :data:`FAMILIES`."""
    kinds: tuple[str, ...]
    """The request kinds it applies to (``"random"``, ``"class"``, ``"corrective"``)."""
    summary: str

    def hyperparameters(self) -> dict[str, object]:
        """The method's hyperparameters and their defaults."""
        parameters = list(inspect.signature(self.function).parameters.values())[3:]
        return {p.name: p.default for p in parameters if p.name != "progress"}

    def applies_to(self, request: ForgetRequest) -> bool:
        return request.kind in self.kinds

    def __call__(self, model, request: ForgetRequest, data: ImageData, **hyperparameters) -> nn.Module:
        if not self.applies_to(request):
            raise ValueError(f"{self.name} unlearns {' or '.join(self.kinds)} requests, not a {request.kind!r} request")
        unknown = set(hyperparameters) - set(self.hyperparameters()) - {"progress"}
        if unknown:
            raise TypeError(
                f"{self.name} has no hyperparameter {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(self.hyperparameters())}"
            )
        return self.function(model, request, data, **hyperparameters)


METHODS: dict[str, Method] = {}


def register(name: str, *, family: str, summary: str, kinds: tuple[str, ...] = REQUEST_KINDS):
    """Add the decorated function to :data:`METHODS` under ``name``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    if not set(kinds) <= set(REQUEST_KINDS):
        raise ValueError(f"request kinds must be among {REQUEST_KINDS}, got {kinds}")

    def add(function: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in METHODS:
            raise ValueError(f"a method named {name!r} is already registered")
        METHODS[name] = Method(name, function, family, tuple(kinds), summary)
        return function

    return add


def get(name: str) -> Method:
    """The registered method ``name``; an unknown name gets an error that lists the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown unlearning method {name!r}; registered: {', '.join(METHODS)}") from None


def methods(kind: str | None = None) -> list[Method]:
    """The registered methods in teaching order (by family), only those for ``kind`` requests if given."""
    if kind is not None and kind not in REQUEST_KINDS:
        raise ValueError(f"unknown request kind {kind!r}; choose one of {', '.join(REQUEST_KINDS)}")
    ordered = sorted(METHODS.values(), key=lambda m: FAMILIES.index(m.family))
    return [m for m in ordered if kind is None or kind in m.kinds]
