"""Forget requests: which training examples a model must unlearn.

A request holds the forget set D_f as sorted indices into the training split;
the retain set D_r is everything else.  Requests are made deterministically
from a seed, so every notebook that asks for the same request gets the same
indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import validate
from .imagedata import DatasetInfo, ImageData, check_indices, complement

REQUEST_KINDS = ("random", "class", "corrective")
"""The kinds of forget request; each unlearning method says which it applies to."""


@dataclass(frozen=True)
class ForgetRequest:
    """The examples to forget, as indices into a training split of ``n_train`` examples.

    ``kind`` must be one of :data:`REQUEST_KINDS`, and a ``"class"`` request must
    name its ``target_class``; the indices must be valid, distinct positions that
    leave something to retain.
    """

    kind: str
    """``"random"`` (a random subset), ``"class"`` (every example of one class) or ``"corrective"``
    (training data found to be manipulated, as a detector flagged it)."""
    forget: torch.Tensor
    n_train: int
    seed: int | None = None
    target_class: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in REQUEST_KINDS:
            raise ValueError(f"unknown request kind {self.kind!r}; choose one of {', '.join(REQUEST_KINDS)}")
        object.__setattr__(self, "n_train", validate.integer("n_train", self.n_train, minimum=1))
        if self.seed is not None:
            object.__setattr__(self, "seed", validate.seed("seed", self.seed))
        if self.kind == "class" and self.target_class is None:
            raise ValueError("a class request must name its class: give target_class")
        if self.target_class is not None:
            object.__setattr__(self, "target_class", validate.integer("target_class", self.target_class, minimum=0))
        object.__setattr__(self, "forget", check_indices(self.forget, self.n_train, "forget indices"))
        if len(self.forget) == self.n_train:
            raise ValueError("the forget set covers the whole training set: nothing would be retained")

    @property
    def retain(self) -> torch.Tensor:
        """The sorted indices of the retain set, every training example not forgotten."""
        return complement(self.forget, self.n_train)

    def __len__(self) -> int:
        return len(self.forget)

    def check_fits(self, data: ImageData) -> None:
        """Raise unless the request indexes ``data``'s training split and, for a class request, names one of its
        classes."""
        if self.n_train != len(data.train):
            raise ValueError(
                f"the request is for a training split of {self.n_train} examples, this data has {len(data.train)}"
            )
        k = data.info.num_classes
        if self.kind == "class" and not 0 <= self.target_class < k:
            raise ValueError(f"class {self.target_class} does not exist in {data.info.name} (classes 0..{k - 1})")

    def describe(self) -> str:
        what = f"class {self.target_class}" if self.kind == "class" else f"{self.kind} (seed {self.seed})"
        return f"forget {len(self.forget)} of {self.n_train} training examples: {what}"


def random_forget(
    n_train: int, *, fraction: float | None = None, count: int | None = None, seed: int = 0
) -> ForgetRequest:
    """A uniformly random forget set of ``count`` examples, or of ``fraction`` of the training set."""
    n_train = validate.integer("n_train", n_train, minimum=2)
    seed = validate.seed("seed", seed)
    if (fraction is None) == (count is None):
        raise ValueError("give exactly one of fraction and count")
    if fraction is not None:
        fraction = validate.interval("fraction", fraction, 0.0, 1.0, high_open=True)
        count = max(1, round(fraction * n_train))
        if count >= n_train:
            raise ValueError(f"fraction {fraction} of {n_train} training examples would forget all of them")
    count = validate.integer("count", count)
    if not 0 < count < n_train:
        raise ValueError(f"count must be in 1..{n_train - 1} for {n_train} training examples, got {count}")
    generator = torch.Generator().manual_seed(seed)
    forget = torch.randperm(n_train, generator=generator)[:count]
    return ForgetRequest("random", forget, n_train, seed=seed)


def class_forget(labels: torch.Tensor, cls: int | str, info: DatasetInfo) -> ForgetRequest:
    """Every training example of class ``cls`` (an index or a class name of ``info``)."""
    index = info.class_index(cls)
    labels = torch.as_tensor(labels).cpu()
    if labels.dim() != 1 or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be the training split's class labels (a 1-d integer tensor), "
            f"got {labels.dtype} of shape {tuple(labels.shape)}"
        )
    forget = (labels == index).nonzero().squeeze(1)
    if len(forget) == 0:
        raise ValueError(f"class {cls!r} has no examples in this training split")
    return ForgetRequest("class", forget, len(labels), target_class=index)


def corrective_forget(
    poisoned: torch.Tensor,
    n_train: int,
    *,
    found: float | None = None,
    size: int | None = None,
    clean_fraction: float = 0.0,
    seed: int = 0,
) -> ForgetRequest:
    """A deletion set as an imperfect detector flags it: part of the ``poisoned`` examples, and clean ones.

    Give ``found``, the fraction of the P poisons that were detected (all when
    neither is given), or ``size``, the deletion set's exact size.  A fraction
    ``clean_fraction`` (C_f) of the set are clean examples, false positives, and
    the rest are poisons: with ``size``, ``round(C_f * size)`` clean ones; with
    ``found``, ``round(found * P)`` poisons and ``round(that * C_f / (1 - C_f))``
    clean ones.  Both are seeded random choices, and with one seed a smaller
    ``found`` flags a subset of the poisons a larger one flags.
    """
    n_train = validate.integer("n_train", n_train, minimum=1)
    seed = validate.seed("seed", seed)
    poisoned = check_indices(poisoned, n_train, "poisoned indices")
    if found is not None and size is not None:
        raise ValueError("give found or size, not both")
    clean_fraction = validate.interval("clean_fraction", clean_fraction, 0.0, 1.0, low_open=False, high_open=True)
    if size is not None:
        size = validate.integer("size", size, minimum=1)
        n_clean = round(clean_fraction * size)
        n_poisons = size - n_clean
        if n_poisons > len(poisoned):
            raise ValueError(
                f"a deletion set of {size} with clean fraction {clean_fraction} holds {n_poisons} poisons, "
                f"but only {len(poisoned)} were planted"
            )
    else:
        found = 1.0 if found is None else validate.fraction("found", found)
        n_poisons = max(1, round(found * len(poisoned)))
        n_clean = round(n_poisons * clean_fraction / (1 - clean_fraction))
    clean = complement(poisoned, n_train)
    if n_clean > len(clean):
        raise ValueError(f"{n_clean} clean false positives asked for, but only {len(clean)} examples are clean")
    generator = torch.Generator().manual_seed(seed)
    flagged_poisons = poisoned[torch.randperm(len(poisoned), generator=generator)[:n_poisons]]
    flagged_clean = clean[torch.randperm(len(clean), generator=generator)[:n_clean]]
    return ForgetRequest("corrective", torch.cat([flagged_poisons, flagged_clean]), n_train, seed=seed)


@dataclass(frozen=True)
class StandardRequests:
    """The course's two forget requests on one dataset: every algorithm notebook and the leaderboard use them."""

    random: ForgetRequest
    """A random 20% of the training set (seed 0)."""
    whole_class: ForgetRequest
    """Every training example of class 0."""
    class_name: str
    """The name of that class."""

    def labelled(self) -> dict[str, ForgetRequest]:
        """Both requests under the labels of the leaderboard's rows: ``"random 20%"`` and ``"class <name>"``."""
        return {"random 20%": self.random, f"class {self.class_name}": self.whole_class}


def standard_requests(data: ImageData, index: int = 0) -> StandardRequests:
    """The course's standard requests on ``data``: a random 20% of its training split and the whole of class 0.

    ``index`` k gives the k-th of their kind, for a spread over requests: the random 20% drawn with seed k,
    and class k.
    """
    index = validate.integer("index", index, minimum=0, maximum=data.info.num_classes - 1)
    return StandardRequests(
        random=random_forget(len(data.train), fraction=0.2, seed=index),
        whole_class=class_forget(data.train.labels, index, data.info),
        class_name=data.info.classes[index],
    )
