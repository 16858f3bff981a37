"""The gpu profile's code path runs through every notebook: CIFAR-10's three channels, ResNet-18, crop and flip.

Colab students run the gpu profile, which CI cannot: it has no GPU and no CIFAR-10. So each notebook's
code cells run here under ``UNLEARN_PROFILE=gpu`` on a tiny fake CIFAR-10 written in torchvision's on-disk
format, with the profile's sizes and epochs shrunk by ``UNLEARN_OVERRIDES``, on the CPU. The cells tagged
``claim`` (the assertion cells) are left out in this test only: random pixels teach nothing, so the
claims cannot hold; what is checked is that shapes, channels, augmentation and the network never crash.
It takes about seven minutes on two cores, so ``make test`` leaves it out (marker ``gpu_path``) and
``make test-gpu-path`` runs it; CI runs both.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SHRUNK = "epochs=1,width=4,batch_size=32"
"""The gpu profile's recipe (ResNet-18, augmentation, the full training set) at a size a CPU runs in seconds."""


@pytest.fixture(scope="module")
def fake_cifar_root(tmp_path_factory) -> Path:
    """A course root whose data/ holds a 300-image CIFAR-10 (random pixels, balanced labels, the real class names)."""
    root = tmp_path_factory.mktemp("gpu-path")
    folder = root / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def write(name: str, count: int) -> None:
        labels = rng.permutation(np.arange(count) % 10).tolist()
        images = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as fh:
            pickle.dump({"batch_label": name, "labels": labels, "data": images}, fh)

    for i in range(1, 6):
        write(f"data_batch_{i}", 50)
    write("test_batch", 100)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": CIFAR10_CLASSES, "num_vis": 3072}, fh)
    return root


@pytest.mark.gpu_path
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_code_cell_runs_under_the_gpu_profile(path, fake_cifar_root, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    notebook.cells = [c for c in notebook.cells if "claim" not in c.metadata.get("tags", [])]
    env = {
        "UNLEARN_PROFILE": "gpu",
        "UNLEARN_OVERRIDES": SHRUNK,
        "UNLEARN_ROOT": str(fake_cifar_root),
        "UNLEARN_DEVICE": "cpu",
        "MPLBACKEND": "Agg",
    }
    for name in ("UNLEARN_DATASET", "UNLEARN_RESULTS"):
        monkeypatch.delenv(name, raising=False)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute(env=os.environ | env)
    setup = next(c for c in notebook.cells if c.cell_type == "code" and "session.start()" in c.source)
    printed = "".join(o.get("text", "") for o in setup.outputs if o.output_type == "stream")
    assert "profile  gpu" in printed and "dataset  cifar10" in printed, printed
