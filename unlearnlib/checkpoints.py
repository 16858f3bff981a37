"""The checkpoint cache: a model trained with a given config on given data is trained once.

``get_or_train(config, data, indices)`` loads the model trained with exactly
that config on exactly those training examples, or trains and saves it.  The
key hashes the whole config, the training examples' indices in the full
dataset and the content of the loaded training split (its images and labels),
so the original model, each retrained model, each seed and each derived
dataset (a poisoned copy, a two-class task) get their own file, and every
notebook that asks for the same one shares it.

Files hold a state_dict and plain metadata only, are loaded with
``weights_only=True``, and are written to a temporary file that is then
renamed, so an interrupted run never leaves a broken checkpoint behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from . import config as course_config
from .data import ImageData, check_indices
from .train import History, TrainConfig, fit, new_model

FORMAT = 1


class CheckpointMismatch(ValueError):
    """A checkpoint belongs to another config, other training data or another model."""


@dataclass
class TrainedModel:
    """A trained network with what produced it."""

    model: nn.Module
    config: TrainConfig
    train_ids: torch.Tensor
    """Indices, in the full training set, of the examples it was trained on."""
    history: History
    train_seconds: float
    path: Path
    from_cache: bool


def _ids_digest(ids: torch.Tensor) -> bytes:
    return hashlib.sha256(ids.to(torch.int64).cpu().numpy().tobytes()).digest()


def cache_key(config: TrainConfig, train_ids: torch.Tensor, split_fingerprint: str) -> str:
    """A hash of the config, the training examples' identities and the loaded training split's content.

    The loaded split matters beyond the examples trained on: its statistics
    normalise the inputs, and its images and labels may have been changed (poisoned, relabelled).
    """
    text = json.dumps(config.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode() + _ids_digest(train_ids) + split_fingerprint.encode()).hexdigest()[:16]


def checkpoint_path(
    config: TrainConfig, train_ids: torch.Tensor, data: ImageData, directory: Path | None = None
) -> Path:
    """Where the cache keeps the model for ``config`` trained on ``train_ids`` of ``data``."""
    directory = Path(directory) if directory is not None else course_config.checkpoint_dir()
    key = cache_key(config, train_ids, data.fingerprint)
    return directory / f"{config.dataset}-{config.arch}-w{config.width}-{key}.pt"


def _atomic_save(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, trained: TrainedModel, data: ImageData) -> None:
    """Write ``trained`` (a model of ``data``) to ``path`` atomically (temporary file, then rename)."""
    payload = {
        "format": FORMAT,
        "config": trained.config.to_dict(),
        "train_ids": trained.train_ids.to(torch.int64).cpu(),
        "mean": data.mean.cpu(),
        "std": data.std.cpu(),
        "state_dict": {k: v.detach().cpu() for k, v in trained.model.state_dict().items()},
        "history": trained.history.to_dict(),
        "train_seconds": float(trained.train_seconds),
    }
    _atomic_save(payload, Path(path))


def load_checkpoint(path: Path, config: TrainConfig, train_ids: torch.Tensor, data: ImageData) -> TrainedModel:
    """Load the model at ``path``, checking that it was trained with ``config`` on ``train_ids``.

    Raises :class:`CheckpointMismatch`, naming what differs, when it was not.
    """
    path = Path(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise CheckpointMismatch(f"{path} has format {payload.get('format')!r}, expected {FORMAT}")
    stored, wanted = payload["config"], config.to_dict()
    differences = [
        f"{key}={stored.get(key)!r} (asked for {wanted.get(key)!r})"
        for key in sorted(set(stored) | set(wanted))
        if stored.get(key) != wanted.get(key)
    ]
    if differences:
        raise CheckpointMismatch(f"{path} was trained with a different config: {', '.join(differences)}")
    if not torch.equal(payload["train_ids"], train_ids.to(torch.int64).cpu()):
        raise CheckpointMismatch(
            f"{path} was trained on {len(payload['train_ids'])} other examples than the {len(train_ids)} asked for"
        )
    for name in ("mean", "std"):
        stored_stats, wanted_stats = payload[name], getattr(data, name).cpu()
        if stored_stats.shape != wanted_stats.shape or not torch.allclose(stored_stats, wanted_stats, atol=1e-4):
            raise CheckpointMismatch(
                f"{path} expects inputs normalised with {name} {stored_stats.tolist()}, "
                f"but this data's training split gives {wanted_stats.tolist()}"
            )
    model = new_model(config, data)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise CheckpointMismatch(f"{path} does not fit a {config.arch} for {data.info.name}: {err}") from err
    model.eval()
    return TrainedModel(
        model=model,
        config=config,
        train_ids=payload["train_ids"],
        history=History(**payload["history"]),
        train_seconds=payload["train_seconds"],
        path=path,
        from_cache=True,
    )


def get_or_train(
    config: TrainConfig,
    data: ImageData,
    indices: torch.Tensor | None = None,
    *,
    directory: Path | None = None,
    progress: bool = True,
) -> TrainedModel:
    """The model trained with ``config`` on the training examples at ``indices`` (all when ``None``).

    Loaded from the cache when it is there, otherwise trained and saved.
    """
    if config.dataset != data.info.name:
        raise ValueError(f"config is for {config.dataset} but the data is {data.info.name}")
    if indices is None:
        indices = torch.arange(len(data.train))
    indices = check_indices(indices, len(data.train), "training indices")
    train_ids = data.train_ids[indices]
    path = checkpoint_path(config, train_ids, data, directory)
    if path.exists():
        return load_checkpoint(path, config, train_ids, data)
    model = new_model(config, data)
    start = time.perf_counter()
    history = fit(model, data, config, indices, progress=progress)
    model.eval()
    trained = TrainedModel(
        model=model,
        config=config,
        train_ids=train_ids,
        history=history,
        train_seconds=time.perf_counter() - start,
        path=path,
        from_cache=False,
    )
    save_checkpoint(path, trained, data)
    return trained


def get_or_train_seeds(
    config: TrainConfig,
    data: ImageData,
    seeds: Iterable[int],
    indices: torch.Tensor | None = None,
    *,
    directory: Path | None = None,
    progress: bool = True,
) -> list[TrainedModel]:
    """One model per seed, each trained (or loaded) as :func:`get_or_train` with ``config`` at that seed."""
    seeds = list(seeds)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must differ, got {seeds}")
    return [
        get_or_train(replace(config, seed=seed), data, indices, directory=directory, progress=False)
        for seed in tqdm(seeds, desc="models", unit="seed", disable=not progress)
    ]
