"""The repository's pytest plugin: notebooks (nbval) and tests alike, whichever folder pytest is given."""

from __future__ import annotations

from pathlib import Path

import pytest

README = Path(__file__).resolve().parent / "README.md"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """A notebook's cells run top to bottom, whatever order pytest-randomly gave the tests.

    Random order (pytest-randomly shuffles the tests on every run) shows that no test depends on another;
    a notebook's cells do, on purpose. They go back into their order, in the places the shuffle gave them.
    """
    places = [i for i, item in enumerate(items) if item.nodeid.split("::")[0].endswith(".ipynb")]
    cells = sorted((items[i] for i in places), key=notebook_order)
    for i, cell in zip(places, cells):
        items[i] = cell
    items[:] = longest_first(items)


def longest_first(items: list) -> list:
    """The tests grouped by file, the slowest files first: the notebooks, by the README's smoke run times,
    longest first, then the test modules, those with the most tests first.

    Under ``--dist loadscope --no-loadscope-reorder`` (``make test``) each worker takes the next file when it
    is done with one, so a long notebook that came last would keep one core busy after the other has finished.
    The order within a file is kept (a notebook's cells; the shuffle of a module's tests).
    """
    from unlearnlib import readme

    try:
        times = readme.table_run_times(README.read_text())
    except (OSError, ValueError):
        times = {}
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)

    def cost(path: str) -> tuple[int, float]:
        if path.endswith(".ipynb"):
            measured = readme.parse_seconds(times.get(Path(path).name[:2], {}).get("smoke", ""))
            return 0, -(measured if measured is not None else 60.0)  # an unmeasured notebook: about a minute
        return 1, -len(files[path])

    return [item for path in sorted(files, key=cost) for item in files[path]]


def notebook_order(item) -> tuple[str, int]:
    """A notebook cell's test (nbval's ``path::Cell N``) as (notebook, cell number)."""
    path, _, cell = item.nodeid.partition("::")
    return path, int(cell.rsplit(" ", 1)[-1])
