"""Images and their labels, held on the compute device as uint8 tensors, and the checks on positions in them.

An :class:`ImageData` (what :func:`unlearnlib.datasets.load` returns) has a training,
a test and (where the data was loaded with one) a validation :class:`Split`, each one
uint8 image tensor of shape ``[N, C, H, W]`` and one int64 label tensor, both on the
device, and a :class:`DatasetInfo` that says what the images are.  The test split is
the evaluation's alone: an unlearning method gets :meth:`ImageData.for_methods`, in
which it is withheld, and draws any unseen examples it needs from the validation split.
Batching and augmentation happen on that device too (see :mod:`unlearnlib.batching`).

Positions: :func:`check_indices` (valid, sorted, distinct), :func:`complement`,
:func:`class_positions` (a class's positions in seeded order) and :func:`spread`
(a count shared out in proportion).  Derived data, a new object that leaves its
source alone: :func:`mislabel` (a split with a fraction relabelled), :func:`wrong_labels`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
from dataclasses import dataclass, field

import torch

from . import validate
from .batching import Augmentation, batches


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is: its classes, image shape and standard augmentation."""

    name: str
    classes: tuple[str, ...]
    channels: int
    size: int
    augmentation: Augmentation
    """The training augmentation: random crop with padding, and flips where they keep the meaning."""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_index(self, cls: int | str, name: str = "class") -> int:
        """The index of a class given by index or by name; a clear error for unknown classes.

        An index must be a whole number (a ``bool`` or a ``float`` such as 3.7 is refused, not rounded).
        """
        if isinstance(cls, str):
            if cls not in self.classes:
                raise ValueError(f"unknown class {cls!r} for {self.name}; choose one of {list(self.classes)}")
            return self.classes.index(cls)
        return validate.class_id(name, cls, self.num_classes, dataset=self.name)


@dataclass
class Split:
    """One split of a dataset: uint8 images ``[N, C, H, W]`` and int64 labels ``[N]`` on one device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 tensor [N, C, H, W], got {self.images.dtype} "
                f"of shape {tuple(self.images.shape)}"
            )
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"{len(self.images)} images but labels of shape {tuple(self.labels.shape)}")
        if self.labels.is_floating_point() or self.labels.is_complex() or self.labels.dtype == torch.bool:
            raise ValueError(f"labels must be whole class numbers (an integer tensor), got {self.labels.dtype}")
        if self.labels.dtype != torch.int64:
            self.labels = self.labels.long()
        if self.labels.device != self.images.device:
            raise ValueError(f"images are on {self.images.device} but labels on {self.labels.device}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def subset(self, indices: torch.Tensor) -> Split:
        """The examples at ``indices``, in that order."""
        indices = torch.as_tensor(indices, dtype=torch.long, device=self.device)
        return Split(self.images[indices], self.labels[indices])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


class TestSetWithheld(RuntimeError):
    """Raised when an unlearning method reaches for the test set, which only the evaluation may use."""


class WithheldSplit:
    """What an unlearning method finds in place of the test split: any use of it raises :class:`TestSetWithheld`."""

    MESSAGE = (
        "an unlearning method may not use the test set: the evaluation alone uses it, so a method that saw it "
        "would be judged on examples it was tuned on. Draw unseen examples from data.validation, the share of "
        "the test data that datasets.load holds out for methods"
    )

    def __getattr__(self, name: str):
        if name.startswith("__"):  # Python's own probes (copying, pickling) get the usual answer
            raise AttributeError(name)
        raise TestSetWithheld(self.MESSAGE)

    def __len__(self) -> int:
        raise TestSetWithheld(self.MESSAGE)

    def __iter__(self):
        raise TestSetWithheld(self.MESSAGE)


@dataclass
class ImageData:
    """A dataset on the compute device, with the normalisation statistics of its training split."""

    info: DatasetInfo
    train: Split
    test: Split
    train_ids: torch.Tensor
    """For each training example, its index in the full training set (on the CPU)."""
    source: str
    """Where the data was read from."""
    validation: Split | None = None
    """Unseen examples an unlearning method may use (held out of the test data), or ``None``."""
    mean: torch.Tensor = field(init=False)
    std: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        held_out = [("test", self.test)] + ([("validation", self.validation)] if self.validation is not None else [])
        for which, split in (("training", self.train), *held_out):
            check_labels(split.labels, self.info.num_classes, f"the {which} split of {self.info.name}")
        for which, split in held_out:
            if self.train.images.shape[1:] != split.images.shape[1:]:
                raise ValueError(
                    f"training images are {tuple(self.train.images.shape[1:])} but {which} images "
                    f"{tuple(split.images.shape[1:])}"
                )
        if len(self.train_ids) != len(self.train):
            raise ValueError(f"{len(self.train)} training examples but {len(self.train_ids)} train_ids")
        pixels = self.train.images.float().div_(255)
        self.mean = pixels.mean(dim=(0, 2, 3))
        self.std = pixels.std(dim=(0, 2, 3))

    @property
    def device(self) -> torch.device:
        return self.train.device

    @property
    def test_withheld(self) -> bool:
        """Whether this is a method's view of the data, without its test split (:meth:`for_methods`)."""
        return isinstance(self.test, WithheldSplit)

    def for_methods(self) -> ImageData:
        """The data as an unlearning method gets it: the same object in all but its test split, which is withheld.

        Shares the tensors (nothing is copied); using ``.test`` of the result raises :class:`TestSetWithheld`.
        """
        view = copy.copy(self)
        view.test = WithheldSplit()
        return view

    def unseen(self, what: str = "this method") -> Split:
        """The validation split, for a method that needs unseen examples; a clear error where there is none."""
        if self.validation is None or len(self.validation) == 0:
            raise ValueError(
                f"{what} needs unseen examples, but {self.info.name} has no validation split: load it with "
                "datasets.load (which holds one out of the test data), or give ImageData a validation Split"
            )
        return self.validation

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of the training split's images, labels and example ids: it tells derived datasets apart.

        Computed once; a derived dataset (poisoned, relabelled, a two-class task) is a new
        :class:`ImageData`, never an in-place change, so the hash stays true.
        """
        return _digest(self.train.images, self.train.labels, self.train_ids)

    @functools.cached_property
    def validation_fingerprint(self) -> str | None:
        """A hash of the validation split (``None`` without one): part of an unlearned model's cache key,
        since a method may learn from it, while a trained model's key needs only :attr:`fingerprint`."""
        return None if self.validation is None else _digest(self.validation.images, self.validation.labels)

    def batches(self, split: Split, batch_size: int, **options):
        """Normalised batches ``(x, y)`` of ``split``; options as :func:`unlearnlib.batching.batches`."""
        return batches(split, batch_size, mean=self.mean, std=self.std, **options)

    def describe(self) -> str:
        c, s = self.info.channels, self.info.size
        validation = f" and {len(self.validation)} validation" if self.validation is not None else ""
        return (
            f"{self.info.name}: {len(self.train)} training, {len(self.test)} test{validation} images, "
            f"{c}x{s}x{s}, {self.info.num_classes} classes, on {self.device} (from {self.source})"
        )


def _digest(*tensors: torch.Tensor) -> str:
    """A SHA-256 of the tensors' shapes and contents."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_labels(labels: torch.Tensor, num_classes: int, what: str = "labels") -> None:
    """Raise, saying how many and which, if any of ``labels`` lies outside the classes 0..num_classes - 1."""
    if len(labels) == 0:
        return
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        values = labels[bad].unique().cpu()
        shown = ", ".join(str(v) for v in values[:8].tolist()) + (", ..." if len(values) > 8 else "")
        raise ValueError(
            f"{what} has {int(bad.sum())} labels outside its classes 0..{num_classes - 1}: {shown}. "
            "Relabel them, or describe the dataset with the classes they belong to"
        )


def check_indices(indices, n: int, what: str = "indices") -> torch.Tensor:
    """``indices`` as a sorted int64 CPU tensor, after checking they are valid positions in ``range(n)``.

    Raises a ``ValueError`` naming the problem when they are empty, not whole
    numbers, out of range, or repeated.
    """
    tensor = torch.as_tensor(indices).cpu()
    if tensor.dim() != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {tuple(tensor.shape)}")
    if len(tensor) == 0:
        raise ValueError(f"{what} are empty")
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise ValueError(f"{what} must be integers, got {tensor.dtype}")
    tensor = tensor.to(torch.int64)
    low, high = tensor.min().item(), tensor.max().item()
    if low < 0 or high >= n:
        bad = low if low < 0 else high
        raise ValueError(f"{what} out of range: {bad} is not in 0..{n - 1}")
    tensor = tensor.sort().values
    repeated = tensor[1:][tensor[1:] == tensor[:-1]]
    if len(repeated):
        raise ValueError(f"{what} are duplicated: {repeated.unique()[:5].tolist()} appear more than once")
    return tensor


def complement(indices: torch.Tensor, n: int) -> torch.Tensor:
    """The sorted positions in ``range(n)`` (on the CPU) that are not in ``indices``."""
    keep = torch.ones(n, dtype=torch.bool)
    keep[torch.as_tensor(indices).cpu()] = False
    return keep.nonzero().squeeze(1)


def mislabel(split: Split, fraction: float, num_classes: int, seed: int = 0) -> tuple[Split, torch.Tensor]:
    """A copy of ``split`` in which a seeded random ``fraction`` of the examples carry a wrong label.

    Each chosen example gets a label drawn uniformly from the other ``num_classes - 1``
    classes.  Returns the new split and the sorted indices of the relabelled examples.
    """
    fraction = validate.interval("fraction", fraction, 0.0, 1.0, high_open=True)
    num_classes = validate.integer("num_classes", num_classes)
    seed = validate.seed("seed", seed)
    if num_classes < 2:
        raise ValueError(f"relabelling needs at least 2 classes, got {num_classes}")
    generator = torch.Generator().manual_seed(seed)
    count = max(1, round(fraction * len(split)))
    chosen = torch.randperm(len(split), generator=generator)[:count].sort().values
    labels = split.labels.clone()
    on_device = chosen.to(labels.device)
    labels[on_device] = wrong_labels(labels[on_device], num_classes, generator)
    return Split(split.images, labels), chosen


def wrong_labels(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """For each of ``labels``, a label drawn uniformly from the other ``num_classes - 1`` classes (seeded)."""
    shift = torch.randint(1, num_classes, (len(labels),), generator=generator)
    return (labels + shift.to(labels.device)) % num_classes


def class_positions(labels: torch.Tensor, cls: int, generator: torch.Generator) -> torch.Tensor:
    """The positions of class ``cls`` in ``labels`` (a CPU tensor), in a seeded random order."""
    positions = (labels == cls).nonzero().squeeze(1)
    return positions[torch.randperm(len(positions), generator=generator)]


def spread(count: int, weights: dict[int, float]) -> dict[int, int]:
    """``count`` split over the keys of ``weights`` in proportion to them, summing exactly to ``count``.

    Largest-remainder rounding: each key first gets the whole part of its share,
    then the leftover units go to the largest fractional parts.
    """
    total = sum(weights.values())
    exact = {key: count * weight / total for key, weight in weights.items()}
    counts = {key: math.floor(value) for key, value in exact.items()}
    leftover = count - sum(counts.values())
    for key in sorted(exact, key=lambda k: counts[k] - exact[k])[:leftover]:
        counts[key] += 1
    return counts
