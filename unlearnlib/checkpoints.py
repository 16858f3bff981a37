"""The checkpoint cache: a model trained with a given config on given data is trained once.

``get_or_train(config, data, indices)`` loads the model trained with exactly
that config on exactly those training examples, or trains and saves it.  The
key hashes the whole config, the training examples' indices in the full
dataset and the content of the loaded training split (its images and labels),
so the original model, each retrained model, each seed and each derived
dataset (a poisoned copy, a two-class task) get their own file, and every
notebook that asks for the same one shares it.

Unlearned models are cached beside them, with the same files and locks, by
:func:`unlearnlib.unlearn.cache.get_or_unlearn`.

Files hold a state_dict and plain metadata only, are loaded with
``weights_only=True``, and are written to a temporary file that is then
renamed, so an interrupted run never leaves a broken checkpoint behind.  They
get the permissions of any new file under the process's umask (0644 or 0664,
not a temporary file's 0600), so a group can share a cache.

**Concurrent processes** train a config once: each checkpoint has a file lock
(``checkpoints/.locks/``, through the ``filelock`` library); the process that
holds it looks in the cache again, trains only if the model is still missing,
and removes temporary files that a killed run of that checkpoint left behind.

**A corrupted cached checkpoint** (unreadable, not a checkpoint, missing keys,
or NaN/infinite weights) is moved aside to ``<file>.corrupt`` (``.corrupt.1``,
``.corrupt.2``, ... if that exists), with a :class:`CorruptCheckpointWarning`
naming the file and what is wrong with it, and the model is trained again.
A checkpoint of another config, other examples or another model is not
corruption but a mistake, and stays a :class:`CheckpointMismatch` error.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pickle
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import torch
from filelock import FileLock
from torch import nn
from tqdm.auto import tqdm

from . import config as course_config
from . import guard, validate
from .imagedata import ImageData, check_indices
from .train import History, TrainConfig, fit, new_model

Cached = TypeVar("Cached")


FORMAT = 1
KEYS = ("format", "config", "train_ids", "mean", "std", "state_dict", "history", "train_seconds")
"""What a checkpoint file holds."""


class CheckpointMismatch(ValueError):
    """A checkpoint belongs to another config, other training data or another model."""


class CorruptCheckpoint(ValueError):
    """A file is not a usable checkpoint: unreadable, not a checkpoint, missing keys, or non-finite weights."""

    def __init__(self, path: Path, problem: str):
        super().__init__(
            f"{path} is {problem}. It cannot be used: delete it (or let get_or_train set it aside and train again)"
        )
        self.path = Path(path)
        self.problem = problem


class UnreadableCheckpoint(CorruptCheckpoint, pickle.UnpicklingError):
    """``torch.load`` could not read the file (truncated, not a torch file, or not weights only)."""


class CorruptCheckpointWarning(UserWarning):
    """A corrupted checkpoint was set aside and its model is trained again."""


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


def network(model: nn.Module | TrainedModel) -> nn.Module:
    """The network of ``model`` (a network, or a cached :class:`TrainedModel`)."""
    found = model.model if isinstance(model, TrainedModel) else model
    if not isinstance(found, nn.Module):
        raise TypeError(f"model must be a network (an nn.Module) or a TrainedModel, got {type(model).__name__}")
    return found


def ids_digest(ids: torch.Tensor) -> bytes:
    return hashlib.sha256(ids.to(torch.int64).cpu().numpy().tobytes()).digest()


def cache_key(config: TrainConfig, train_ids: torch.Tensor, split_fingerprint: str) -> str:
    """A hash of the config, the training examples' identities and the loaded training split's content.

    The loaded split matters beyond the examples trained on: its statistics
    normalise the inputs, and its images and labels may have been changed (poisoned, relabelled).
    """
    text = json.dumps(config.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode() + ids_digest(train_ids) + split_fingerprint.encode()).hexdigest()[:16]


def checkpoint_path(
    config: TrainConfig, train_ids: torch.Tensor, data: ImageData, directory: Path | None = None
) -> Path:
    """Where the cache keeps the model for ``config`` trained on ``train_ids`` of ``data``."""
    directory = Path(directory) if directory is not None else course_config.checkpoint_dir()
    key = cache_key(config, train_ids, data.fingerprint)
    return directory / f"{config.dataset}-{config.arch}-w{config.width}-{key}.pt"


def _temporary_name(path: Path) -> str:
    """The pattern of the temporary files a save of ``path`` writes (see :func:`remove_stale_temporaries`)."""
    return f".{path.name}.*.tmp"


def atomic_save(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temporary = path.with_name(_temporary_name(path).replace("*", secrets.token_hex(6)))
        try:
            # Created as any new file is (0666 less the umask), where mkstemp would give 0600.
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        torch.save(payload, str(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files that interrupted saves of ``path`` left behind; returns them.

    Call it only while holding ``path``'s lock (:func:`lock`): then no save of it is under way.
    """
    path = Path(path)
    stale = [Path(p) for p in glob.glob(str(path.parent / glob.escape(f".{path.name}.")) + "*.tmp")]
    for temporary in stale:
        temporary.unlink(missing_ok=True)
    return stale


_LOCKS: dict[Path, FileLock] = {}
_LOCKS_GUARD = threading.Lock()


def lock(path: Path) -> FileLock:
    """The file lock of checkpoint ``path`` (in ``.locks/`` beside it), one object per path so it is reentrant."""
    path = Path(path).absolute()
    with _LOCKS_GUARD:
        if path not in _LOCKS:
            folder = path.parent / ".locks"
            folder.mkdir(parents=True, exist_ok=True)
            _LOCKS[path] = FileLock(str(folder / f"{path.name}.lock"))
        return _LOCKS[path]


def set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<path>.corrupt`` (or ``.corrupt.N``, the first free N) and return the new name."""
    path = Path(path)
    target = path.with_name(path.name + ".corrupt")
    number = 0
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.corrupt.{number}")
    os.replace(path, target)
    return target


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
    path = Path(path)
    with lock(path):
        atomic_save(payload, path)


_TYPES = {
    "config": dict,
    "train_ids": torch.Tensor,
    "mean": torch.Tensor,
    "std": torch.Tensor,
    "state_dict": dict,
    "history": dict,
    "train_seconds": float | int,
}
"""The types of a trained model's checkpoint entries."""


def read_payload(path: Path, keys: tuple[str, ...] = KEYS, types: dict[str, type] = _TYPES) -> dict:
    """The payload of the file at ``path``, checked for the ``keys`` and ``types`` it must have."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:  # torch reports a broken file in many ways: zip, pickle, EOF, unsupported globals
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnreadableCheckpoint(path, f"unreadable ({type(err).__name__}: {first_line})") from err
    if not isinstance(payload, dict):
        raise CorruptCheckpoint(path, f"not a checkpoint (it holds a {type(payload).__name__}, not a dict)")
    missing = [key for key in keys if key not in payload]
    if missing:
        raise CorruptCheckpoint(path, f"missing keys {', '.join(missing)}")
    wrong = [key for key, kind in types.items() if not isinstance(payload[key], kind)]
    if wrong or not all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values()):
        raise CorruptCheckpoint(path, f"malformed (wrong types of {', '.join(wrong) or 'state_dict entries'})")
    if "history" in payload:
        try:
            History(**payload["history"])
        except TypeError as err:
            raise CorruptCheckpoint(path, f"malformed (its history: {err})") from err
    bad = guard.non_finite_entries(payload["state_dict"])
    if bad:
        raise CorruptCheckpoint(path, f"holding non-finite weights (NaN or infinite values in {', '.join(bad[:3])})")
    return payload


def load_checkpoint(path: Path, config: TrainConfig, train_ids: torch.Tensor, data: ImageData) -> TrainedModel:
    """Load the model at ``path``, checking that it was trained with ``config`` on ``train_ids``.

    Raises :class:`CheckpointMismatch`, naming what differs, when it was not, and
    :class:`CorruptCheckpoint`, naming the file and the problem, when it is not a
    usable checkpoint (unreadable, not a checkpoint, missing keys, or non-finite weights).
    """
    path = Path(path)
    payload = read_payload(path)
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

    Loaded from the cache when it is there, otherwise trained and saved.  The
    checkpoint folder is checked before training, so that a model is never
    trained and then lost for want of a place to save it.  While one process
    trains a config, another asking for it waits and then loads it (a file lock).
    A corrupted cached file is moved aside to ``<file>.corrupt`` with a
    :class:`CorruptCheckpointWarning`, and the model is trained again.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(data, ImageData):
        raise TypeError(f"data must be an ImageData, got {type(data).__name__}")
    config.check_trains(data)
    if indices is None:
        indices = torch.arange(len(data.train))
    indices = check_indices(indices, len(data.train), "training indices")
    train_ids = data.train_ids[indices]
    path = checkpoint_path(config, train_ids, data, directory)
    return load_or_make(
        path,
        lambda: load_checkpoint(path, config, train_ids, data),
        lambda: _train_and_save(config, data, indices, train_ids, path, progress),
    )


def load_or_make(path: Path, load: Callable[[], Cached], make: Callable[[], Cached]) -> Cached:
    """What ``load()`` reads from ``path``, or what ``make()`` makes (and saves there) when it is missing.

    Under ``path``'s lock, so that concurrent processes make it once.  A corrupted
    file is set aside with a :class:`CorruptCheckpointWarning` and made again.  The
    folder is checked first, so that nothing is made only to be lost.
    """
    try:
        course_config.check_writable_folder(path.parent, "the checkpoint folder")
    except course_config.UnusableRoot:
        if path.is_file():  # a cache shared read-only: load, without the lock (and without recovery)
            return load()
        raise
    path.parent.mkdir(parents=True, exist_ok=True)
    with lock(path):
        if path.exists():
            try:
                return load()
            except CorruptCheckpoint as err:
                aside = set_aside(path)
                warnings.warn(
                    f"the cached checkpoint {path} is {err.problem}: moved it to {aside.name} and making it again",
                    CorruptCheckpointWarning,
                    stacklevel=3,
                )
        remove_stale_temporaries(path)
        return make()


def _train_and_save(
    config: TrainConfig, data: ImageData, indices: torch.Tensor, train_ids: torch.Tensor, path: Path, progress: bool
) -> TrainedModel:
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
    if isinstance(seeds, str) or not isinstance(seeds, Iterable):
        raise TypeError(f"seeds must be a list (or range) of whole numbers, got {seeds!r}")
    seeds = [validate.seed("seed", seed) for seed in seeds]
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must differ, got {seeds}")
    return [
        get_or_train(replace(config, seed=seed), data, indices, directory=directory, progress=False)
        for seed in tqdm(seeds, desc="models", unit="seed", disable=not progress)
    ]
