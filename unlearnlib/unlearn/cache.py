"""Unlearned models in the checkpoint cache: a method run once on a cached original for a request, then loaded.

``get_or_unlearn(method, original, request, data, **hyperparameters)`` stores the
result (in ``checkpoints/unlearned/``) with its run time, so that a leaderboard
re-uses the runs of the algorithm notebooks.  The files, locks and the handling
of a corrupted file are those of :mod:`unlearnlib.checkpoints`.  Retraining is
not stored again: its result is already a model of that cache, and comes with
the time its training took.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..checkpoints import (
    FORMAT,
    CheckpointMismatch,
    TrainedModel,
    atomic_save,
    ids_digest,
    load_or_make,
    lock,
    read_payload,
)
from ..forget import ForgetRequest
from ..imagedata import ImageData
from ..train import new_model
from .registry import Method

UNLEARNED_KEYS = ("format", "method", "hyperparameters", "original", "state_dict", "seconds")
_UNLEARNED_TYPES = {"method": str, "hyperparameters": str, "original": str, "state_dict": dict, "seconds": float | int}


@dataclass
class UnlearnedModel:
    """The network a method made from a cached original model for one request, and how long that took."""

    model: nn.Module
    method: str
    seconds: float
    path: Path
    from_cache: bool


def unlearned_path(
    method: Method, settings: dict, original: TrainedModel, request: ForgetRequest, data: ImageData
) -> Path:
    """Where the cache keeps ``method``'s result with ``settings`` (every hyperparameter) on ``original``, with
    the validation split of ``data`` (the training data is the original's)."""
    text = json.dumps(
        {
            "method": method.name,
            "settings": settings,
            "code": method.code_digest(),
            "original": original.path.name,
            "kind": request.kind,
            "class": request.target_class,
            "validation": data.validation_fingerprint,
        },
        sort_keys=True,
        default=repr,
    )
    key = hashlib.sha256(text.encode() + ids_digest(request.forget)).hexdigest()[:16]
    return original.path.parent / "unlearned" / f"{original.path.stem}-{method.name}-{key}.pt"


def get_or_unlearn(
    method: Method, original: TrainedModel, request: ForgetRequest, data: ImageData, **hyperparameters: object
) -> UnlearnedModel:
    """``method`` applied to the cached ``original`` for ``request``, run once and then loaded from the cache.

    The key covers the method's name and code, every hyperparameter (defaults
    filled in, so that a default given explicitly finds the same entry), the
    original's checkpoint, the forget set and the validation split (which a method may
    learn from).  The run time of the first run is
    stored with the model, as a trained model's training time is.  The method
    runs through its door (:meth:`~unlearnlib.unlearn.registry.Method.run`), with
    the batch size of ``original``'s recipe unless ``hyperparameters`` say otherwise.
    """
    if not isinstance(original, TrainedModel):
        raise TypeError(f"original must be a cached TrainedModel, got {type(original).__name__}")
    settings = method.settings(original, hyperparameters)
    path = unlearned_path(method, settings, original, request, data)

    def load() -> UnlearnedModel:
        payload = read_payload(path, UNLEARNED_KEYS, _UNLEARNED_TYPES)
        if payload["format"] != FORMAT or payload["method"] != method.name or payload["original"] != original.path.name:
            raise CheckpointMismatch(f"{path} holds another run than {method.name} on {original.path.name}")
        model = new_model(original.config, data)
        model.load_state_dict(payload["state_dict"])
        return UnlearnedModel(model.eval(), method.name, float(payload["seconds"]), path, from_cache=True)

    def make() -> UnlearnedModel:
        start = time.perf_counter()
        result = method.run(original, request, data, **hyperparameters | {"progress": False})
        seconds = time.perf_counter() - start
        if isinstance(result, TrainedModel):  # a model of the cache of trained models: kept there already
            return UnlearnedModel(result.model, method.name, result.train_seconds, result.path, result.from_cache)
        model = result
        payload = {
            "format": FORMAT,
            "method": method.name,
            "hyperparameters": json.dumps(settings, sort_keys=True, default=repr),
            "original": original.path.name,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "seconds": seconds,
        }
        with lock(path):
            atomic_save(payload, path)
        return UnlearnedModel(model, method.name, seconds, path, from_cache=False)

    return load_or_make(path, load, make)
