"""The start of every notebook: choose profile, dataset and device, seed, and say which and why."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from . import config, validate
from .data import DatasetUnavailable, ImageData, availability, check_dataset_name, load
from .train import TrainConfig, original_config


def choose_dataset(profile: config.Profile, name: str | None = None) -> tuple[str, str]:
    """The dataset to use and why: ``name``, else ``UNLEARN_DATASET``, else the profile's first available.

    A dataset asked for explicitly must be available (an error says why not);
    the profile's choices fall back in order, and the reason names what was skipped.
    """
    asked = name or os.environ.get(config.DATASET_ENV, "").strip() or None
    if asked is not None:
        check_dataset_name(asked)
        ok, why = availability(asked)
        if not ok:
            raise DatasetUnavailable(f"dataset {asked!r} was asked for but is {why}")
        return asked, "asked for by name" if name else f"{config.DATASET_ENV}={asked}"
    skipped = []
    for candidate in profile.datasets:
        ok, why = availability(candidate)
        if ok:
            reason = f"profile {profile.name}'s choice, {why}"
            if skipped:
                reason += "; skipped " + "; ".join(skipped)
            return candidate, reason
        skipped.append(f"{candidate} ({why})")
    raise DatasetUnavailable(f"none of profile {profile.name}'s datasets is available: {'; '.join(skipped)}")


def _device_reason(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, mixed precision and channels_last"
    if os.environ.get(config.DEVICE_ENV):
        return f"{config.DEVICE_ENV}={os.environ[config.DEVICE_ENV]}"
    return f"no CUDA; {torch.get_num_threads()} CPU threads"


@dataclass(frozen=True)
class Session:
    """The choices a notebook runs with."""

    profile: config.Profile
    dataset: str
    device: torch.device
    seed: int

    def load_data(self) -> ImageData:
        """The session's dataset on its device, subset as its profile says."""
        return load(
            self.dataset,
            n_train=self.profile.n_train,
            n_test=self.profile.n_test,
            seed=self.seed,
            device=self.device,
        )

    def original_config(self) -> TrainConfig:
        """The training config of the course's original model, shared by every notebook."""
        return original_config(self.profile, self.dataset, self.seed)


def start(profile: str | None = None, dataset: str | None = None, seed: int = 0, *, verbose: bool = True) -> Session:
    """Choose profile, dataset and device, seed every generator, and print the choices and why.

    Everything is checked here, before any work: the profile, the dataset, the
    device (``UNLEARN_DEVICE``), the seed, and the course folder (``UNLEARN_ROOT``
    must be, or be creatable as, a folder this process can write to, with its
    ``checkpoints/``), so that no model is trained only to be lost when it is saved.
    """
    seed = validate.seed("seed", seed)
    chosen, why_profile = config.choose_profile(profile)
    device = config.choose_device()
    config.check_root()
    name, why_dataset = choose_dataset(chosen, dataset)
    config.seed_everything(seed)
    if verbose:
        print(f"profile  {chosen.name:14s} {chosen.meant_for} ({why_profile})")
        print(f"dataset  {name:14s} {why_dataset}")
        print(f"device   {str(device):14s} {_device_reason(device)}")
        print(f"seed     {seed}")
    return Session(chosen, name, device, seed)
