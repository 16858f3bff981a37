"""SISA training (Sharded, Isolated, Sliced, Aggregated): exact unlearning by design, paid for in accuracy.

The training set is cut into ``shards`` disjoint parts, each of which trains its own
network, and each shard into ``slices``.  A shard's network is trained in stages:
stage r on the shard's first r slices, and its weights are kept after every stage.
The deployed model averages the shards' predicted probabilities.  Deleting examples
retrains only the shards that held them, each from the weights kept before the first
slice they were in, so that the result is exactly the SISA model trained without them.

Where an example goes depends on its identity in the full dataset alone (a seeded
hash), so that the same example goes to the same shard and slice whichever others
are present: the model after a deletion and the model trained from the start on
what is left are one and the same, weight for weight.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import config as course_config
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
from ..train import History, TrainConfig, fit, new_model
from ..validate import check_counts
from ..validate import seed as check_seed
from .exact import training_recipe
from .registry import register

MIN_STEPS = 8
"""The fewest optimiser steps a stage takes (:func:`stage_plan`): small shards and first slices train in smaller
batches, and more epochs where even those are too few."""

SHARD_SEED_STEP = 10_000
"""Shard s's network starts from the recipe's seed plus s times this, so that shard 0 starts as the recipe does."""

_KEYS = ("format", "config", "train_ids", "shards", "slices", "seed", "state_dict", "seconds", "work")
_TYPES = {"config": dict, "train_ids": torch.Tensor, "state_dict": dict, "seconds": float | int, "work": int}


class Ensemble(nn.Module):
    """The shards' networks as one model: the log of their mean predicted probabilities.

    Its outputs are log-probabilities, so that softmax and cross-entropy read them as logits.
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = torch.stack([F.softmax(member(x).float(), 1) for member in self.members]).mean(0)
        return probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny).log()


def places(train_ids: torch.Tensor, shards: int, slices: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The shard and the slice of each example, from a seeded hash of its identity in the full dataset."""
    check_counts(shards=shards, slices=slices)
    mixed = train_ids.to(torch.int64).cpu() * 2_654_435_761 + check_seed("seed", seed) * 40_503 + 1
    mixed = (mixed ^ (mixed >> 15)) * 2_246_822_519
    mixed = (mixed ^ (mixed >> 13)) & 0x7FFF_FFFF
    return mixed % shards, (mixed // shards) % slices


def stage_plan(config: TrainConfig, size: int, slices: int) -> tuple[int, int]:
    """The batch size and epochs of a stage of ``size`` examples, for a shard of ``slices`` slices.

    Epochs ``2 * config.epochs / (slices + 1)``, rounded: stage r sees r slices, so over the R
    stages the shard's examples are seen about ``config.epochs`` times on average (the first slice
    most, the last least), about the work of one run of the recipe.  The recipe's batch size, but
    smaller (at least 2, at most the stage) and then more epochs where needed for the stage to take
    :data:`MIN_STEPS` steps.
    """
    epochs = max(1, round(2 * config.epochs / (slices + 1)))
    batch_size = min(config.batch_size, size, max(2, size * epochs // MIN_STEPS))
    return batch_size, max(epochs, -(-MIN_STEPS // (size // batch_size)))


@dataclass
class Layout:
    """The training positions of each shard's slices: ``positions[s][r]``, sorted."""

    positions: list[list[torch.Tensor]]

    @classmethod
    def of(cls, data: ImageData, kept: torch.Tensor, shards: int, slices: int, seed: int) -> Layout:
        kept = kept.to(torch.int64).cpu().sort().values
        shard, piece = places(data.train_ids.cpu()[kept], shards, slices, seed)
        return cls([[kept[(shard == s) & (piece == r)] for r in range(slices)] for s in range(shards)])

    def stage(self, s: int, r: int) -> torch.Tensor:
        """What stage r of shard s trains on: the shard's slices 0..r (their positions, sorted)."""
        return torch.cat(self.positions[s][: r + 1]).sort().values

    def first_change(self, other: Layout, s: int) -> int | None:
        """The first slice of shard s that differs from ``other``'s, or None when the shard is the same."""
        for r, (mine, theirs) in enumerate(zip(self.positions[s], other.positions[s])):
            if not torch.equal(mine, theirs):
                return r
        return None


def stage_work(config: TrainConfig, layout: Layout, s: int, start: int = 0) -> int:
    """The example-epochs of shard s's stages from ``start`` on (:func:`stage_plan`); a stage too small to train
    (fewer than 2 examples) counts nothing."""
    slices = len(layout.positions[s])
    sizes = [len(layout.stage(s, r)) for r in range(start, slices)]
    return sum(size * stage_plan(config, size, slices)[1] for size in sizes if size >= 2)


def retrained_share(
    config: TrainConfig, data: ImageData, request: ForgetRequest, shards: int, slices: int, seed: int = 0
) -> float:
    """The share of the training work (example-epochs) of a SISA model of ``config`` that serving ``request``
    redoes: the stages of every shard that held a forgotten example, from its first slice that held one on,
    against all stages of all shards.  Computed from the layouts alone, without training anything."""
    before = Layout.of(data, torch.arange(len(data.train)), shards, slices, seed)
    after = Layout.of(data, request.retain.cpu(), shards, slices, seed)
    redone = 0
    for s in range(shards):
        start = after.first_change(before, s)
        redone += 0 if start is None else stage_work(config, after, s, start)
    return redone / sum(stage_work(config, before, s) for s in range(shards))


def _train_stages(
    config: TrainConfig, data: ImageData, layout: Layout, s: int, start: int, weights: dict | None
) -> tuple[list[dict], int]:
    """Shard s's weights after stages ``start`` onwards, starting from ``weights`` (fresh ones when None), and
    the example-epochs that took, each stage as :func:`stage_plan` says; a stage of fewer than 2 examples (batch
    norm needs a batch) is passed over."""
    shard_config = replace(config, seed=config.seed + SHARD_SEED_STEP * s)
    network = new_model(shard_config, data)
    if weights is not None:
        network.load_state_dict(weights)
    slices = len(layout.positions[s])
    states, work = [], 0
    for r in range(start, slices):
        stage = layout.stage(s, r)
        if len(stage) >= 2:
            batch_size, epochs = stage_plan(config, len(stage), slices)
            stage_config = replace(shard_config, epochs=epochs, batch_size=batch_size)
            fit(network, data, stage_config, stage.to(data.device), progress=False)
            work += len(stage) * epochs
        states.append({key: value.detach().cpu().clone() for key, value in network.state_dict().items()})
    return states, work


def train_shards(
    config: TrainConfig,
    data: ImageData,
    layout: Layout,
    *,
    before: tuple[Layout, list[list[dict]]] | None = None,
    progress: bool = True,
) -> tuple[list[list[dict]], int]:
    """Every shard's weights after each stage, and the example-epochs trained to get them.

    With ``before`` (an earlier layout and its weights), a shard whose slices are
    unchanged keeps its weights, and a changed one is retrained from the weights kept
    after its last unchanged slice: the SISA deletion.  Without it, every shard trains from scratch.
    """
    states, work = [], 0
    for s in tqdm(range(len(layout.positions)), desc="SISA shards", unit="shard", disable=not progress, leave=False):
        if before is None:
            start = 0
        else:
            start = layout.first_change(before[0], s)
            if start is None:
                states.append(before[1][s])
                continue
        kept = None if before is None else before[1][s][:start]
        shard_states, shard_work = _train_stages(config, data, layout, s, start, kept[-1] if kept else None)
        states.append((kept or []) + shard_states)
        work += shard_work
    return states, work


def ensemble(config: TrainConfig, data: ImageData, states: list[list[dict]]) -> Ensemble:
    """The deployed model: each shard's network with its weights after the last stage, averaged."""
    members = []
    for s, shard in enumerate(states):
        network = new_model(replace(config, seed=config.seed + SHARD_SEED_STEP * s), data)
        network.load_state_dict(shard[-1])
        members.append(network)
    return Ensemble(members).eval()


def sisa_path(config: TrainConfig, data: ImageData, train_ids: torch.Tensor, shards: int, slices: int, seed: int):
    """Where the cache keeps the SISA model of ``config`` on ``train_ids`` with these shards, slices and seed."""
    code = inspect.getsource(sys.modules[__name__])
    text = json.dumps({"config": config.to_dict(), "shards": shards, "slices": slices, "seed": seed}, sort_keys=True)
    key = hashlib.sha256(text.encode() + ids_digest(train_ids) + data.fingerprint.encode() + code.encode())
    name = f"{config.dataset}-{config.arch}-w{config.width}-sisa{shards}x{slices}-{key.hexdigest()[:16]}.pt"
    return course_config.checkpoint_dir() / "sisa" / name


@dataclass
class Trained:
    """A SISA model as the cache holds it: every shard's weights after each stage, and what making it cost."""

    states: list[list[dict]]
    seconds: float
    work: int
    """Example-epochs trained to make it (from its predecessor's weights, for a deletion)."""
    path: Path
    from_cache: bool


def get_or_train_shards(
    config: TrainConfig,
    data: ImageData,
    kept: torch.Tensor,
    shards: int,
    slices: int,
    seed: int,
    *,
    before: tuple[Layout, Trained] | None = None,
    progress: bool = True,
) -> Trained:
    """The SISA model of ``config`` on the training positions ``kept``, from the cache or trained (from
    ``before``'s weights where they still hold, when given) and saved."""
    layout = Layout.of(data, kept, shards, slices, seed)
    train_ids = data.train_ids.cpu()[kept.cpu()].to(torch.int64).sort().values
    path = sisa_path(config, data, train_ids, shards, slices, seed)

    def load() -> Trained:
        payload = read_payload(path, _KEYS, _TYPES)
        wanted = (FORMAT, config.to_dict(), shards, slices, seed)
        if (payload["format"], payload["config"], payload["shards"], payload["slices"], payload["seed"]) != wanted:
            raise CheckpointMismatch(f"{path} holds another SISA model than the one asked for")
        if not torch.equal(payload["train_ids"], train_ids):
            raise CheckpointMismatch(f"{path} was trained on other examples than the {len(train_ids)} asked for")
        flat = payload["state_dict"]
        states = [[{} for _ in range(slices)] for _ in range(shards)]
        for key, value in flat.items():
            s, r, name = key.split(".", 2)
            states[int(s)][int(r)][name] = value
        return Trained(states, float(payload["seconds"]), int(payload["work"]), path, from_cache=True)

    def make() -> Trained:
        start = time.perf_counter()
        earlier = None if before is None else (before[0], before[1].states)
        states, work = train_shards(config, data, layout, before=earlier, progress=progress)
        seconds = time.perf_counter() - start
        flat = {
            f"{s}.{r}.{name}": value
            for s, shard in enumerate(states)
            for r, st in enumerate(shard)
            for name, value in st.items()
        }
        payload = {
            "format": FORMAT,
            "config": config.to_dict(),
            "train_ids": train_ids,
            "shards": shards,
            "slices": slices,
            "seed": seed,
            "state_dict": flat,
            "seconds": seconds,
            "work": work,
        }
        with lock(path):
            atomic_save(payload, path)
        return Trained(states, seconds, work, path, from_cache=False)

    return load_or_make(path, load, make)


def deployed(
    config: TrainConfig, data: ImageData, shards: int = 4, slices: int = 4, seed: int = 0, *, progress: bool = True
) -> Ensemble:
    """The SISA model of ``config`` on the whole training set, before any deletion (from the cache, or trained)."""
    check_counts(shards=shards, slices=slices)
    check_seed("seed", seed)
    everything = torch.arange(len(data.train))
    without_test = data.for_methods()  # no test curve is watched, as through the door: one cache entry
    trained = get_or_train_shards(config, without_test, everything, shards, slices, seed, progress=progress)
    return ensemble(config, data, trained.states)


@register(
    "sisa",
    family="state-of-the-art",
    summary="SISA: shards trained apart in slices; a deletion retrains what it touches from the last clean slice",
)
def sisa(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    shards: int = 4,
    slices: int = 4,
    seed: int = 0,
    config: TrainConfig | None = None,
    progress: bool = True,
) -> TrainedModel:
    """SISA training and deletion (Bourtoule et al., IEEE S&P 2021); exact by construction.

    The SISA model of the recipe ``config`` (default: the one ``model`` was trained
    with; ``model`` itself is not used) on the whole training set is taken from the
    cache, or trained first: each of ``shards`` networks in ``slices`` stages
    (:func:`stage_plan`), the examples placed by a hash of their identity
    seeded by ``seed`` (:func:`places`).  The request is then served as SISA
    serves it: each shard holding forgotten examples is retrained from the weights
    kept after its last slice without any (:func:`train_shards`).  The result is the
    cached SISA model on the retain set, as a :class:`TrainedModel` whose network is
    the :class:`Ensemble` and whose time is that of the deletion alone (the first
    training, done once before any request, is not counted).

    Taught in notebook 11, section 8 (Exact by design: SISA).
    """
    check_counts(shards=shards, slices=slices)
    check_seed("seed", seed)
    config = training_recipe("sisa", model, config)
    per_shard = len(data.train) // shards
    if per_shard < 2:
        raise ValueError(
            f"{shards} shards leave about {per_shard} of the {len(data.train)} training examples to a shard; "
            "use fewer shards"
        )
    everything = torch.arange(len(data.train))
    before = get_or_train_shards(config, data, everything, shards, slices, seed, progress=progress)
    layout = Layout.of(data, everything, shards, slices, seed)
    after = get_or_train_shards(
        config, data, request.retain.cpu(), shards, slices, seed, before=(layout, before), progress=progress
    )
    return TrainedModel(
        model=ensemble(config, data, after.states),
        config=config,
        train_ids=data.train_ids.cpu()[request.retain.cpu()],
        history=History(),
        train_seconds=after.seconds,
        path=after.path,
        from_cache=after.from_cache,
    )
