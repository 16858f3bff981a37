"""Forget requests: which training examples a model must unlearn.

A request holds the forget set D_f as sorted indices into the training split;
the retain set D_r is everything else.  Requests are made deterministically
from a seed, so every notebook that asks for the same request gets the same
indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import DatasetInfo, check_indices, complement


@dataclass(frozen=True)
class ForgetRequest:
    """The examples to forget, as indices into a training split of ``n_train`` examples."""

    kind: str
    """``"random"`` (a random subset), ``"class"`` (every example of one class) or ``"corrective"``
    (training data found to be manipulated, as a detector flagged it)."""
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
        return complement(self.forget, self.n_train)

    def __len__(self) -> int:
        return len(self.forget)

    def describe(self) -> str:
        what = f"class {self.target_class}" if self.kind == "class" else f"{self.kind} (seed {self.seed})"
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
    poisoned = check_indices(poisoned, n_train, "poisoned indices")
    if found is not None and size is not None:
        raise ValueError("give found or size, not both")
    if not 0 <= clean_fraction < 1:
        raise ValueError(f"clean_fraction must be in [0, 1), got {clean_fraction}")
    if size is not None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        n_clean = round(clean_fraction * size)
        n_poisons = size - n_clean
        if n_poisons > len(poisoned):
            raise ValueError(
                f"a deletion set of {size} with clean fraction {clean_fraction} holds {n_poisons} poisons, "
                f"but only {len(poisoned)} were planted"
            )
    else:
        found = 1.0 if found is None else found
        if not 0 < found <= 1:
            raise ValueError(f"found must be in (0, 1], got {found}")
        n_poisons = max(1, round(found * len(poisoned)))
        n_clean = round(n_poisons * clean_fraction / (1 - clean_fraction))
    clean = complement(poisoned, n_train)
    if n_clean > len(clean):
        raise ValueError(f"{n_clean} clean false positives asked for, but only {len(clean)} examples are clean")
    generator = torch.Generator().manual_seed(seed)
    flagged_poisons = poisoned[torch.randperm(len(poisoned), generator=generator)[:n_poisons]]
    flagged_clean = clean[torch.randperm(len(clean), generator=generator)[:n_clean]]
    return ForgetRequest("corrective", torch.cat([flagged_poisons, flagged_clean]), n_train, seed=seed)
