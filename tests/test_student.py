"""The students' copies of the notebooks (``make student``): nbgrader's release, without solutions, still runs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from unlearnlib import student

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NOTEBOOK_ENV = {
    "UNLEARN_PROFILE": "smoke",
    # The cache the notebooks themselves use under `make test` (read before the tests' own roots are set),
    # so that the students' copies reuse the models the instructor's notebooks train.
    "UNLEARN_ROOT": os.environ.get("UNLEARN_ROOT") or str(ROOT),
    **{name: os.environ[name] for name in ("UNLEARN_DATASET",) if name in os.environ},
    "MPLBACKEND": "Agg",
}


def _marked(cell, role: str, grade_id: str, **extra):
    cell.metadata["nbgrader"] = {
        "grade_id": grade_id,
        "schema_version": 3,
        "solution": role == "solution",
        "grade": role == "grade" or "points" in extra,
        "locked": role == "grade",
        "task": False,
        **extra,
    }
    return cell


def _toy(solution_cell: bool = True):
    notebook = new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    solution = new_code_cell("### BEGIN SOLUTION\nanswer = 6 * 7\n### END SOLUTION")
    notebook.cells = [
        new_code_cell("x = 1"),
        new_markdown_cell("### Exercise 1.1 (warm-up): multiply\n\nCompute 6 times 7."),
        _marked(solution, "solution", "ex1") if solution_cell else solution,
        _marked(
            new_code_cell(
                "assert isinstance(answer, int)\n### BEGIN HIDDEN TESTS\nassert answer == 42\n### END HIDDEN TESTS"
            ),
            "grade",
            "ex1-test",
            points=1,
        ),
        new_markdown_cell("Back to the lesson."),
        new_markdown_cell("### Exercise 1.2 (stretch): explain\n\nWhy?"),
        _marked(new_markdown_cell("Because 42."), "solution", "ex2-answer", points=1),
    ]
    return notebook


def test_exercises_are_read_with_their_level_and_their_own_cells():
    found = student.exercises(_toy())
    assert [(e.number, e.level, e.title) for e in found] == [
        ("1.1", "warm-up", "multiply"),
        ("1.2", "stretch", "explain"),
    ]
    assert (found[0].heading, found[0].solutions, found[0].grades) == (1, (2,), (3,))
    assert (found[1].heading, found[1].solutions, found[1].grades) == (5, (6,), ())
    assert student.first_exercise(_toy()) == 1


def test_an_exercise_of_an_unknown_level_is_refused():
    notebook = _toy()
    notebook.cells[1].source = "### Exercise 1.1 (easy): multiply"
    with pytest.raises(ValueError, match="easy"):
        student.exercises(notebook)


def test_release_removes_solutions_and_hidden_tests_and_keeps_the_rest(tmp_path):
    source = tmp_path / "01_toy.ipynb"
    nbformat.write(_toy(), source)
    (copy,) = student.release([source], tmp_path / "course", tmp_path / "student")
    released = nbformat.read(copy, as_version=4)
    assert student.leftovers(copy) == []
    assert "raise NotImplementedError" in released.cells[2].source and "6 * 7" not in released.cells[2].source
    assert released.cells[3].source.strip() == "assert isinstance(answer, int)"
    assert "42" not in released.cells[6].source
    assert [c.source for c in released.cells[:2]] == [c.source for c in _toy().cells[:2]]


def test_release_names_the_problem_when_nbgrader_refuses_a_notebook(tmp_path):
    source = tmp_path / "01_toy.ipynb"
    nbformat.write(_toy(solution_cell=False), source)
    with pytest.raises(RuntimeError, match="nbgrader generate_assignment failed"):
        student.release([source], tmp_path / "course", tmp_path / "student")


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict[str, Path]:
    """The students' copies of the course's notebooks, as ``make student`` writes them."""
    where = tmp_path_factory.mktemp("student")
    copies = student.release(NOTEBOOKS, where / "nbgrader", where / "student")
    return {path.stem: path for path in copies}


def test_the_students_copies_hold_no_solution_and_every_exercise(released):
    for path in NOTEBOOKS:
        copy = released[path.stem]
        assert student.leftovers(copy) == [], copy.name
        ours, theirs = nbformat.read(path, as_version=4), nbformat.read(copy, as_version=4)
        assert [e.number for e in student.exercises(theirs)] == [e.number for e in student.exercises(ours)]


@pytest.mark.students
@pytest.mark.parametrize("name", [p.stem for p in NOTEBOOKS])
def test_a_students_copy_runs_up_to_its_first_exercise(name, released):
    notebook = nbformat.read(released[name], as_version=4)
    notebook.cells = notebook.cells[: student.first_exercise(notebook)]
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
    )
    client.execute(env=os.environ | NOTEBOOK_ENV)
