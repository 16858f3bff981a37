"""Colab: badges and set-up blocks follow pyproject.toml, and the set-up block installs the course on Colab."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from unlearnlib import colab

GIT = ["git", "-c", "user.name=course", "-c", "user.email=course@example.invalid", "-c", "init.defaultBranch=main"]


def test_every_badge_and_set_up_block_agrees_with_pyproject():
    source = colab.read_source()
    assert source.url.startswith("https://github.com/") and source.ref
    assert colab.sync(write=False) == [], "run `make colab` (python -m unlearnlib.colab --write)"


def test_the_citation_names_the_repository_and_version_of_pyproject():
    from importlib.metadata import version

    import yaml

    citation = yaml.safe_load((colab.checkout_root() / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["title"] and citation["authors"] and citation["message"]
    assert (citation["repository-code"], str(citation["version"])) == (colab.read_source().url, version("unlearnlib"))


def test_the_check_command_says_so(capsys):
    assert colab.main(["--check"]) == 0
    assert "every Colab badge and set-up block points at" in capsys.readouterr().out


PYPROJECT = """
[project]
name = "x"
[project.urls]
Repository = "https://github.com/someone/course"
[tool.unlearnlib]
ref = "{ref}"
"""

LEGACY = """# Set-up. On Colab: fetch the course code. Everywhere: choose profile, dataset and device, and say why.
import os, subprocess, sys

if "google.colab" in sys.modules:
    checkout = "/content/machine-unlearning"
    if not os.path.isdir(checkout):
        subprocess.run(["git", "clone", "https://github.com/someone/course", checkout], check=True)
    sys.path.insert(0, checkout)

from unlearnlib import session

setup = session.start()"""


def _course(root: Path, ref: str) -> None:
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT.format(ref=ref))
    old = colab.Source("https://github.com/someone/course", "main")
    notebook = new_notebook(
        cells=[
            new_markdown_cell(f"# 01 · Title\n\n{old.badge('01_a.ipynb')}\n\nText."),
            new_code_cell(LEGACY),
            new_code_cell("assert True, 'a claim'"),
        ]
    )
    nbformat.write(notebook, root / "notebooks" / "01_a.ipynb")
    nbformat.write(
        new_notebook(cells=[new_markdown_cell("# 02 · B\n\nNo badge."), new_code_cell("x = 1")]),
        root / "notebooks" / "02_b.ipynb",
    )
    (root / "README.md").write_text(
        f"# Course\n\n| 01 | {old.badge('01_a.ipynb')} |\n| 02 | {old.badge('02_b.ipynb')} |\n"
    )


def test_write_rewrites_badges_and_set_up_blocks_and_nothing_else(tmp_path, capsys):
    _course(tmp_path, "v2030.1")
    before = nbformat.read(tmp_path / "notebooks" / "01_a.ipynb", as_version=4)
    problems = colab.sync(write=True, root=tmp_path)
    assert any("01_a.ipynb: the Colab badge of 01_a.ipynb links" in p for p in problems)
    assert "02_b.ipynb: no Colab badge in the first cell" in problems
    new = colab.Source("https://github.com/someone/course", "v2030.1")
    readme = (tmp_path / "README.md").read_text()
    assert new.badge("01_a.ipynb") in readme and new.badge("02_b.ipynb") in readme and "/blob/main/" not in readme

    after = nbformat.read(tmp_path / "notebooks" / "01_a.ipynb", as_version=4)
    assert after.cells[0].source == f"# 01 · Title\n\n{new.badge('01_a.ipynb')}\n\nText."
    block = colab.setup_block(new)
    assert after.cells[1].source == block + "\n\nfrom unlearnlib import session\n\nsetup = session.start()"
    assert "git+https://github.com/someone/course@v2030.1" in block
    assert after.cells[2] == before.cells[2] and after.metadata == before.metadata
    second = nbformat.read(tmp_path / "notebooks" / "02_b.ipynb", as_version=4)
    assert second.cells[0].source == f"# 02 · B\n\n{new.badge('02_b.ipynb')}\n\nNo badge."
    assert second.cells[1].source == block + "\n\nx = 1"

    assert colab.sync(write=False, root=tmp_path) == []
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.format(ref="v2030.2"))
    problems = colab.sync(write=False, root=tmp_path)
    assert len(problems) == 6 and all("differs" in p or "links" in p for p in problems)
    colab.sync(write=True, root=tmp_path)
    again = nbformat.read(tmp_path / "notebooks" / "01_a.ipynb", as_version=4)
    assert again.cells[1].source.endswith("\n\nfrom unlearnlib import session\n\nsetup = session.start()")
    assert again.cells[1].source.count(colab.BEGIN) == 1 and "@v2030.2" in again.cells[1].source


def test_badges_need_a_github_url_and_a_plain_ref(tmp_path):
    with pytest.raises(ValueError, match="Colab badges need a https://github.com/OWNER/NAME repository URL"):
        colab.Source("https://gitlab.com/someone/course", "main").badge("01_a.ipynb")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.format(ref="main branch"))
    with pytest.raises(ValueError, match="ref 'main branch' must be a string without spaces"):
        colab.read_source(tmp_path / "pyproject.toml")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with pytest.raises(ValueError, match=r"must declare \[project.urls\] Repository and \[tool.unlearnlib\] ref"):
        colab.read_source(tmp_path / "pyproject.toml")


# ---------------------------------------------------------------- the Colab branch of the set-up block, run for real

RUNNER = """
import importlib.util, os, sys, types

# Stand-in Colab: a google.colab module, and no unlearnlib importable yet (hide an editable install of it).
sys.modules["google.colab"] = types.ModuleType("google.colab")
sys.meta_path[:] = [f for f in sys.meta_path if "unlearnlib" not in getattr(f, "__module__", "")]
sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "unlearnlib"))]
assert importlib.util.find_spec("unlearnlib") is None, "unlearnlib is importable before the set-up block ran"
exec(compile(open(sys.argv[1]).read(), "set-up block", "exec"), {"__name__": "__main__"})
import unlearnlib.session, unlearnlib.unlearn
print("IMPORTED", unlearnlib.__file__)
"""


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="pip installs git+ URLs with git")


@pytest.fixture(scope="module")
def course_repository(source_tree, tmp_path_factory) -> str:
    """A bare git repository made from a copy of the tree, committed and tagged at a ref: its file:// URL."""
    work = tmp_path_factory.mktemp("repository") / "machine-unlearning"
    shutil.copytree(source_tree, work, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "course"], ["tag", "course-test"]):
        subprocess.run([*GIT, *command], cwd=work, check=True)
    bare = work.parent / "machine-unlearning.git"
    subprocess.run([*GIT, "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare.as_uri()


def _run_colab_branch(tmp_path: Path, url: str, ref: str) -> subprocess.CompletedProcess:
    """The set-up block for ``url`` at ``ref``, run as on Colab, installing into a temporary target only."""
    block = tmp_path / "setup.py"
    block.write_text(colab.setup_block(colab.Source(url, ref)))
    (tmp_path / "runner.py").write_text(textwrap.dedent(RUNNER))
    target = tmp_path / "target"
    target.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "UNLEARN_"))}
    env |= {
        "PYTHONPATH": str(target),  # what pip installs lands here, and only here
        "PIP_TARGET": str(target),
        "PIP_NO_DEPS": "1",  # torch and the rest are already here, as on Colab
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip's spelling of "build with the setuptools already installed"
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "UNLEARN_ROOT": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, str(tmp_path / "runner.py"), str(block)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_git
def test_on_colab_the_set_up_block_installs_the_course_from_the_repository_at_the_ref(course_repository, tmp_path):
    ran = _run_colab_branch(tmp_path, course_repository, "course-test")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"Installing the course code from {course_repository} at course-test" in ran.stdout
    imported = Path(ran.stdout.split("IMPORTED ")[1].strip())
    assert imported.is_relative_to(tmp_path / "target")
    assert (tmp_path / "target" / "unlearnlib" / "unlearn" / "registry.py").is_file()
    if not torch.cuda.is_available():
        assert "This Colab runtime has no GPU" in ran.stdout and "Runtime > Change runtime type" in ran.stdout


@needs_git
def test_on_colab_a_wrong_url_says_what_to_do_instead_of_a_traceback(tmp_path):
    ran = _run_colab_branch(tmp_path, (tmp_path / "no-such-repository.git").as_uri(), "main")
    assert ran.returncode == 1
    assert "Could not install the course code from file://" in ran.stderr
    assert "[tool.unlearnlib] ref" in ran.stderr and "upload it in Colab's Files panel" in ran.stderr
    assert "Traceback" not in ran.stdout + ran.stderr and "IMPORTED" not in ran.stdout
    assert not list((tmp_path / "target").iterdir())


def test_outside_colab_the_set_up_block_does_nothing(tmp_path):
    block = colab.setup_block(colab.Source("file:///nowhere", "main"))
    shown = subprocess.run(
        [sys.executable, "-c", block + "\nprint(sorted(k for k in dir() if not k.startswith('__')))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert shown.stdout.strip() == "['sys']" and not shown.stderr
