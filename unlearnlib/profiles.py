"""Profiles: one notebook sized for a CI smoke run, a laptop or a GPU.

A profile holds the datasets it prefers, one training recipe (a
:class:`~unlearnlib.train.TrainConfig` template: model, budget, optimizer) and
the sample counts of the experiments.  The session fills the recipe in with the
dataset it chose and the seed (:attr:`unlearnlib.session.Setup.recipe`).  The
profile is chosen by ``UNLEARN_PROFILE``; without it the default is ``gpu`` when
CUDA is available and ``cpu`` otherwise.  ``UNLEARN_OVERRIDES`` changes any of
its settings (:data:`SETTINGS`) for a quick run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

import torch

from . import validate
from .config import OVERRIDES_ENV, PROFILE_ENV
from .train import TrainConfig

RECIPE_SETTINGS: tuple[str, ...] = tuple(f.name for f in fields(TrainConfig) if f.name not in ("dataset", "seed"))
"""The settings of a profile's training recipe (the session sets the dataset and the seed)."""

SIZE_SETTINGS: tuple[str, ...] = ("n_train", "n_test", "n_pair", "n_models")
"""The settings that size a profile's experiments."""

SETTINGS: tuple[str, ...] = RECIPE_SETTINGS + SIZE_SETTINGS
"""The settings a dataset's entry in a profile, or ``UNLEARN_OVERRIDES``, may change."""


@dataclass(frozen=True)
class Profile:
    """Everything a notebook needs to size its experiments."""

    name: str
    meant_for: str
    datasets: tuple[str, ...]
    """Datasets in order of preference: the first one available is used."""
    recipe: TrainConfig
    """How the course's original model is trained: a template with no dataset, which the session fills in.

    The smoke and cpu profiles train without augmentation, so that the original
    model memorises its training set (training accuracy near 1) as the large
    models unlearning is about do: otherwise there is little for unlearning to remove.
    """
    n_train: int | None
    """Training images used (a fixed random subset); ``None`` for all."""
    n_test: int | None
    """Test images used (a fixed random subset); ``None`` for all."""
    n_pair: int | None
    """Training images of the majority class in a two-class task (corrective unlearning); ``None`` for all."""
    n_models: int
    """N, the models trained per side (different seeds) for forgetting quality; at least 3."""
    per_dataset: Mapping[str, Mapping[str, object]] = field(default_factory=dict, hash=False)
    """Settings that differ on one dataset, by dataset name (see :meth:`for_dataset`)."""

    def __post_init__(self) -> None:
        if not isinstance(self.recipe, TrainConfig):
            raise TypeError(f"profile {self.name}: recipe must be a TrainConfig, got {type(self.recipe).__name__}")
        if self.recipe.dataset is not None:
            raise ValueError(f"profile {self.name}: its recipe is a template, with no dataset (the session sets it)")
        for name in ("n_train", "n_test", "n_pair"):
            validate.optional_integer(f"profile {self.name}: {name}", getattr(self, name), minimum=1)
        if validate.integer(f"profile {self.name}: n_models", self.n_models) < 3:
            raise ValueError(f"n_models must be at least 3 (forgetting quality needs N >= 3), got {self.n_models}")
        for dataset, changes in self.per_dataset.items():
            unknown = set(changes) - set(SETTINGS)
            if unknown:
                raise ValueError(f"profile {self.name}: {dataset} changes unknown settings {sorted(unknown)}")

    def adjusted(self, **changes: object) -> Profile:
        """This profile with some of its settings (:data:`SETTINGS`) changed; the new values are checked."""
        unknown = set(changes) - set(SETTINGS)
        if unknown:
            raise ValueError(f"unknown profile settings {sorted(unknown)}; choose among {', '.join(SETTINGS)}")
        recipe = {key: value for key, value in changes.items() if key in RECIPE_SETTINGS}
        sizes = {key: value for key, value in changes.items() if key in SIZE_SETTINGS}
        return replace(self, recipe=replace(self.recipe, **recipe), **sizes) if changes else self

    def for_dataset(self, dataset: str) -> Profile:
        """The settings this profile uses on ``dataset``: its own, with that dataset's entry in ``per_dataset``.

        A small or easy dataset may need another subset size, width or budget for the
        notebooks' claims to hold on it as they do on the profile's first choice.
        """
        return self.adjusted(**self.per_dataset.get(dataset, {}))


DIGITS: dict[str, object] = {
    "arch": "resnet9",
    "width": 4,
    "epochs": 12,
    "batch_size": 32,
    "lr": 0.05,
    "weight_decay": 0.02,
    "n_train": 400,
    "augment": False,
}
"""Every profile's recipe on scikit-learn's digits, the offline fallback.

Digits are small (8x8) and easy: a network trained on a thousand of them gets
nearly every unseen digit right with near-certainty, so its forget set looks like
test data and there is little memorisation to measure or unlearn.  A narrow
network on 400 images, with strong weight decay to keep its confidences out of
saturation, memorises them as the course's models memorise Fashion-MNIST, so that
the notebooks' claims hold on the fallback too.
"""

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        meant_for="CI and nbval: every notebook in about a minute",
        datasets=("fashion-mnist", "digits"),
        recipe=TrainConfig(arch="resnet9", width=8, epochs=10, batch_size=64, lr=0.05, augment=False),
        n_train=1_000,
        n_test=1_000,
        n_pair=300,
        n_models=3,
        per_dataset={"digits": DIGITS},
    ),
    "cpu": Profile(
        name="cpu",
        meant_for="a laptop and `make course`: each notebook within 10 minutes on 2 cores",
        datasets=("fashion-mnist", "digits"),
        recipe=TrainConfig(arch="resnet9", width=16, epochs=8, batch_size=128, lr=0.1, augment=False),
        n_train=5_000,
        n_test=2_000,
        n_pair=1_000,
        n_models=3,
        per_dataset={"digits": DIGITS},
    ),
    "gpu": Profile(
        name="gpu",
        meant_for="Colab or a GPU box: each notebook in minutes on a T4",
        datasets=("cifar10", "fashion-mnist", "digits"),
        recipe=TrainConfig(arch="resnet18", width=64, epochs=18, batch_size=512, lr=0.2, augment=True),
        n_train=None,
        n_test=None,
        n_pair=None,
        n_models=3,
        per_dataset={"digits": DIGITS},
    ),
}


def _setting_value(name: str, text: str) -> object:
    kinds = {f.name: f.type for f in (*fields(TrainConfig), *fields(Profile))}
    kind = kinds[name]
    if kind == "bool":
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{name} must be true or false, got {text!r}")
        return text.lower() in ("true", "1", "yes")
    if "None" in kind and text.lower() == "none":
        return None
    try:
        return int(text) if kind.startswith("int") else float(text) if kind == "float" else text
    except ValueError:
        raise ValueError(
            f"{name} must be {'an integer' if kind.startswith('int') else 'a number'}, got {text!r}"
        ) from None


def parse_settings(text: str) -> dict[str, object]:
    """Profile settings written as ``"epochs=1, n_train=64"``, typed; a clear error names a bad one."""
    settings: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = (piece.strip() for piece in item.partition("="))
        if not equals or not value:
            raise ValueError(f"{OVERRIDES_ENV}: write each setting as name=value, got {item!r}")
        if name not in SETTINGS:
            raise ValueError(f"{OVERRIDES_ENV}: unknown setting {name!r}; choose among {', '.join(SETTINGS)}")
        settings[name] = _setting_value(name, value)
    return settings


def overrides() -> dict[str, object]:
    """The settings ``UNLEARN_OVERRIDES`` changes in every profile (none when it is unset).

    Meant for quick runs and tests: for example ``UNLEARN_OVERRIDES="epochs=1,n_train=256"``.
    """
    return parse_settings(os.environ.get(OVERRIDES_ENV, ""))


def profile_named(name: str) -> Profile:
    """The profile called ``name``; a clear error lists the valid names otherwise."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(sorted(PROFILES))}") from None


def choose_profile(name: str | None = None) -> tuple[Profile, str]:
    """The profile to use and the reason it was chosen.

    An explicit ``name`` wins, then ``UNLEARN_PROFILE``, then ``gpu`` when CUDA
    is available and ``cpu`` otherwise.
    """
    if name is not None:
        return profile_named(name), "asked for by name"
    from_env = os.environ.get(PROFILE_ENV, "").strip()
    if from_env:
        return profile_named(from_env), f"{PROFILE_ENV}={from_env}"
    if torch.cuda.is_available():
        return PROFILES["gpu"], f"default: CUDA is available and {PROFILE_ENV} is unset"
    return PROFILES["cpu"], f"default: no CUDA and {PROFILE_ENV} is unset"
