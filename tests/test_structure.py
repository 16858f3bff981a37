"""The package's shape: imports run one way (no circle, not even one for type hints) and every module stays small."""

from __future__ import annotations

import ast
from pathlib import Path

import unlearnlib

PACKAGE = Path(unlearnlib.__file__).parent
LONGEST = 500
"""Lines a module may have: beyond that it holds more than one topic."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """The package's own modules that ``path`` imports, anywhere in it (inside functions and type-hint blocks too)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {m for m in imported(path) if m in modules and m != name} for name, path in modules.items()}


def cycle_in(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``edges`` (a path that returns to its start), or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_cycle_finder_finds_a_circle_and_only_a_circle():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_circle():
    edges = graph()
    assert "unlearnlib.imagedata" in edges["unlearnlib.datasets"], "the graph must see the package's imports"
    # Importing a sibling through the package (``from .. import validate``) is not an import of the package's __init__.
    own = {name: {m for m in targets if not name.startswith(m + ".")} for name, targets in edges.items()}
    found = cycle_in(own)
    assert found is None, "import circle: " + " -> ".join(found)


def test_no_module_is_longer_than_the_limit():
    lengths = {module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    long = {name: n for name, n in lengths.items() if n > LONGEST}
    assert not long, f"modules over {LONGEST} lines: {long}"


def test_the_package_re_exports_its_public_names_from_their_modules_on_first_use():
    import importlib
    import subprocess
    import sys

    for name, module in unlearnlib.EXPORTS.items():
        assert getattr(unlearnlib, name) is getattr(importlib.import_module(f"unlearnlib.{module}"), name), name
    assert set(unlearnlib.EXPORTS) <= set(dir(unlearnlib)) and unlearnlib.__all__ == sorted(unlearnlib.EXPORTS)
    try:
        unlearnlib.no_such_name  # noqa: B018
    except AttributeError as error:
        assert str(error) == "module 'unlearnlib' has no attribute 'no_such_name'"
    else:
        raise AssertionError("an unknown name must raise AttributeError")
    alone = "import sys, unlearnlib; print(sorted(m for m in ('torch', 'unlearnlib.trial') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", alone], capture_output=True, text=True).stdout == "[]\n"


def test_every_notebook_imports_the_course_code_from_a_few_public_places():
    import json

    for path in sorted((PACKAGE.parent / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        lines = [line for cell in cells if cell["cell_type"] == "code" for line in "".join(cell["source"]).splitlines()]
        statements = [line for line in lines if line.startswith(("from unlearnlib", "import unlearnlib"))]
        assert 1 <= len(statements) <= 3, f"{path.name} imports the course code in {len(statements)} statements"
