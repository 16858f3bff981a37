"""The notebooks' conventions (their execution is checked by nbval, over notebooks/)."""

import re
from pathlib import Path

import nbformat
import pytest

from unlearnlib import colab

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SLIDE_TYPES = {"slide", "subslide", "fragment", "skip", "notes", "-"}


def test_there_are_notebooks_numbered_in_teaching_order():
    names = [p.stem for p in NOTEBOOKS]
    assert names[:2] == ["01_data_analysis", "02_resnet_training"]
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+", name) for name in names)
    numbers = [int(name[:2]) for name in names]
    assert numbers == sorted(set(numbers))


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_committed_without_outputs(notebook):
    _, nb = notebook
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)


def test_every_cell_is_also_a_slide(notebook):
    _, nb = notebook
    for cell in nb.cells:
        assert cell.metadata.get("slideshow", {}).get("slide_type") in SLIDE_TYPES, cell.source[:60]


def test_opens_with_title_colab_badge_and_run_time(notebook):
    path, nb = notebook
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert colab.read_source().badge(path.name) in first.source
    assert "Run time" in first.source and "You will learn" in first.source
    assert first.metadata.slideshow.slide_type == "slide"


def test_first_code_cell_sets_up_colab_and_the_session(notebook):
    _, nb = notebook
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert setup.source.startswith(colab.setup_block(colab.read_source()) + "\n")
    assert "session.start()" in setup.source
    assert setup.metadata.slideshow.slide_type == "skip"


def test_claims_are_checked_by_assertion_cells_hidden_from_the_slides(notebook):
    _, nb = notebook
    checks = [
        c
        for c in nb.cells
        if c.cell_type == "code" and c.source.lstrip().startswith(("assert", "with")) and "assert" in c.source
    ]
    assert len(checks) >= 3
    assert all(c.metadata.slideshow.slide_type == "skip" for c in checks)
    asserting = [
        c
        for c in nb.cells
        if c.cell_type == "code" and any(line.lstrip().startswith("assert ") for line in c.source.splitlines())
    ]
    assert asserting == checks, "a cell that asserts opens with its assertions (computations go in the cell before)"
    tagged = [c for c in nb.cells if "claim" in c.metadata.get("tags", [])]
    assert tagged == checks, "assertion cells, and only they, carry the tag 'claim' (the gpu-path test leaves them out)"


def test_readme_links_every_notebook_with_a_badge():
    readme = (ROOT / "README.md").read_text()
    source = colab.read_source()
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}" in readme
        assert source.badge(path.name) in readme
