"""The gpu profile's code path runs through every notebook: CIFAR-10's three channels, ResNet-18, crop and flip.

Colab students run the gpu profile, which CI cannot: it has no GPU and no CIFAR-10. So each notebook's
code cells run here under ``UNLEARN_PROFILE=gpu`` on a tiny fake CIFAR-10 written in torchvision's on-disk
format, with the profile's sizes and epochs shrunk by ``UNLEARN_OVERRIDES``, on the CPU. The cells tagged
``claim`` (the assertion cells) and the exercises' grade cells (their tests) are left out in this test
only: random pixels teach nothing, so the claims cannot hold; what is checked is that shapes, channels,
augmentation and the network never crash. ``make test-gpu-path`` runs it (marker ``gpu_path``), one notebook
per process, and CI runs that after ``make test``, which leaves it out to stay within its time budget.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from unlearnlib import student

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SHRUNK = "epochs=1,width=4,batch_size=32"
"""The gpu profile's recipe (ResNet-18, augmentation, the full training set) at a size a CPU runs in seconds."""


@pytest.fixture(scope="module")
def fake_cifar_root(tmp_path_factory, make_fake_cifar) -> Path:
    """A course root whose data/ holds a 350-image CIFAR-10 (random pixels, balanced labels, the real class names)."""
    root = tmp_path_factory.mktemp("gpu-path")
    make_fake_cifar(root / "data", n_per_batch=50, n_test=100, names=CIFAR10_CLASSES)
    return root


@pytest.mark.gpu_path
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_code_cell_runs_under_the_gpu_profile(path, fake_cifar_root, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    notebook.cells = [
        c for c in notebook.cells if "claim" not in c.metadata.get("tags", []) and student.nbgrader_role(c) != "grade"
    ]
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
