"""Shared fixtures: an isolated course root, small datasets, and a fake CIFAR-10 on disk."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import tqdm
from hypothesis import settings

from unlearnlib import datasets, imagedata

# Progress bars lock within one process only. tqdm's default lock is also a multiprocessing semaphore, which
# every process forked after its creation shares (mutmut forks one per mutant): one killed while holding it
# would leave every later one waiting for it for ever as soon as it draws a bar.
tqdm.tqdm.set_lock(threading.RLock())

# `make mutation` runs the tests once for each mutant: each run draws the same examples and remembers none.
settings.register_profile("mutation", derandomize=True, database=None)


def pytest_xdist_make_scheduler(config, log):
    """Under ``--dist loadscope``, each notebook of the gpu-path test is a scope of its own.

    Loadscope keeps a module's tests (and a notebook's nbval cells) in one process, which would put the
    gpu-path test's ten notebooks, minutes of work, in one process after another.
    """
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class NotebookScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if nodeid.startswith("tests/test_gpu_path.py::") else super()._split_scope(nodeid)

    return NotebookScopes(config, log)


@pytest.fixture(autouse=True)
def seeded_torch():
    """Every test starts from one torch random state, so none depends on the tests that ran before it.

    (pytest-randomly does the same for ``random`` and NumPy's global state.)
    """
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def isolated_root(tmp_path, monkeypatch):
    """Every test gets its own course root (data/, checkpoints/, build/) and no profile from outside."""
    monkeypatch.setenv("UNLEARN_ROOT", str(tmp_path))
    for name in ("UNLEARN_PROFILE", "UNLEARN_DATASET", "UNLEARN_DEVICE", "UNLEARN_RESULTS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def digits() -> imagedata.ImageData:
    """All of scikit-learn's digits, with no validation split: every test example stays in the test split."""
    return datasets.load("digits", n_validation=0, device="cpu")


def write_fake_cifar(
    root: Path, n_per_batch: int = 6, n_test: int = 8, classes: int = 10, names: list[str] | None = None
) -> dict:
    """A tiny CIFAR-10 in torchvision's on-disk layout (pickled batches); returns what was written.

    Random pixels; random labels, or with ``names`` (the class names), labels balanced in every batch.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def labels(count: int) -> list[int]:
        return (rng.permutation(np.arange(count) % classes) if names else rng.integers(0, classes, count)).tolist()

    written = {"train_x": [], "train_y": []}
    for i in range(1, 6):
        x = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        y = labels(n_per_batch)
        with open(folder / f"data_batch_{i}", "wb") as fh:
            pickle.dump({"batch_label": f"training batch {i} of 5", "labels": y, "data": x}, fh)
        written["train_x"].append(x)
        written["train_y"] += y
    x = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    y = labels(n_test)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"batch_label": "testing batch 1 of 1", "labels": y, "data": x}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": names or [f"c{i}" for i in range(classes)], "num_vis": 3072}, fh)
    written["train_x"] = np.concatenate(written["train_x"]).reshape(-1, 3, 32, 32)
    written["test_x"], written["test_y"] = x.reshape(-1, 3, 32, 32), y
    return written


@pytest.fixture(scope="session")
def make_fake_cifar():
    return write_fake_cifar


@pytest.fixture
def fake_cifar10(isolated_root) -> dict:
    return write_fake_cifar(isolated_root / "data")


@pytest.fixture
def tiny_split() -> imagedata.Split:
    """Twelve distinct 2x5x6 images, labels 0..2."""
    images = torch.arange(12 * 2 * 5 * 6).reshape(12, 2, 5, 6).remainder(251).to(torch.uint8) + 1
    return imagedata.Split(images, torch.arange(12) % 3)


ROOT = Path(__file__).resolve().parent.parent
_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "build", "checkpoints", "data", "node_modules", "*.egg-info", "__pycache__"
)


def copy_source_tree(destination: Path) -> Path:
    """A copy of the repository's files as a fresh clone would have them (git's view, else without build outputs)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        return Path(shutil.copytree(ROOT, destination, ignore=_IGNORED))
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.fixture(scope="session")
def source_tree(tmp_path_factory) -> Path:
    """A copy of the repository made once per test session (for building and installing it)."""
    return copy_source_tree(tmp_path_factory.mktemp("source") / "machine-unlearning")
