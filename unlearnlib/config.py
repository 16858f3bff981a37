"""The machine a course runs on: the environment variables it reads, device choice, seeding and its paths.

The profiles themselves (model, training recipe, sample counts) are in :mod:`unlearnlib.profiles`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

PROFILE_ENV = "UNLEARN_PROFILE"
DATASET_ENV = "UNLEARN_DATASET"
DEVICE_ENV = "UNLEARN_DEVICE"
ROOT_ENV = "UNLEARN_ROOT"
OVERRIDES_ENV = "UNLEARN_OVERRIDES"


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
