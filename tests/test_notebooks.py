"""The notebooks' conventions (their execution is checked by nbval, over notebooks/)."""

import ast
import itertools
import re
from pathlib import Path

import nbformat
import pytest

from unlearnlib import colab, readme, slides, student

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SLIDE_TYPES = {"slide", "subslide", "fragment", "skip", "notes", "-"}


def test_there_are_notebooks_numbered_in_teaching_order():
    names = [p.stem for p in NOTEBOOKS]
    assert names[:3] == ["00_introduction", "01_data_analysis", "02_resnet_training"]
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


def test_opens_with_a_title_slide_then_goals_and_run_time(notebook):
    path, nb = notebook
    title = nb.cells[0]
    assert title.cell_type == "markdown" and title.source.startswith("# ")
    assert colab.read_source().badge(path.name) in title.source
    assert title.metadata.slideshow.slide_type == "slide"
    opening = "\n".join(c.source for c in itertools.takewhile(lambda c: c.cell_type == "markdown", nb.cells))
    assert "You will learn" in opening
    assert readme.run_time_cell(nb).metadata.slideshow.slide_type == "skip", "the run time is for readers, not slides"


def _slide_type(cell) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def test_every_section_slide_has_speaker_notes(notebook):
    """A section slide (type slide) holds a notes cell before the next slide or subslide starts."""
    _, nb = notebook
    starts = [i for i, c in enumerate(nb.cells) if _slide_type(c) in ("slide", "subslide")] + [len(nb.cells)]
    for start, end in zip(starts, starts[1:]):
        if _slide_type(nb.cells[start]) == "slide":
            notes = [c for c in nb.cells[start + 1 : end] if _slide_type(c) == "notes"]
            assert notes, f"the section slide {nb.cells[start].source[:50]!r} has no speaker notes"
            assert all(n.cell_type == "markdown" and n.source.startswith("*Speaker notes.*") for n in notes)


def test_the_deck_closes_with_what_we_learned(notebook):
    _, nb = notebook
    shown = [c for c in nb.cells if _slide_type(c) not in ("skip", "notes")]
    last_section = [c for c in shown if _slide_type(c) == "slide"][-1]
    assert last_section.source.startswith("## What we learned"), last_section.source[:60]
    after = shown[shown.index(last_section) + 1 :]
    assert all(_slide_type(c) in ("-", "fragment", "subslide") and c.cell_type == "markdown" for c in after)


def test_the_algorithm_cores_show_their_code_on_the_slides(notebook):
    """A method written out by hand (a function named *_by_hand) is the point of its slide: tagged show-code."""
    _, nb = notebook
    for cell in nb.cells:
        if cell.cell_type == "code" and re.search(r"^def \w+_by_hand\(", cell.source, re.MULTILINE):
            if student.nbgrader_role(cell) is None:
                assert slides.SHOW_CODE in cell.metadata.get("tags", []), cell.source[:60]


def test_first_code_cell_sets_up_colab_and_the_session(notebook):
    _, nb = notebook
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert setup.source.startswith(colab.setup_block(colab.read_source()) + "\n")
    assert "session.start()" in setup.source
    assert setup.metadata.slideshow.slide_type == "skip"


def test_claims_are_checked_by_assertion_cells_hidden_from_the_slides(notebook):
    _, nb = notebook
    lesson = [c for c in nb.cells if c.cell_type == "code" and student.nbgrader_role(c) is None]
    checks = [c for c in lesson if c.source.lstrip().startswith(("assert", "with")) and "assert" in c.source]
    assert len(checks) >= 3
    assert all(c.metadata.slideshow.slide_type == "skip" for c in checks)
    asserting = [c for c in lesson if any(line.lstrip().startswith("assert ") for line in c.source.splitlines())]
    assert asserting == checks, "a cell that asserts opens with its assertions (computations go in the cell before)"
    tagged = [c for c in nb.cells if "claim" in c.metadata.get("tags", [])]
    assert tagged == checks, "assertion cells, and only they, carry the tag 'claim' (the gpu-path test leaves them out)"


def test_every_notebook_after_the_introduction_has_graded_exercises(notebook):
    path, nb = notebook
    found = student.exercises(nb)
    if path.name.startswith("00_"):
        return
    number = int(path.name[:2])
    assert len(found) >= 3, f"{path.name} has {len(found)} exercises; each notebook from 01 on has at least 3"
    assert [e.number for e in found] == [f"{number}.{k}" for k in range(1, len(found) + 1)]
    assert {e.level for e in found} == set(student.LEVELS), "a warm-up, a core exercise and a stretch"
    for exercise in found:
        assert exercise.solutions, f"exercise {exercise.number} has no solution cell"
        assert nb.cells[exercise.heading].metadata.slideshow.slide_type == "subslide"
        for i in exercise.solutions + exercise.grades:
            assert nb.cells[i].metadata.slideshow.slide_type == "skip", f"exercise {exercise.number}: cell {i}"
        for i in exercise.solutions:
            cell = nb.cells[i]
            if cell.cell_type == "code":
                assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source


def test_nbgrader_cells_belong_to_an_exercise_and_have_distinct_ids(notebook):
    _, nb = notebook
    owned = {i for e in student.exercises(nb) for i in e.solutions + e.grades}
    marked = [i for i, c in enumerate(nb.cells) if student.nbgrader_role(c) is not None]
    assert marked == sorted(owned), "every solution and grade cell follows an exercise's heading"
    ids = [nb.cells[i].metadata.nbgrader["grade_id"] for i in marked]
    assert len(ids) == len(set(ids)), "nbgrader grade ids are distinct"
    for i, cell in enumerate(nb.cells):
        if i not in owned:
            assert not any(mark in cell.source for mark in student.SOLUTION_MARKS), f"cell {i}: a solution marker"


def _names(source: str, context: type) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name) and isinstance(n.ctx, context)}


def test_the_lesson_never_uses_what_an_exercise_computes(notebook):
    """A student's copy has no solutions: the lesson after an exercise must run without them."""
    _, nb = notebook
    owned = {i for e in student.exercises(nb) for i in e.solutions + e.grades}
    lesson_defines, exercise_only = set(), set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if i in owned:
            exercise_only |= _names(cell.source, ast.Store) - lesson_defines
            continue
        defines = _names(cell.source, ast.Store)
        used = (_names(cell.source, ast.Load) - defines) & exercise_only
        assert not used, f"cell {i} uses {sorted(used)}, which only an exercise's solution defines"
        lesson_defines |= defines
        exercise_only -= defines


def test_readme_links_every_notebook_with_a_badge():
    readme = (ROOT / "README.md").read_text()
    source = colab.read_source()
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}" in readme
        assert source.badge(path.name) in readme


def test_every_method_names_the_notebook_section_that_teaches_it():
    from unlearnlib import unlearn

    for method in unlearn.methods():
        doc = " ".join((method.__doc__ or "").split())
        found = re.search(r"Taught in notebook (\d\d), section (\d+) \((.+?)\)[.;]", doc)
        assert found, f"{method.name}: no 'Taught in notebook NN, section K (title).' in its docstring"
        number, section, title = found.groups()
        (path,) = [p for p in NOTEBOOKS if p.name.startswith(f"{number}_")]
        headings = [
            " ".join(line[3:].split())
            for cell in nbformat.read(path, as_version=4).cells
            if cell.cell_type == "markdown"
            for line in cell.source.splitlines()
            if line.startswith(f"## {section}. ")
        ]
        assert headings, f"{method.name}: {path.name} has no section {section}"
        heading = headings[0].split(". ", 1)[1]
        assert heading.replace("$", "").startswith(title.replace("$", "")), f"{method.name}: {heading!r} vs {title!r}"
