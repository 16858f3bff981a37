"""The exercises of the notebooks, and the students' copies of the notebooks without their solutions.

The notebooks in ``notebooks/`` are nbgrader *source* notebooks, the instructor's version. An exercise
opens with a Markdown cell headed ``### Exercise <notebook>.<k> (<level>): <title>``, the level being one
of :data:`LEVELS`. Its answer lies in nbgrader solution cells: code between ``### BEGIN SOLUTION`` and
``### END SOLUTION``, or a whole Markdown cell (a written answer). Where an answer can be checked, an
nbgrader grade cell follows, whose tests between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``
the student does not see. Every cell runs in CI, solutions included.

``python -m unlearnlib.student`` (``make student``) lays the notebooks out as an nbgrader course, one
assignment per notebook, runs nbgrader's own ``generate_assignment`` on it, and copies the released
notebooks, without solutions and hidden tests, to ``build/student/``. An instructor who grades with
nbgrader uses the course folder it leaves in ``build/nbgrader/`` (``source/``, ``release/`` and the
gradebook) as any nbgrader course.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import config
from .course import notebooks as numbered

LEVELS = ("warm-up", "core", "stretch")
"""How demanding an exercise is, in the order a notebook's exercises climb."""

HEADING = re.compile(r"^### Exercise (\d+)\.(\d+) \(([a-z-]+)\): (\S.*)$", re.MULTILINE)
"""An exercise's heading: ``### Exercise 6.2 (core): title``."""

SOLUTION_MARKS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
"""The nbgrader markers a student's copy must no longer contain."""


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: its number, level and title, and the positions of its cells."""

    number: str
    """``"<notebook>.<k>"``, e.g. ``"6.2"``."""
    level: str
    title: str
    heading: int
    """The position of its heading cell."""
    solutions: tuple[int, ...]
    """The positions of its solution cells."""
    grades: tuple[int, ...]
    """The positions of its grade cells (its tests)."""


def nbgrader_role(cell) -> str | None:
    """``"solution"``, ``"grade"`` (a test, or a graded written answer: both) or ``None`` for a cell of the lesson."""
    marks = cell.get("metadata", {}).get("nbgrader", {})
    if marks.get("solution"):
        return "solution"
    if marks.get("grade"):
        return "grade"
    return None


def exercises(notebook) -> list[Exercise]:
    """The exercises of a notebook (an ``nbformat`` node), in order.

    A heading cell starts an exercise; the solution and grade cells that follow it, up to the next cell that
    is neither (a cell of the lesson, or the next heading), are its own.
    """
    found: list[Exercise] = []
    cells = notebook.cells
    for i, cell in enumerate(cells):
        match = HEADING.search(cell.source) if cell.cell_type == "markdown" else None
        if match is None:
            continue
        number, level, title = f"{match[1].lstrip('0') or '0'}.{match[2]}", match[3], match[4].strip()
        if level not in LEVELS:
            raise ValueError(f"exercise {number}: level {level!r} is not one of {', '.join(LEVELS)}")
        solutions, grades = [], []
        for j in range(i + 1, len(cells)):
            role = nbgrader_role(cells[j])
            if role is None:
                break
            (solutions if role == "solution" else grades).append(j)
        found.append(Exercise(number, level, title, i, tuple(solutions), tuple(grades)))
    return found


def first_exercise(notebook) -> int:
    """The position of the first exercise's heading cell (the length of the notebook when it has none)."""
    found = exercises(notebook)
    return found[0].heading if found else len(notebook.cells)


def layout(notebooks: list[Path], course: Path) -> None:
    """Make ``course`` an nbgrader course folder with each notebook as its own assignment:
    ``source/<name>/<name>.ipynb``, and an ``nbgrader_config.py`` that names the folder."""
    source = course / "source"
    if source.exists():
        shutil.rmtree(source)
    for path in notebooks:
        (source / path.stem).mkdir(parents=True)
        shutil.copy2(path, source / path.stem / path.name)
    (course / "nbgrader_config.py").write_text(
        "# Written by python -m unlearnlib.student: this folder is the course's nbgrader course.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
    )


def release(notebooks: list[Path], course: Path, out: Path) -> list[Path]:
    """The students' copies of ``notebooks`` in ``out``, made by ``nbgrader generate_assignment`` in ``course``.

    Raises with nbgrader's own last lines when it refuses a notebook (a solution region outside a
    solution cell, two cells with one grade id).
    """
    layout(notebooks, course)
    # nbgrader runs the gradebook's migrations with the `alembic` script installed beside it.
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "*", "--force", "--log-level=WARN"],
        capture_output=True,
        text=True,
        env=env,
        cwd=course,
    )
    copies = [course / "release" / path.stem / path.name for path in notebooks]
    if done.returncode != 0 or not all(copy.exists() for copy in copies):
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-12:])
        raise RuntimeError(f"nbgrader generate_assignment failed in {course}:\n{tail}")
    out.mkdir(parents=True, exist_ok=True)
    for copy in copies:
        shutil.copy2(copy, out / copy.name)
    return [out / copy.name for copy in copies]


def leftovers(path: Path) -> list[str]:
    """What a student's copy still holds of the solutions: any nbgrader marker, by cell."""
    notebook = nbformat.read(path, as_version=4)
    return [
        f"cell {i}: {mark}" for i, cell in enumerate(notebook.cells) for mark in SOLUTION_MARKS if mark in cell.source
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m unlearnlib.student",
        description="Write the students' copies of the notebooks, without solutions or hidden tests (nbgrader).",
    )
    parser.add_argument(
        "--notebooks", type=Path, default=config.root_dir() / "notebooks", help="the instructor's notebooks"
    )
    parser.add_argument("--out", type=Path, default=config.build_dir() / "student", help="where the copies go")
    parser.add_argument(
        "--course", type=Path, default=config.build_dir() / "nbgrader", help="the nbgrader course folder it leaves"
    )
    args = parser.parse_args(argv)
    notebooks = numbered(args.notebooks)
    if not notebooks:
        parser.error(f"no numbered notebooks in {args.notebooks}")
    released = release(notebooks, args.course.resolve(), args.out.resolve())
    for path in released:
        count = len(exercises(nbformat.read(path, as_version=4)))
        print(f"{path}: {count} exercises")
    print(f"{len(released)} student notebooks in {args.out}; the nbgrader course (for grading) in {args.course}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
