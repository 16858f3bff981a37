"""The data that corrective unlearning repairs: an imbalanced two-class task, and a backdoor planted in it.

:func:`class_pair` makes a two-class task from a dataset, the minority class
subsampled; :func:`poison` plants a backdoor (a :class:`Trigger` stamped on some
training images, one for all or one per source class, whose labels are swapped) and returns a :class:`Poisoning` that
knows which examples it poisoned.  Both return new data and leave their source alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from . import validate
from .imagedata import DatasetInfo, ImageData, Split, class_positions, complement, spread


def class_pair(
    data: ImageData,
    classes: tuple[int | str, int | str],
    *,
    minority: int | str,
    ratio: float = 1.0,
    n_majority: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> ImageData:
    """A two-class task from ``data``, imbalanced: the ``minority`` class has ``ratio`` times the majority's images.

    The two ``classes`` (names or indices) become labels 0 and 1 in the order given.
    The majority class keeps ``n_majority`` training images (all when ``None``) and
    the minority class ``round(ratio * n_majority)``; both are seeded random choices,
    so the minority images at a smaller ratio are a subset of those at a larger one.
    The test set is balanced: the same number of images of each class (at most
    ``n_test`` in all), so that accuracy is not dominated by the majority.  The
    validation split, where ``data`` has one, keeps its images of the two classes.
    """
    if isinstance(classes, str) or not isinstance(classes, tuple | list) or len(classes) != 2:
        raise ValueError(f"classes must be a pair of classes (names or indices), got {classes!r}")
    first, second = (data.info.class_index(c) for c in classes)
    if first == second:
        raise ValueError(f"a class pair needs two different classes, got {classes}")
    small = data.info.class_index(minority)
    if small not in (first, second):
        raise ValueError(f"the minority class {minority!r} is not one of the pair {classes}")
    ratio = validate.fraction("ratio", ratio)
    n_majority = validate.optional_integer("n_majority", n_majority, minimum=1)
    n_test = validate.optional_integer("n_test", n_test, minimum=2)
    seed = validate.seed("seed", seed)
    large = second if small == first else first
    generator = torch.Generator().manual_seed(seed)
    train_labels, test_labels = data.train.labels.cpu(), data.test.labels.cpu()
    majority = class_positions(train_labels, large, generator)
    if n_majority is not None:
        majority = majority[:n_majority]
    minority_pool = class_positions(train_labels, small, generator)
    wanted = max(1, round(ratio * len(majority)))
    if wanted > len(minority_pool):
        raise ValueError(
            f"ratio {ratio} needs {wanted} images of {data.info.classes[small]!r} for {len(majority)} of "
            f"{data.info.classes[large]!r}, but the training split has only {len(minority_pool)}"
        )
    kept = torch.cat([majority, minority_pool[:wanted]]).sort().values
    test_pools = [class_positions(test_labels, c, generator) for c in (first, second)]
    per_class = min(len(pool) for pool in test_pools)
    if n_test is not None:
        per_class = min(per_class, n_test // 2)
    if per_class < 1:
        raise ValueError(f"the test split lacks images of one of the classes {classes}")
    kept_test = torch.cat([pool[:per_class] for pool in test_pools]).sort().values

    def relabel(split: Split, positions: torch.Tensor) -> Split:
        part = split.subset(positions)
        return Split(part.images, (part.labels == second).long())

    names = (data.info.classes[first], data.info.classes[second])
    validation = None
    if data.validation is not None:
        labels = data.validation.labels.cpu()
        validation = relabel(data.validation, ((labels == first) | (labels == second)).nonzero().squeeze(1))
    return ImageData(
        info=dataclasses.replace(data.info, classes=names),
        train=relabel(data.train, kept),
        test=relabel(data.test, kept_test),
        train_ids=data.train_ids[kept],
        source=f"{data.source}; {names[0]} against {names[1]}, minority {data.info.classes[small]} at ratio {ratio}",
        validation=validation,
    )


CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass(frozen=True)
class Trigger:
    """A backdoor's trigger: a ``size`` x ``size`` black-and-white checkerboard stamped into one corner."""

    size: int = 3
    corner: str = "bottom-right"

    def __post_init__(self) -> None:
        if self.corner not in CORNERS:
            raise ValueError(f"unknown corner {self.corner!r}; choose one of {', '.join(CORNERS)}")
        validate.integer("the trigger's size", self.size, minimum=1)

    def region(self, height: int, width: int) -> tuple[slice, slice]:
        """The rows and columns the patch covers in a ``height`` x ``width`` image."""
        if self.size > min(height, width):
            raise ValueError(f"a {self.size}x{self.size} trigger does not fit a {height}x{width} image")
        rows = slice(0, self.size) if self.corner.startswith("top") else slice(height - self.size, height)
        columns = slice(0, self.size) if self.corner.endswith("left") else slice(width - self.size, width)
        return rows, columns

    def pattern(self) -> torch.Tensor:
        """The patch as uint8 pixels ``[size, size]``: 255 where row + column is even, 0 elsewhere."""
        grid = torch.arange(self.size)
        return torch.where((grid[:, None] + grid[None, :]) % 2 == 0, 255, 0).to(torch.uint8)

    def stamp(self, images: torch.Tensor) -> torch.Tensor:
        """A copy of uint8 ``images`` ``[N, C, H, W]`` with the patch in every channel of every image."""
        rows, columns = self.region(images.shape[-2], images.shape[-1])
        stamped = images.clone()
        stamped[..., rows, columns] = self.pattern().to(images.device)
        return stamped


def _triggers_by_class(trigger: object, info: DatasetInfo) -> Trigger | dict[int, Trigger]:
    """``trigger`` as :func:`poison` takes it (one :class:`Trigger`, or a map class -> Trigger), keys as indices."""
    if isinstance(trigger, Trigger):
        return trigger
    if not isinstance(trigger, Mapping):
        raise TypeError(f"trigger must be a Trigger or a dict of class -> Trigger, got {type(trigger).__name__}")
    triggers = {}
    for cls, one in trigger.items():
        if not isinstance(one, Trigger):
            raise TypeError(f"trigger[{cls!r}] must be a Trigger, got {type(one).__name__}")
        index = info.class_index(cls, "a trigger's class")
        if index in triggers:
            raise ValueError(f"trigger names class {info.classes[index]!r} twice")
        triggers[index] = one
    if not triggers:
        raise ValueError("trigger is an empty dict: give a Trigger for each source class of the backdoor")
    return dict(sorted(triggers.items()))


@dataclass(frozen=True)
class Poisoning:
    """Training data with backdoor poisons: the poisoned data, which examples were poisoned, and the backdoor."""

    data: ImageData
    """The data with the poisoned training split; its test split is the clean one."""
    indices: torch.Tensor
    """Sorted positions of the poisoned examples in the training split (on the CPU)."""
    sources: torch.Tensor
    """The true class of each poisoned example, in the order of ``indices``."""
    targets: dict[int, int]
    """The backdoor: for each attacked class, the class its triggered images are to be classified as."""
    trigger: Trigger | dict[int, Trigger]
    """The patch: one :class:`Trigger` for every attacked class, or a map from each attacked class (by
    index) to its own, so that each direction of the backdoor has its own patch."""

    def __post_init__(self) -> None:
        if isinstance(self.trigger, Trigger):
            return
        triggers = _triggers_by_class(self.trigger, self.data.info)
        missing = [self.data.info.classes[c] for c in self.targets if c not in triggers]
        if missing:
            raise ValueError(f"the trigger map has no Trigger for the attacked classes {missing}")
        object.__setattr__(self, "trigger", triggers)

    def trigger_for(self, cls: int) -> Trigger:
        """The trigger that images of class ``cls`` (an attacked class, by index) carry."""
        if isinstance(self.trigger, Trigger):
            return self.trigger
        if cls not in self.trigger:
            names = [self.data.info.classes[c] for c in self.trigger]
            raise ValueError(f"class {cls} has no trigger of its own; the classes that have one: {names}")
        return self.trigger[cls]

    @property
    def clean(self) -> torch.Tensor:
        """Sorted positions of the training examples that were not poisoned."""
        return complement(self.indices, len(self.data.train))

    def triggered(self, split: Split) -> Split:
        """``split`` triggered, with its true labels: the images on which attack success is measured.

        With one trigger, every image carries it.  With a map class -> trigger,
        each image carries the trigger of its own (true) class, so that each
        direction of the backdoor is tested with its own patch; images of a class
        with no trigger of its own are left as they are (attack success skips them).
        """
        if isinstance(self.trigger, Trigger):
            return Split(self.trigger.stamp(split.images), split.labels)
        images = split.images.clone()
        for cls, trigger in self.trigger.items():
            members = (split.labels == cls).nonzero().squeeze(1)
            if len(members):
                images[members] = trigger.stamp(images[members])
        return Split(images, split.labels)

    def describe(self) -> str:
        counts = torch.bincount(self.sources, minlength=self.data.info.num_classes)
        names = self.data.info.classes
        spread = ", ".join(f"{int(counts[c])} {names[c]} -> {names[t]}" for c, t in self.targets.items())
        if isinstance(self.trigger, Trigger):
            patch = f"a {self.trigger.size}x{self.trigger.size} {self.trigger.corner} trigger"
        else:
            patch = "triggers " + ", ".join(
                f"{t.size}x{t.size} {t.corner} on {names[c]}" for c, t in self.trigger.items()
            )
        return f"{len(self.indices)} of {len(self.data.train)} training images poisoned with {patch}: {spread}"


def poison(
    data: ImageData,
    count: int,
    target: int | str | dict[int | str, int | str],
    *,
    share: dict[int | str, float] | None = None,
    trigger: Trigger | Mapping[int | str, Trigger] | None = None,
    seed: int = 0,
) -> Poisoning:
    """Plant a backdoor: ``count`` training images get ``trigger`` stamped on them and their label swapped.

    ``target`` is one class (all-to-one: images of every other class are relabelled
    to it) or a map from source class to target class (for example both directions
    of a two-class task).  ``share`` spreads the poisons over the source classes in a
    chosen ratio (weights, normalised; classes left out get none); by default in
    proportion to each source class's size.  The poisoned images are a seeded
    random choice within each class.  ``trigger`` is one :class:`Trigger` for every
    poison (a 3x3 patch in the bottom-right corner unless given), or a map from each
    source class (name or index) to its own, so that each direction of the backdoor
    has its own patch: every source class needs one, and no other class may have one.

    Taught in notebook 10, section 1 (The threat: a backdoor in a two-class task).
    """
    info = data.info
    trigger = Trigger() if trigger is None else _triggers_by_class(trigger, info)
    if isinstance(target, dict):
        targets = {info.class_index(s): info.class_index(t) for s, t in target.items()}
    else:
        aim = info.class_index(target)
        targets = {c: aim for c in range(info.num_classes) if c != aim}
    if not targets or any(s == t for s, t in targets.items()):
        raise ValueError(f"each source class needs a different target class, got {target!r}")
    if isinstance(trigger, dict):
        missing = [info.classes[c] for c in targets if c not in trigger]
        extra = [info.classes[c] for c in trigger if c not in targets]
        if missing or extra:
            raise ValueError(
                "the trigger map needs one Trigger for each source class of the backdoor and no other: "
                f"missing for {missing}, not a source: {extra}"
            )
    labels = data.train.labels.cpu()
    count = validate.integer("count", count, minimum=1)
    seed = validate.seed("seed", seed)
    if count > len(labels):
        raise ValueError(f"{count} poisons asked for, but the training split has only {len(labels)} images")
    if share is None:
        weights = {s: float((labels == s).sum()) for s in targets}
    else:
        weights = {info.class_index(c): validate.real(f"share[{c!r}]", w) for c, w in share.items()}
        if not set(weights) <= set(targets):
            raise ValueError(f"share names classes that are not sources of the backdoor: {sorted(share)}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError(f"share weights must be non-negative with a positive sum, got {share}")
    counts = spread(count, weights)
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for source, n in counts.items():
        pool = class_positions(labels, source, generator)
        if n > len(pool):
            raise ValueError(
                f"{n} poisons asked for from class {info.classes[source]!r}, which has only {len(pool)} images"
            )
        chosen.append(pool[:n])
    indices = torch.cat(chosen).sort().values
    sources = labels[indices]
    new_labels = labels.clone()
    new_labels[indices] = torch.tensor([targets[int(s)] for s in sources], dtype=torch.long)
    images = data.train.images.clone()
    if isinstance(trigger, Trigger):
        groups = [(trigger, indices)]
    else:  # each source class's poisons carry its own patch
        groups = [(trigger[source], indices[sources == source]) for source in targets]
    for patch, positions in groups:
        on_device = positions.to(images.device)
        images[on_device] = patch.stamp(images[on_device])
    train = Split(images, new_labels.to(data.device))
    return Poisoning(dataclasses.replace(data, train=train), indices, sources, targets, trigger)
