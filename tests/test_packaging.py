"""The package as pip installs it: the wheel ships every module, and its dependencies are the library's own."""

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_TOOLS = {"jupyterlab", "nbconvert", "nbclient", "nbformat", "ipykernel", "ipywidgets"}
TEST_TOOLS = {"pytest", "nbval", "ruff"}


@pytest.fixture(scope="module")
def wheel(source_tree, tmp_path_factory) -> Path:
    """The wheel of a copy of the tree, built once (no network, no build isolation)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--wheel-dir", str(out), str(source_tree)],
        check=True,
    )
    (built,) = out.glob("unlearnlib-*.whl")
    return built


def _requirement_name(line: str) -> str:
    return line.split(";")[0].replace(" ", "").split("[")[0].rstrip("<>=!~.0123456789,").lower()


def test_the_wheel_ships_every_module_of_the_source_tree(wheel):
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "unlearnlib").rglob("*.py")}
    assert "unlearnlib/unlearn/registry.py" in modules
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert modules - shipped == set()
    assert not [name for name in shipped if name.startswith(("tests/", "notebooks/"))]


def test_the_wheel_needs_only_the_librarys_imports_and_keeps_tools_in_extras(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(name).decode())
    requires = metadata.get_all("Requires-Dist")
    plain = {_requirement_name(r) for r in requires if "extra ==" not in r}
    assert {"torch", "torchvision", "numpy", "pandas", "matplotlib", "seaborn", "scikit-learn", "tqdm"} <= plain
    assert not plain & (NOTEBOOK_TOOLS | TEST_TOOLS)
    assert not [r for r in requires if "<" in r.split(";")[0] or "==" in r.split(";")[0]], "lower bounds only"
    extras = {_requirement_name(r) for r in requires if "extra ==" in r}
    assert NOTEBOOK_TOOLS | TEST_TOOLS <= extras
    assert set(metadata.get_all("Provides-Extra")) >= {"notebooks", "test", "dev"}


def test_the_wheel_imports_from_a_plain_target_directory(wheel, tmp_path):
    target = tmp_path / "target"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target), wheel],
        check=True,
    )
    code = "import unlearnlib.unlearn, unlearnlib.session as s; print(s.__file__, len(unlearnlib.unlearn.methods()))"
    shown = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "UNLEARN_ROOT": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert Path(shown[0]).is_relative_to(target) and int(shown[1]) >= 10
