"""The start of every notebook: choose profile, dataset and device, seed, and say which and why."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

from . import config, profiles, validate
from .datasets import DatasetUnavailable, availability, check_dataset_name, load
from .imagedata import ImageData
from .train import TrainConfig


def choose_dataset(profile: profiles.Profile, name: str | None = None) -> tuple[str, str]:
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
class Setup:
    """The choices a notebook runs with, as :func:`start` made them: ``setup = session.start()``."""

    profile: profiles.Profile
    """The profile's settings on this dataset (its ``per_dataset`` entry and any ``UNLEARN_OVERRIDES`` applied)."""
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

    @property
    def recipe(self) -> TrainConfig:
        """How the course's original model is trained: the profile's recipe on this dataset, with this seed.

        Every notebook trains and judges its models with it (``get_or_train(setup.recipe, data)``,
        ``Trial(setup.recipe, ...)``).
        """
        return replace(self.profile.recipe, dataset=self.dataset, seed=self.seed)


def start(profile: str | None = None, dataset: str | None = None, seed: int = 0, *, verbose: bool = True) -> Setup:
    """Choose profile, dataset and device, seed every generator, and print the choices and why.

    Everything is checked here, before any work: the profile, the dataset, the
    device (``UNLEARN_DEVICE``), the seed, and the course folder (``UNLEARN_ROOT``
    must be, or be creatable as, a folder this process can write to, with its
    ``checkpoints/``), so that no model is trained only to be lost when it is saved.
    """
    seed = validate.seed("seed", seed)
    chosen, why_profile = profiles.choose_profile(profile)
    device = config.choose_device()
    config.check_root()
    name, why_dataset = choose_dataset(chosen, dataset)
    adjusted = chosen.per_dataset.get(name, {})
    forced = profiles.overrides()
    settings = chosen.for_dataset(name).adjusted(**forced)
    config.seed_everything(seed)
    if verbose:
        print(f"profile  {chosen.name:14s} {chosen.meant_for} ({why_profile})")
        if adjusted:
            print(f"{'':9s}{'':14s} on {name}: {_listed(adjusted)}")
        if forced:
            print(f"{'':9s}{'':14s} {config.OVERRIDES_ENV}: {_listed(forced)}")
        print(f"dataset  {name:14s} {why_dataset}")
        print(f"device   {str(device):14s} {_device_reason(device)}")
        print(f"seed     {seed}")
    return Setup(settings, name, device, seed)


def _listed(settings: dict[str, object]) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items())


_DOWNLOAD_SIZE = {"cifar10": "170 MB", "cifar100": "170 MB", "mnist": "11 MB", "fashion-mnist": "30 MB"}


def how_to_get(name: str) -> str:
    """How to make dataset ``name`` available on this machine."""
    if name == "digits":
        return "it ships with scikit-learn"
    how = f"online, it is downloaded into {config.data_dir()} on first use ({_DOWNLOAD_SIZE[name]}, checksum-verified)"
    if name == "fashion-mnist":
        how += "; offline, on Debian or Ubuntu: sudo apt-get install dataset-fashion-mnist"
    else:
        how += "; offline, copy torchvision's files for it there (see data/README.md)"
    return how


def _source(name: str) -> str:
    """Where an available dataset will be read from, or that it will be downloaded."""
    if name == "digits":
        return "from scikit-learn's bundled copy"
    ok, why = availability(name)
    if why != "on disk":
        return f"not on disk: it will be downloaded into {config.data_dir()} ({_DOWNLOAD_SIZE[name]})"
    from .datasets import DEBIAN_FASHION_MNIST

    if name == "fashion-mnist" and not (config.data_dir() / "FashionMNIST" / "raw").is_dir():
        return f"read from Debian's dataset-fashion-mnist ({DEBIAN_FASHION_MNIST})"
    return f"read from {config.data_dir()}"


def describe_data(profile: str | None = None, dataset: str | None = None) -> str:
    """Which profile and dataset a run will use, why, where the data comes from, and how to get a better one."""
    chosen, why_profile = profiles.choose_profile(profile)
    name, why_dataset = choose_dataset(chosen, dataset)
    lines = [
        f"profile  {chosen.name}: {chosen.meant_for} ({why_profile})",
        f"dataset  {name}: {why_dataset}",
        f"         {_source(name)}",
    ]
    preferred = chosen.datasets[: chosen.datasets.index(name)] if name in chosen.datasets else ()
    if not dataset and not os.environ.get(config.DATASET_ENV, "").strip():
        for better in preferred:
            lines.append(f"better   {better} (profile {chosen.name}'s first choice): {how_to_get(better)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m unlearnlib.session``: print the data set-up a run would use, before it starts."""
    import argparse

    from .datasets import DATASETS

    parser = argparse.ArgumentParser(
        prog="python -m unlearnlib.session",
        description="Say which profile and dataset a run will use, why, and how to get a better dataset.",
    )
    parser.add_argument("--profile", choices=sorted(profiles.PROFILES), help="default: UNLEARN_PROFILE, else by device")
    parser.add_argument("--dataset", choices=DATASETS, help="default: UNLEARN_DATASET, else the profile's first found")
    args = parser.parse_args(argv)
    try:
        print(describe_data(args.profile, args.dataset))
    except ValueError as err:
        parser.error(str(err))
    except DatasetUnavailable as err:
        asked = args.dataset or os.environ.get(config.DATASET_ENV, "").strip()
        parser.error(f"{err}. To get it: {how_to_get(asked)}" if asked in _DOWNLOAD_SIZE else str(err))


if __name__ == "__main__":
    main()
