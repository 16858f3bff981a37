"""The datasets the course can load, where each is read from, and :func:`load`.

Sources: CIFAR-10 and CIFAR-100 (torchvision's on-disk format), MNIST and
Fashion-MNIST (idx files, from ``data/`` or, for Fashion-MNIST, from Debian's
``dataset-fashion-mnist`` package), each downloaded from torchvision's mirrors
into ``data/`` with its checksum verified; and scikit-learn's digits, which
ship with scikit-learn and need no network.  ``load(name)`` returns an
:class:`~unlearnlib.imagedata.ImageData` on the compute device.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torchvision
from tqdm.auto import tqdm

from . import config, validate
from .batching import Augmentation
from .imagedata import DatasetInfo, ImageData, Split, class_positions, complement, spread

DOWNLOAD_TIMEOUT = 10.0
"""Seconds a download may wait for the network before it gives up."""

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class DatasetUnavailable(RuntimeError):
    """A dataset is neither on disk nor downloadable (offline, or a corrupt download)."""


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
    counts = spread(n, {int(c): float(size) for c, size in zip(classes, sizes)})
    generator = torch.Generator().manual_seed(seed)
    chosen = [class_positions(labels, c, generator)[:count] for c, count in counts.items()]
    return torch.cat(chosen).sort().values


VALIDATION_SHARE = 0.2
"""The validation split's default size, as a share of all the test data."""


def _held_out_ids(labels: np.ndarray, n_test: int | None, n_validation: int | None, seed: int):
    """Positions of the test split and of the validation split in the test data, disjoint, each stratified.

    The test split is chosen as if there were no validation split, so that holding
    one out changes no test set that leaves test data unused: the validation
    examples come from those unused ones where there are enough, and are otherwise
    held out of the test split itself (digits, or a profile that uses all the test data).
    """
    test_ids = _subset_ids(labels, n_test, seed + 1)
    if n_validation is None:
        n_validation = round(VALIDATION_SHARE * len(labels))
    if n_validation == 0:
        return test_ids, None
    spare = complement(test_ids, len(labels))
    if len(spare) >= n_validation:
        return test_ids, spare[_subset_ids(labels[spare.numpy()], n_validation, seed + 2)]
    if n_validation >= len(test_ids):
        raise ValueError(
            f"n_validation={n_validation} would leave no test examples: there are {len(labels)} in all, "
            f"{len(test_ids)} of them for the test split"
        )
    inside = _subset_ids(labels[test_ids.numpy()], n_validation, seed + 2)
    return test_ids[complement(inside, len(test_ids))], test_ids[inside]


def load(
    name: str,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    n_validation: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    root: Path | None = None,
) -> ImageData:
    """Load dataset ``name`` onto ``device``, downloading it into ``data/`` if needed.

    ``n_train`` and ``n_test`` keep a random subset (fixed by ``seed``) of each
    split, stratified by class.  ``n_validation`` test examples (by default a fifth of
    all the test data), stratified and disjoint from the test split, become the
    validation split: the unseen examples unlearning methods may use, since the test
    split is the evaluation's alone.  They come from test data the test split leaves
    unused, or else out of the test split (``0``: no validation split).  Offline, a
    dataset that is not on disk raises :class:`DatasetUnavailable` within seconds,
    with a message saying what to do.
    """
    source = _SOURCES[check_dataset_name(name)]
    n_train = validate.optional_integer("n_train", n_train, minimum=1)
    n_test = validate.optional_integer("n_test", n_test, minimum=1)
    n_validation = validate.optional_integer("n_validation", n_validation, minimum=0)
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
    test_ids, validation_ids = _held_out_ids(y_test, n_test, n_validation, seed)

    def split(images: np.ndarray, labels: np.ndarray, ids: torch.Tensor) -> Split:
        return Split(torch.from_numpy(images)[ids], torch.from_numpy(labels)[ids]).to(device)

    return ImageData(
        info=INFO[name](root),
        train=split(x_train, y_train, train_ids),
        test=split(x_test, y_test, test_ids),
        train_ids=train_ids,
        source=where,
        validation=split(x_test, y_test, validation_ids) if validation_ids is not None else None,
    )
