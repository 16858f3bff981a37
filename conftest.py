"""The repository's pytest plugin: notebooks (nbval) and tests alike, whichever folder pytest is given."""

from __future__ import annotations

import pytest


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


def notebook_order(item) -> tuple[str, int]:
    """A notebook cell's test (nbval's ``path::Cell N``) as (notebook, cell number)."""
    path, _, cell = item.nodeid.partition("::")
    return path, int(cell.rsplit(" ", 1)[-1])
