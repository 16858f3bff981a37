"""The registry of unlearning methods: names to functions, for sweeps and the leaderboard.

Every method has one call shape, ``method(model, request, data, **hyperparameters) -> nn.Module``:
``model`` is the trained network (or a cached :class:`~unlearnlib.checkpoints.TrainedModel`),
``request`` the :class:`~unlearnlib.forget.ForgetRequest`, ``data`` the
:class:`~unlearnlib.imagedata.ImageData` it was trained on.  A method returns a new
network in eval mode and never changes the one it was given.  It gets the data
without its test split (:meth:`~unlearnlib.imagedata.ImageData.for_methods`): the
evaluation alone uses that, and a method that needs unseen examples takes them from
``data.validation``.

A method started from a cached model unlearns with the batch size that model was
trained with, unless told otherwise: the training recipe is the one owner of the
batch size, for training and unlearning alike.
"""

from __future__ import annotations

import hashlib
import inspect
import marshal
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .. import guard
from ..checkpoints import TrainedModel, network
from ..forget import REQUEST_KINDS, ForgetRequest
from ..imagedata import ImageData
from . import networks, training

FAMILIES = ("exact", "influence", "fine-tuning", "adversarial", "class", "state-of-the-art")
"""The families of methods (one notebook each): the gold standard first, then in teaching order, then the
methods the field compares with today."""


def _own_code(function: Callable) -> str:
    """The source of ``function``'s module; else of the function itself; else its compiled code, as text."""
    for source_of in (inspect.getmodule(function), function):
        try:
            return inspect.getsource(source_of)
        except (OSError, TypeError):
            continue
    return marshal.dumps(function.__code__).hex()


@dataclass(frozen=True)
class Method:
    """A registered unlearning method: what ``unlearn.NAME`` is, and the one door to the function behind it.

    Calling it checks that the request fits
    the data (its size, its class) and is of a kind the method applies to, and
    that every hyperparameter it is given exists; fills in the hyperparameters
    not given (:meth:`settings`); runs the function with the run announced to the
    divergence guard (:func:`unlearnlib.guard.running`, so that a loop that
    diverges names the method and its hyperparameters) on the data with its test
    split withheld; and refuses to return a
    network with non-finite weights.  ``unlearn.NAME(...)`` and
    ``unlearn.get("NAME")(...)`` are this one object.
    """

    name: str
    function: Callable[..., nn.Module]
    family: str
    """The notebook family: one of :data:`FAMILIES`."""
    kinds: tuple[str, ...]
    """The request kinds it applies to (``"random"``, ``"class"``, ``"corrective"``)."""
    summary: str

    def __post_init__(self) -> None:
        # Read like the function itself: its name, its docstring, its signature (inspect follows __wrapped__).
        object.__setattr__(self, "__name__", self.name)
        object.__setattr__(self, "__doc__", self.function.__doc__)
        object.__setattr__(self, "__wrapped__", self.function)

    def hyperparameters(self) -> dict[str, object]:
        """The method's hyperparameters and their defaults."""
        parameters = list(inspect.signature(self.function).parameters.values())[3:]
        return {p.name: p.default for p in parameters if p.name != "progress"}

    def code_digest(self) -> str:
        """A hash of the source of the method's module and of the code the methods share (``networks``, ``training``).

        Part of an unlearned model's cache key, so that changing a method's code gives new cache entries.  A
        method defined where its module has no source file (a notebook's cell, an interactive session) is
        hashed by its own source, or by its compiled code where even that is unavailable.
        """
        texts = [_own_code(self.function)] + [inspect.getsource(module) for module in (networks, training)]
        return hashlib.sha256("".join(texts).encode()).hexdigest()

    def applies_to(self, request: ForgetRequest) -> bool:
        return request.kind in self.kinds

    def check_hyperparameters(self, hyperparameters: dict[str, object]) -> None:
        """Raise a ``TypeError`` naming any of ``hyperparameters`` the method does not take, and those it does."""
        unknown = set(hyperparameters) - set(self.hyperparameters()) - {"progress"}
        if unknown:
            raise TypeError(
                f"{self.name} has no hyperparameter {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(self.hyperparameters())}"
            )

    def settings(self, model, hyperparameters: dict[str, object]) -> dict[str, object]:
        """Every hyperparameter a run on ``model`` gets: those given, else for a cached model the batch size
        it was trained with, else the method's defaults (``progress`` aside)."""
        self.check_hyperparameters(hyperparameters)
        recipe = {}
        if isinstance(model, TrainedModel) and "batch_size" in self.hyperparameters():
            recipe["batch_size"] = model.config.batch_size
        given = {key: value for key, value in hyperparameters.items() if key != "progress"}
        return self.hyperparameters() | recipe | given

    def __call__(self, model, request: ForgetRequest, data: ImageData, **hyperparameters) -> nn.Module:
        return network(self.run(model, request, data, **hyperparameters))

    def run(self, model, request: ForgetRequest, data: ImageData, **hyperparameters) -> nn.Module | TrainedModel:
        """The door itself: what calling the method returns, but a method whose result is a model of the
        checkpoint cache (retraining) gives that :class:`~unlearnlib.checkpoints.TrainedModel`, with the
        time its training took, so that no cache stores it twice and no timer times its loading."""
        if not isinstance(request, ForgetRequest):
            raise TypeError(f"{self.name} needs a ForgetRequest as its request, got {type(request).__name__}")
        if not isinstance(data, ImageData):
            raise TypeError(f"{self.name} needs the ImageData the model was trained on, got {type(data).__name__}")
        request.check_fits(data)
        if not self.applies_to(request):
            raise ValueError(f"{self.name} unlearns {' or '.join(self.kinds)} requests, not a {request.kind!r} request")
        settings = self.settings(model, hyperparameters)
        progress = {"progress": hyperparameters["progress"]} if "progress" in hyperparameters else {}
        with guard.running(self.name, settings):
            result = self.function(model, request, data.for_methods(), **settings, **progress)
        guard.check_weights(
            network(result),
            guard.describe(self.name, settings),
            "lower its learning rate (or raise its damping) and run it again",
        )
        return result


METHODS: dict[str, Method] = {}


def register(name: str, *, family: str, summary: str, kinds: tuple[str, ...] = REQUEST_KINDS):
    """Add the decorated function to :data:`METHODS` under ``name``; the name it is defined under becomes the
    :class:`Method` (so that every call, direct or through the registry, passes the same checks)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    if not set(kinds) <= set(REQUEST_KINDS):
        raise ValueError(f"request kinds must be among {REQUEST_KINDS}, got {kinds}")

    def add(function: Callable[..., nn.Module]) -> Method:
        if name in METHODS:
            raise ValueError(f"a method named {name!r} is already registered")
        METHODS[name] = Method(name, function, family, tuple(kinds), summary)
        return METHODS[name]

    return add


def get(name: str) -> Method:
    """The registered method ``name``; an unknown name gets an error that lists the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown unlearning method {name!r}; registered: {', '.join(METHODS)}") from None


def check_overrides(hyperparameters: dict[str, dict] | None, names: list[str]) -> dict[str, dict]:
    """Per-method hyperparameters for the methods ``names`` (``{}`` for none), checked before any run: each
    names a method among them, and each method takes the hyperparameters given to it."""
    hyperparameters = hyperparameters or {}
    if not isinstance(hyperparameters, dict):
        raise TypeError(f"hyperparameters must be a dict of method name -> dict, got {type(hyperparameters).__name__}")
    for name, overrides in hyperparameters.items():
        if name not in names:
            raise ValueError(
                f"hyperparameters are given for {name!r}, which is not among the methods run ({', '.join(names)})"
            )
        if not isinstance(overrides, dict):
            raise TypeError(f"hyperparameters[{name!r}] must be a dict of name -> value, got {overrides!r:.60}")
        get(name).check_hyperparameters(overrides)
    return hyperparameters


def methods(kind: str | None = None) -> list[Method]:
    """The registered methods in teaching order (by family), only those for ``kind`` requests if given."""
    if kind is not None and kind not in REQUEST_KINDS:
        raise ValueError(f"unknown request kind {kind!r}; choose one of {', '.join(REQUEST_KINDS)}")
    ordered = sorted(METHODS.values(), key=lambda m: FAMILIES.index(m.family))
    return [m for m in ordered if kind is None or kind in m.kinds]
