"""Forget requests: which training examples a model must unlearn.

A request holds the forget set D_f as sorted indices into the training split;
the retain set D_r is everything else.  Requests are made deterministically
from a seed, so every notebook that asks for the same request gets the same
indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import DatasetInfo, check_indices


@dataclass(frozen=True)
class ForgetRequest:
    """The examples to forget, as indices into a training split of ``n_train`` examples."""

    kind: str
    """``"random"`` (a random subset) or ``"class"`` (every example of one class)."""
    forget: torch.Tensor
    n_train: int
    seed: int | None = None
    target_class: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "forget", check_indices(self.forget, self.n_train, "forget indices"))
        if len(self.forget) == self.n_train:
            raise ValueError("the forget set covers the whole training set: nothing would be retained")

    @property
    def retain(self) -> torch.Tensor:
        """The sorted indices of the retain set, every training example not forgotten."""
        keep = torch.ones(self.n_train, dtype=torch.bool)
        keep[self.forget] = False
        return keep.nonzero().squeeze(1)

    def __len__(self) -> int:
        return len(self.forget)

    def describe(self) -> str:
        what = f"class {self.target_class}" if self.kind == "class" else f"random (seed {self.seed})"
        return f"forget {len(self.forget)} of {self.n_train} training examples: {what}"


def random_forget(
    n_train: int, *, fraction: float | None = None, count: int | None = None, seed: int = 0
) -> ForgetRequest:
    """A uniformly random forget set of ``count`` examples, or of ``fraction`` of the training set."""
    if (fraction is None) == (count is None):
        raise ValueError("give exactly one of fraction and count")
    if fraction is not None:
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        count = max(1, round(fraction * n_train))
    if not 0 < count < n_train:
        raise ValueError(f"count must be in 1..{n_train - 1} for {n_train} training examples, got {count}")
    generator = torch.Generator().manual_seed(seed)
    forget = torch.randperm(n_train, generator=generator)[:count]
    return ForgetRequest("random", forget, n_train, seed=seed)


def class_forget(labels: torch.Tensor, cls: int | str, info: DatasetInfo) -> ForgetRequest:
    """Every training example of class ``cls`` (an index or a class name of ``info``)."""
    index = info.class_index(cls)
    labels = torch.as_tensor(labels).cpu()
    forget = (labels == index).nonzero().squeeze(1)
    if len(forget) == 0:
        raise ValueError(f"class {cls!r} has no examples in this training split")
    return ForgetRequest("class", forget, len(labels), target_class=index)
