"""Profiles, device choice, seeding and the course's paths.

A profile fixes the dataset, model size, training budget and sample counts, so
that one notebook serves a CI smoke run, a laptop and a GPU.  It is chosen by
the ``UNLEARN_PROFILE`` environment variable; without it the default is ``gpu``
when CUDA is available and ``cpu`` otherwise.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from . import validate


@dataclass(frozen=True)
class Profile:
    """Everything a notebook needs to size its experiments."""

    name: str
    meant_for: str
    datasets: tuple[str, ...]
    """Datasets in order of preference: the first one available is used."""
    arch: str
    width: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    n_train: int | None
    """Training images used (a fixed random subset); ``None`` for all."""
    n_test: int | None
    """Test images used (a fixed random subset); ``None`` for all."""
    n_pair: int | None
    """Training images of the majority class in a two-class task (corrective unlearning); ``None`` for all."""
    augment: bool
    """Whether the original model trains on augmented batches.

    Off on the small CPU datasets, so that the original model memorises its
    training set (training accuracy near 1) as the large models unlearning is
    about do: otherwise there is little for unlearning to remove.
    """
    n_models: int
    """N, the models trained per side (different seeds) for forgetting quality; at least 3."""
    per_dataset: Mapping[str, Mapping[str, object]] = field(default_factory=dict, hash=False)
    """Settings that differ on one dataset, by dataset name (see :meth:`for_dataset`)."""

    def __post_init__(self) -> None:
        for name in ("width", "epochs", "batch_size", "n_train", "n_test", "n_pair"):
            validate.optional_integer(f"profile {self.name}: {name}", getattr(self, name), minimum=1)
        validate.positive(f"profile {self.name}: lr", self.lr)
        validate.non_negative(f"profile {self.name}: weight_decay", self.weight_decay)
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
        return replace(self, **changes) if changes else self

    def for_dataset(self, dataset: str) -> Profile:
        """The settings this profile uses on ``dataset``: its own, with that dataset's entry in ``per_dataset``.

        A small or easy dataset may need another subset size, width or budget for the
        notebooks' claims to hold on it as they do on the profile's first choice.
        """
        return self.adjusted(**self.per_dataset.get(dataset, {}))


SETTINGS: tuple[str, ...] = (
    "arch",
    "width",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "n_train",
    "n_test",
    "n_pair",
    "augment",
    "n_models",
)
"""The settings a dataset's entry in a profile, or ``UNLEARN_OVERRIDES``, may change."""

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
        arch="resnet9",
        width=8,
        epochs=10,
        batch_size=64,
        lr=0.05,
        weight_decay=5e-4,
        n_train=1_000,
        n_test=1_000,
        n_pair=300,
        augment=False,
        n_models=3,
        per_dataset={"digits": DIGITS},
    ),
    "cpu": Profile(
        name="cpu",
        meant_for="a laptop and `make course`: each notebook within 10 minutes on 2 cores",
        datasets=("fashion-mnist", "digits"),
        arch="resnet9",
        width=16,
        epochs=8,
        batch_size=128,
        lr=0.1,
        weight_decay=5e-4,
        n_train=5_000,
        n_test=2_000,
        n_pair=1_000,
        augment=False,
        n_models=3,
        per_dataset={"digits": DIGITS},
    ),
    "gpu": Profile(
        name="gpu",
        meant_for="Colab or a GPU box: each notebook in minutes on a T4",
        datasets=("cifar10", "fashion-mnist", "digits"),
        arch="resnet18",
        width=64,
        epochs=18,
        batch_size=512,
        lr=0.2,
        weight_decay=5e-4,
        n_train=None,
        n_test=None,
        n_pair=None,
        augment=True,
        n_models=3,
        per_dataset={"digits": DIGITS},
    ),
}

PROFILE_ENV = "UNLEARN_PROFILE"
DATASET_ENV = "UNLEARN_DATASET"
DEVICE_ENV = "UNLEARN_DEVICE"
ROOT_ENV = "UNLEARN_ROOT"
OVERRIDES_ENV = "UNLEARN_OVERRIDES"


def _setting_value(name: str, text: str) -> object:
    kind = {f.name: f.type for f in fields(Profile)}[name]
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


def device_choices() -> str:
    """The devices this machine offers, as :func:`choose_device` accepts them."""
    choices = ["cpu"]
    if torch.cuda.is_available():
        choices += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        choices.append("mps")
    return ", ".join(choices)


def choose_device(name: str | torch.device | None = None) -> torch.device:
    """The compute device: ``name``, else ``UNLEARN_DEVICE``, else CUDA when present, else CPU.

    ``cpu``, ``cuda`` or ``cuda:N`` (when CUDA is available and N is one of its
    devices) and ``mps`` (when PyTorch's Metal backend is available); anything
    else is refused with the choices this machine offers.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"device must be a name such as 'cpu' or 'cuda', got {name!r} ({type(name).__name__})")
    source = "device"
    if not name:
        name = os.environ.get(DEVICE_ENV, "").strip() or None
        source = DEVICE_ENV
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    asked = f"{source}={name!r}" if source == DEVICE_ENV else f"device {name!r}"
    try:
        device = torch.device(name.strip().lower())
    except RuntimeError:
        raise ValueError(f"{asked} is not a device; choose one of {device_choices()}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{asked} asked for, but CUDA is not available; choose one of {device_choices()}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"{asked} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s); "
                f"choose one of {device_choices()}"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(
                f"{asked} asked for, but PyTorch's MPS backend is not available; choose one of {device_choices()}"
            )
    elif device.type != "cpu":
        raise ValueError(f"{asked} is not supported by the course; choose one of {device_choices()}")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def root_dir() -> Path:
    """The course's root folder: ``UNLEARN_ROOT``, else the checkout holding this package, else the cwd."""
    from_env = os.environ.get(ROOT_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser().resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout
    return Path.cwd()


class UnusableRoot(ValueError):
    """The course's root folder (``UNLEARN_ROOT``) or a folder in it cannot be used: not a folder, or not writable."""


def check_writable_folder(folder: Path, what: str, fix: str | None = None) -> Path:
    """``folder``, after checking that it is a folder this process can write to, or that it could be created.

    Nothing is created.  Raises :class:`UnusableRoot`, naming ``what``, the problem and ``fix``
    (by default: set ``UNLEARN_ROOT``), otherwise.
    """
    folder = Path(folder)
    from_env = os.environ.get(ROOT_ENV, "").strip()
    fix = fix or f"set {ROOT_ENV} to a folder you can write to" + (
        f" (it is {from_env!r})" if from_env else " (by default it is the course's checkout)"
    )
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == folder else f"cannot be created: {existing} is a file"
        raise UnusableRoot(f"{what} {folder} {where}, not a folder; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "is not writable" if existing == folder else f"cannot be created: {existing} is not writable"
        raise UnusableRoot(f"{what} {folder} {where}; {fix}")
    return folder


def check_root() -> Path:
    """The course's root folder, after checking that it and its ``checkpoints/`` can be written to.

    Called when a session starts, so that a misplaced ``UNLEARN_ROOT`` fails
    before any training rather than when a trained model is saved.
    """
    root = check_writable_folder(root_dir(), "the course folder")
    check_writable_folder(checkpoint_dir(), "the checkpoint folder")
    return root


def data_dir() -> Path:
    """Where datasets are downloaded to and read from."""
    return root_dir() / "data"


def checkpoint_dir() -> Path:
    """Where the checkpoint cache keeps trained models."""
    return root_dir() / "checkpoints"


def build_dir() -> Path:
    """Where executed notebooks, results and slides are written."""
    return root_dir() / "build"
