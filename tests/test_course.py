import json

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from unlearnlib import config, course
from unlearnlib.session import choose_dataset


def _notebook(path, *sources):
    notebook = new_notebook(cells=[new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_record_does_nothing_outside_a_course_run(tmp_path):
    course.record("01_x", value=1)
    assert not list(tmp_path.rglob("*.json"))


def test_record_merges_into_the_results_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    monkeypatch.setenv(course.RESULTS_ENV, str(path))
    course.record("01_x", a=1)
    course.record("01_x", b=0.5)
    course.record("02_y", c="text")
    assert json.loads(path.read_text()) == {"01_x": {"a": 1, "b": 0.5}, "02_y": {"c": "text"}}


def test_the_course_runs_every_notebook_in_order_and_summarises(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(
        notebooks / "01_first.ipynb",
        "import os\nfrom unlearnlib.course import record",
        "record('01_first', profile=os.environ['UNLEARN_PROFILE'], answer=42)",
    )
    _notebook(notebooks / "02_second.ipynb", "from unlearnlib.course import record\nrecord('02_second', ratio=0.125)")
    _notebook(notebooks / "helper.ipynb", "raise RuntimeError('not a course notebook')")
    summary = course.run(notebooks, tmp_path / "build", profile="smoke")
    text = summary.read_text()
    dataset, _ = choose_dataset(config.PROFILES["smoke"])
    assert "profile **smoke**" in text and f"dataset **{dataset}**" in text
    assert "| answer | 42 |" in text and "| profile | smoke |" in text and "| ratio | 0.125 |" in text
    assert text.index("## 01_first") < text.index("## 02_second") and "helper" not in text
    executed = nbformat.read(tmp_path / "build" / "notebooks" / "01_first.ipynb", as_version=4)
    assert executed.cells[1].execution_count == 2
