"""Datasets, held on the compute device as uint8 tensors.

``load(name)`` returns an :class:`ImageData` with a training and a test
:class:`Split`, each one uint8 image tensor of shape ``[N, C, H, W]`` and one
int64 label tensor, both on the device.  Batching and augmentation happen on
that device too (see :mod:`unlearnlib.batching`).

Sources: CIFAR-10 and CIFAR-100 (torchvision's on-disk format), MNIST and
Fashion-MNIST (idx files, from ``data/`` or, for Fashion-MNIST, from Debian's
``dataset-fashion-mnist`` package), each downloaded from torchvision's mirrors
into ``data/`` with its checksum verified; and scikit-learn's digits, which
ship with scikit-learn and need no network.

Derived data, always a new object that leaves its source alone: :func:`mislabel`
(a split with a fraction relabelled), :func:`class_pair` (a two-class dataset, the
minority subsampled) and :func:`poison` (a dataset with a backdoor planted by a :class:`Trigger`).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import math
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torchvision
from tqdm.auto import tqdm

from . import config, validate
from .batching import Augmentation, batches

DOWNLOAD_TIMEOUT = 10.0
"""Seconds a download may wait for the network before it gives up."""

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class DatasetUnavailable(RuntimeError):
    """A dataset is neither on disk nor downloadable (offline, or a corrupt download)."""


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
    mean: torch.Tensor = field(init=False)
    std: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        for which, split in (("training", self.train), ("test", self.test)):
            check_labels(split.labels, self.info.num_classes, f"the {which} split of {self.info.name}")
        if self.train.images.shape[1:] != self.test.images.shape[1:]:
            raise ValueError(
                f"training images are {tuple(self.train.images.shape[1:])} but test images "
                f"{tuple(self.test.images.shape[1:])}"
            )
        if len(self.train_ids) != len(self.train):
            raise ValueError(f"{len(self.train)} training examples but {len(self.train_ids)} train_ids")
        pixels = self.train.images.float().div_(255)
        self.mean = pixels.mean(dim=(0, 2, 3))
        self.std = pixels.std(dim=(0, 2, 3))

    @property
    def device(self) -> torch.device:
        return self.train.device

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of the training split's images, labels and example ids: it tells derived datasets apart.

        Computed once; a derived dataset (poisoned, relabelled, a two-class task) is a new
        :class:`ImageData`, never an in-place change, so the hash stays true.
        """
        digest = hashlib.sha256()
        for tensor in (self.train.images, self.train.labels, self.train_ids):
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def batches(self, split: Split, batch_size: int, **options):
        """Normalised batches ``(x, y)`` of ``split``; options as :func:`unlearnlib.batching.batches`."""
        return batches(split, batch_size, mean=self.mean, std=self.std, **options)

    def describe(self) -> str:
        c, s = self.info.channels, self.info.size
        return (
            f"{self.info.name}: {len(self.train)} training and {len(self.test)} test images, "
            f"{c}x{s}x{s}, {self.info.num_classes} classes, on {self.device} (from {self.source})"
        )


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
    shift = torch.randint(1, num_classes, (count,), generator=generator)
    labels = split.labels.clone()
    on_device = chosen.to(labels.device)
    labels[on_device] = (labels[on_device] + shift.to(labels.device)) % num_classes
    return Split(split.images, labels), chosen


def _class_positions(labels: torch.Tensor, cls: int, generator: torch.Generator) -> torch.Tensor:
    """The positions of class ``cls`` in ``labels`` (a CPU tensor), in a seeded random order."""
    positions = (labels == cls).nonzero().squeeze(1)
    return positions[torch.randperm(len(positions), generator=generator)]


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
    ``n_test`` in all), so that accuracy is not dominated by the majority.
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
    majority = _class_positions(train_labels, large, generator)
    if n_majority is not None:
        majority = majority[:n_majority]
    minority_pool = _class_positions(train_labels, small, generator)
    wanted = max(1, round(ratio * len(majority)))
    if wanted > len(minority_pool):
        raise ValueError(
            f"ratio {ratio} needs {wanted} images of {data.info.classes[small]!r} for {len(majority)} of "
            f"{data.info.classes[large]!r}, but the training split has only {len(minority_pool)}"
        )
    kept = torch.cat([majority, minority_pool[:wanted]]).sort().values
    test_pools = [_class_positions(test_labels, c, generator) for c in (first, second)]
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
    return ImageData(
        info=dataclasses.replace(data.info, classes=names),
        train=relabel(data.train, kept),
        test=relabel(data.test, kept_test),
        train_ids=data.train_ids[kept],
        source=f"{data.source}; {names[0]} against {names[1]}, minority {data.info.classes[small]} at ratio {ratio}",
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
    trigger: Trigger

    @property
    def clean(self) -> torch.Tensor:
        """Sorted positions of the training examples that were not poisoned."""
        return complement(self.indices, len(self.data.train))

    def triggered(self, split: Split) -> Split:
        """``split`` with the trigger on every image and the true labels, on which attack success is measured."""
        return Split(self.trigger.stamp(split.images), split.labels)

    def describe(self) -> str:
        counts = torch.bincount(self.sources, minlength=self.data.info.num_classes)
        names = self.data.info.classes
        spread = ", ".join(f"{int(counts[c])} {names[c]} -> {names[t]}" for c, t in self.targets.items())
        return (
            f"{len(self.indices)} of {len(self.data.train)} training images poisoned with a "
            f"{self.trigger.size}x{self.trigger.size} {self.trigger.corner} trigger: {spread}"
        )


def _spread(count: int, weights: dict[int, float]) -> dict[int, int]:
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


def poison(
    data: ImageData,
    count: int,
    target: int | str | dict[int | str, int | str],
    *,
    share: dict[int | str, float] | None = None,
    trigger: Trigger | None = None,
    seed: int = 0,
) -> Poisoning:
    """Plant a backdoor: ``count`` training images get ``trigger`` stamped on them and their label swapped.

    ``target`` is one class (all-to-one: images of every other class are relabelled
    to it) or a map from source class to target class (for example both directions
    of a two-class task).  ``share`` spreads the poisons over the source classes in a
    chosen ratio (weights, normalised; classes left out get none); by default in
    proportion to each source class's size.  The poisoned images are a seeded
    random choice within each class.  The trigger is a 3x3 patch in the bottom-right corner unless given.
    """
    trigger = trigger or Trigger()
    info = data.info
    if isinstance(target, dict):
        targets = {info.class_index(s): info.class_index(t) for s, t in target.items()}
    else:
        aim = info.class_index(target)
        targets = {c: aim for c in range(info.num_classes) if c != aim}
    if not targets or any(s == t for s, t in targets.items()):
        raise ValueError(f"each source class needs a different target class, got {target!r}")
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
    counts = _spread(count, weights)
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for source, n in counts.items():
        pool = _class_positions(labels, source, generator)
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
    on_device = indices.to(images.device)
    images[on_device] = trigger.stamp(images[on_device])
    train = Split(images, new_labels.to(data.device))
    return Poisoning(dataclasses.replace(data, train=train), indices, sources, targets, trigger)


# --------------------------------------------------------------------------- reading files


def read_idx(path: Path) -> np.ndarray:
    """An array of unsigned bytes from an idx file (MNIST's format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    values = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if values.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {dims}, found {values.size} bytes")
    return values.reshape(dims)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="latin1")


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- downloading


def download(url: str, path: Path, md5: str, *, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """Fetch ``url`` to ``path`` unless a file with checksum ``md5`` is already there.

    A corrupt file (wrong checksum) is removed and fetched again once; a second
    failure, or no network within ``timeout`` seconds, raises :class:`DatasetUnavailable`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        if path.exists():
            if md5_of(path) == md5:
                return path
            path.unlink()
        partial = path.with_name(path.name + ".part")
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "unlearnlib"})
            with urllib.request.urlopen(request, timeout=timeout) as response, open(partial, "wb") as fh:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, leave=False) as bar:
                    for chunk in iter(lambda: response.read(1 << 16), b""):
                        fh.write(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError) as err:
            partial.unlink(missing_ok=True)
            raise DatasetUnavailable(f"could not download {url}: {err}") from err
        os.replace(partial, path)
    if md5_of(path) != md5:
        path.unlink()
        raise DatasetUnavailable(f"{url} arrived corrupt twice (checksum mismatch); try again later")
    return path


def url_reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url`` answers a HEAD request with success within ``timeout`` seconds."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return True
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "unlearnlib"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


# --------------------------------------------------------------------------- sources

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]
"""train images [N, C, H, W], train labels, test images, test labels, source description."""


class _Source(Protocol):
    url: str | None
    """Where the dataset is downloaded from; ``None`` when it needs no download."""

    def local(self, root: Path) -> bool: ...

    def fetch(self, root: Path) -> None: ...

    def read(self, root: Path) -> Arrays: ...


@dataclass(frozen=True)
class _Cifar:
    """CIFAR-10 or -100 as torchvision keeps it: a tar.gz of pickled batches, with its URL and checksums."""

    dataset: type
    """``torchvision.datasets.CIFAR10`` or ``CIFAR100``, whose attributes describe the files."""
    label_key: str

    @property
    def url(self) -> str:
        return self.dataset.url

    def _files(self) -> list[str]:
        return [name for name, _ in self.dataset.train_list + self.dataset.test_list]

    def local(self, root: Path) -> bool:
        return all((root / self.dataset.base_folder / f).is_file() for f in self._files())

    def fetch(self, root: Path) -> None:
        archive = download(self.url, root / self.dataset.filename, self.dataset.tgz_md5)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")

    def read(self, root: Path) -> Arrays:
        folder = root / self.dataset.base_folder

        def part(files: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
            batches = [_unpickle(folder / name) for name, _ in files]
            images = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32)
            labels = np.concatenate([np.asarray(b[self.label_key]) for b in batches])
            return images.astype(np.uint8), labels.astype(np.int64)

        return (*part(self.dataset.train_list), *part(self.dataset.test_list), str(folder))

    def classes(self, root: Path | None) -> tuple[str, ...]:
        """The class names from the dataset's meta file; numbered names when it is not on disk."""
        meta = root / self.dataset.base_folder / self.dataset.meta["filename"] if root else None
        if meta is not None and meta.is_file():
            return tuple(_unpickle(meta)[self.dataset.meta["key"]])
        count = 100 if self.label_key == "fine_labels" else 10
        return tuple(f"class {i}" for i in range(count))


@dataclass(frozen=True)
class _Idx:
    """MNIST or Fashion-MNIST as torchvision keeps them: four idx files, with mirrors and checksums."""

    dataset: type
    """``torchvision.datasets.MNIST`` or ``FashionMNIST``, whose attributes describe the files."""
    system_dir: Path | None = None
    """A system-wide copy (Debian's package), used when there is none in ``data/``."""

    @property
    def url(self) -> str:
        return self.dataset.mirrors[0] + self.dataset.resources[0][0]

    def _dirs(self, root: Path) -> list[Path]:
        dirs = [root / self.dataset.__name__ / "raw"]
        return dirs + ([self.system_dir] if self.system_dir else [])

    def _find(self, directory: Path) -> list[Path] | None:
        found = []
        for name, _ in self.dataset.resources:
            options = [directory / name, directory / name.removesuffix(".gz")]
            match = next((p for p in options if p.is_file()), None)
            if match is None:
                return None
            found.append(match)
        return found

    def local(self, root: Path) -> bool:
        return any(self._find(d) for d in self._dirs(root))

    def fetch(self, root: Path) -> None:
        errors = []
        for mirror in self.dataset.mirrors:
            try:
                for name, md5 in self.dataset.resources:
                    download(mirror + name, root / self.dataset.__name__ / "raw" / name, md5)
                return
            except DatasetUnavailable as err:
                errors.append(str(err))
        raise DatasetUnavailable("; ".join(errors))

    def read(self, root: Path) -> Arrays:
        paths = next(p for p in map(self._find, self._dirs(root)) if p)
        by_name = dict(zip((name for name, _ in self.dataset.resources), paths))
        x_train, y_train, x_test, y_test = (
            read_idx(by_name[f"{split}-{kind}-idx{dims}-ubyte.gz"])
            for split, kind, dims in (
                ("train", "images", 3),
                ("train", "labels", 1),
                ("t10k", "images", 3),
                ("t10k", "labels", 1),
            )
        )
        return (
            x_train[:, None].copy(),
            y_train.astype(np.int64),
            x_test[:, None].copy(),
            y_test.astype(np.int64),
            str(paths[0].parent),
        )


class _Digits:
    """scikit-learn's 8x8 digits, split 80/20 (stratified, fixed) into train and test."""

    url = None

    def local(self, root: Path) -> bool:
        return True

    def fetch(self, root: Path) -> None:
        pass

    def read(self, root: Path) -> Arrays:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[:, None]
        x_train, x_test, y_train, y_test = train_test_split(
            images, digits.target.astype(np.int64), test_size=0.2, stratify=digits.target, random_state=0
        )
        return x_train, y_train, x_test, y_test, "scikit-learn's bundled digits"


_SOURCES: dict[str, _Source] = {
    "cifar10": _Cifar(torchvision.datasets.CIFAR10, "labels"),
    "cifar100": _Cifar(torchvision.datasets.CIFAR100, "fine_labels"),
    "mnist": _Idx(torchvision.datasets.MNIST),
    "fashion-mnist": _Idx(torchvision.datasets.FashionMNIST, system_dir=DEBIAN_FASHION_MNIST),
    "digits": _Digits(),
}

_DIGIT_CLASSES = tuple(str(i) for i in range(10))

INFO: dict[str, Callable[[Path], DatasetInfo]] = {
    "cifar10": lambda root: DatasetInfo("cifar10", _SOURCES["cifar10"].classes(root), 3, 32, Augmentation(4, True)),
    "cifar100": lambda root: DatasetInfo("cifar100", _SOURCES["cifar100"].classes(root), 3, 32, Augmentation(4, True)),
    "mnist": lambda root: DatasetInfo("mnist", _DIGIT_CLASSES, 1, 28, Augmentation(3, False)),
    "fashion-mnist": lambda root: DatasetInfo(
        "fashion-mnist", tuple(torchvision.datasets.FashionMNIST.classes), 1, 28, Augmentation(3, True)
    ),
    "digits": lambda root: DatasetInfo("digits", _DIGIT_CLASSES, 1, 8, Augmentation(1, False)),
}
"""Each dataset's description; digits are not flipped, since a flipped digit is another symbol."""

DATASETS: tuple[str, ...] = tuple(_SOURCES)


def check_dataset_name(name: str) -> str:
    """``name`` if it names a dataset; a clear error listing the valid names otherwise."""
    if not isinstance(name, str) or name not in _SOURCES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return name


def availability(name: str, root: Path | None = None) -> tuple[bool, str]:
    """Whether ``name`` can be loaded now (on disk, or its server reachable), and why."""
    source = _SOURCES[check_dataset_name(name)]
    root = root or config.data_dir()
    if source.local(root):
        return True, "on disk"
    if source.url and url_reachable(source.url):
        return True, "downloadable"
    return False, f"not in {root} and its server is unreachable"


def _subset_ids(labels: np.ndarray, n: int | None, seed: int) -> torch.Tensor:
    """Sorted positions of a seeded random subset of ``n`` examples in which each class keeps its share.

    Stratified, so that a small subset of a balanced dataset stays balanced (each
    class's count is its share of ``n``, rounded by largest remainder).
    """
    n_total = len(labels)
    if n is None or n >= n_total:
        return torch.arange(n_total)
    labels = torch.from_numpy(np.asarray(labels))
    classes, sizes = labels.unique(return_counts=True)
    counts = _spread(n, {int(c): float(size) for c, size in zip(classes, sizes)})
    generator = torch.Generator().manual_seed(seed)
    chosen = [_class_positions(labels, c, generator)[:count] for c, count in counts.items()]
    return torch.cat(chosen).sort().values


def load(
    name: str,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    root: Path | None = None,
) -> ImageData:
    """Load dataset ``name`` onto ``device``, downloading it into ``data/`` if needed.

    ``n_train`` and ``n_test`` keep a random subset (fixed by ``seed``) of each
    split, stratified by class.  Offline, a dataset that is not on disk raises
    :class:`DatasetUnavailable` within seconds, with a message saying what to do.
    """
    source = _SOURCES[check_dataset_name(name)]
    n_train = validate.optional_integer("n_train", n_train, minimum=1)
    n_test = validate.optional_integer("n_test", n_test, minimum=1)
    seed = validate.seed("seed", seed)
    device = config.choose_device(device) if device is not None else config.choose_device()
    root = Path(root) if root is not None else config.data_dir()
    if not source.local(root):
        if not url_reachable(source.url):
            raise DatasetUnavailable(
                f"{name} is not in {root} and {urllib.parse.urlsplit(source.url).hostname} cannot be reached "
                f"(offline?). Copy the dataset into {root} in torchvision's layout, or choose another "
                f"dataset ({config.DATASET_ENV}=digits always works)."
            )
        source.fetch(root)
    x_train, y_train, x_test, y_test, where = source.read(root)
    train_ids = _subset_ids(y_train, n_train, seed)
    test_ids = _subset_ids(y_test, n_test, seed + 1)
    train = Split(torch.from_numpy(x_train)[train_ids], torch.from_numpy(y_train)[train_ids])
    test = Split(torch.from_numpy(x_test)[test_ids], torch.from_numpy(y_test)[test_ids])
    return ImageData(
        info=INFO[name](root),
        train=train.to(device),
        test=test.to(device),
        train_ids=train_ids,
        source=where,
    )
