"""Colab badges and set-up blocks, generated from the one repository URL and ref in ``pyproject.toml``.

    python -m unlearnlib.colab --check    # name every badge or set-up block that disagrees (exit status 1)
    python -m unlearnlib.colab --write    # rewrite them: README.md and every notebook (`make colab`)

The URL is ``[project.urls] Repository``; the ref students get (a branch, or a
release tag for a term) is ``[tool.unlearnlib] ref``. In each notebook only the
badge line of the first (markdown) cell and the block between the set-up
markers at the top of the first code cell are written; in the README, only the
Colab badges' links.
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

BEGIN = "# --- Colab set-up"
END = "# --- end of Colab set-up ---"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
_BADGE = re.compile(r"\[!\[Open in Colab\]\([^)]*\)\]\((https://colab\.research\.google\.com/[^)]*)\)")
_LEGACY = re.compile(r"\A# Set-up\. On Colab: fetch the course code\..*?sys\.path\.insert\(0, checkout\)\n+", re.DOTALL)
"""The set-up lines the notebooks had before this module wrote them (a clone of an unpinned URL)."""


def checkout_root() -> Path:
    """The checkout this package lies in (where pyproject.toml, README.md and notebooks/ are)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise ValueError(f"{root} holds no pyproject.toml: run this in a checkout of the course, not an installed copy")
    return root


@dataclass(frozen=True)
class Source:
    """Where students get the course code from: a git repository URL and a ref (branch or tag)."""

    url: str
    ref: str

    @property
    def pip_spec(self) -> str:
        """What ``pip install`` is given: ``git+URL@REF``."""
        return f"git+{self.url}@{self.ref}"

    @property
    def name(self) -> str:
        """The repository's name (the last part of its URL)."""
        return self.url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]

    def github_path(self) -> str:
        """``owner/name`` of a GitHub URL; Colab opens notebooks from GitHub only."""
        parts = urllib.parse.urlsplit(self.url)
        path = parts.path.strip("/").removesuffix(".git").split("/")
        if parts.netloc != "github.com" or len(path) != 2 or not all(path):
            raise ValueError(f"Colab badges need a https://github.com/OWNER/NAME repository URL, not {self.url!r}")
        return "/".join(path)

    def badge_url(self, notebook: str) -> str:
        """The link that opens ``notebooks/<notebook>`` at the ref in Colab."""
        return f"https://colab.research.google.com/github/{self.github_path()}/blob/{self.ref}/notebooks/{notebook}"

    def badge(self, notebook: str) -> str:
        """The Markdown badge for ``notebooks/<notebook>``."""
        return f"[![Open in Colab]({BADGE_IMAGE})]({self.badge_url(notebook)})"


def read_source(pyproject: Path | None = None) -> Source:
    """The repository URL and ref declared in ``pyproject.toml``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    pyproject = pyproject or checkout_root() / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())
    url = declared.get("project", {}).get("urls", {}).get("Repository")
    ref = declared.get("tool", {}).get("unlearnlib", {}).get("ref")
    if not url or not ref:
        raise ValueError(f"{pyproject} must declare [project.urls] Repository and [tool.unlearnlib] ref")
    for what, value, bad in (("Repository URL", url, r"[\s\"'\\]"), ("ref", ref, r"[\s\"'\\@]")):
        if not isinstance(value, str) or re.search(bad, value):
            raise ValueError(f"{pyproject}: the {what} {value!r} must be a string without spaces or quotes")
    return Source(url, ref)


def setup_block(source: Source) -> str:
    """The first lines of every notebook's first code cell: on Colab, install the course code; elsewhere nothing."""
    zip_name = f"{source.name}-{source.ref.replace('/', '-')}.zip"
    drive = (
        '# from google.colab import drive; drive.mount("/content/drive"); '
        f'os.environ["UNLEARN_ROOT"] = "/content/drive/MyDrive/{source.name}"'
    )
    return f'''{BEGIN} (written by `make colab` from pyproject.toml; outside Colab it does nothing) ---
import sys

if "google.colab" in sys.modules:
    import importlib.util
    import os
    import subprocess

    # To keep the checkpoint cache (and datasets) on Google Drive across Colab sessions, uncomment this line:
    {drive}
    if importlib.util.find_spec("unlearnlib") is None:
        print("Installing the course code from {source.url} at {source.ref} (Colab's own torch is kept) ...")
        _pip = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "{source.pip_spec}"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=os.environ | {{"GIT_TERMINAL_PROMPT": "0"}},  # a missing repository fails, never asks for a password
        )
        importlib.invalidate_caches()
        if _pip.returncode != 0 or importlib.util.find_spec("unlearnlib") is None:
            print("\\n".join(_pip.stderr.strip().splitlines()[-6:]))
            raise SystemExit(
                "Could not install the course code from {source.url} at {source.ref} "
                "(pip's last lines are above). What to do:\\n"
                "- check that this repository URL and ref exist and that the runtime is online; they are set in "
                "the course's pyproject.toml ([project.urls] Repository, [tool.unlearnlib] ref), or fix the "
                "pip line of this cell;\\n"
                "- or download the repository as a zip, upload it in Colab's Files panel, run "
                "!pip install /content/NAME.zip (its name, e.g. {zip_name}) and run this cell again."
            )
    import torch

    if not torch.cuda.is_available():
        print(
            "This Colab runtime has no GPU: the notebook will run on the cpu profile, slowly. For a GPU: "
            "Runtime > Change runtime type > T4 GPU > Save, then run the notebook again from the top."
        )
{END}'''


def _badge_problems(text: str, expected: dict[str, str], where: str) -> tuple[str, list[str]]:
    """``text`` with every Colab badge's link set to its notebook's expected one, and what disagreed."""
    problems = []

    def fix(match: re.Match) -> str:
        notebook = match.group(1).rsplit("/", 1)[-1]
        if notebook not in expected:
            problems.append(f"{where}: a Colab badge links {notebook}, which is not a notebook of the course")
            return match.group(0)
        if match.group(0) != expected[notebook]:
            problems.append(f"{where}: the Colab badge of {notebook} links {match.group(1)}")
        return expected[notebook]

    return _BADGE.sub(fix, text), problems


def sync_readme(text: str, notebooks: list[str], source: Source) -> tuple[str, list[str]]:
    """The README with its Colab badges made to agree with ``source``, and what disagreed."""
    expected = {name: source.badge(name) for name in notebooks}
    text, problems = _badge_problems(text, expected, "README.md")
    for name, badge in expected.items():
        if badge not in text:
            problems.append(f"README.md: no Colab badge for {name} (add one to its row by hand)")
    return text, problems


def sync_notebook(notebook, name: str, source: Source) -> list[str]:
    """Make ``notebook``'s badge and set-up block agree with ``source`` (in place); return what disagreed."""
    problems = []
    first = notebook.cells[0] if notebook.cells else None
    if first is None or first.cell_type != "markdown":
        return [f"{name}: its first cell is not a markdown cell (title and badge)"]
    badge = source.badge(name)
    fixed, found = _badge_problems(first.source, {name: badge}, name)
    problems += found
    if badge not in fixed:
        problems.append(f"{name}: no Colab badge in the first cell")
        lines = fixed.split("\n")
        lines[1:1] = ["", badge]
        fixed = "\n".join(lines)
    first.source = fixed

    code = next((c for c in notebook.cells if c.cell_type == "code"), None)
    if code is None:
        return [*problems, f"{name}: no code cell for the set-up block"]
    block = setup_block(source)
    if not code.source.startswith(block + "\n") and code.source != block:
        problems.append(f"{name}: the Colab set-up block of the first code cell differs from pyproject.toml's")
        rest = _LEGACY.sub("", code.source)
        if rest.startswith(BEGIN):
            end = rest.find(END)
            if end < 0:
                return [*problems, f"{name}: the set-up block's end marker ({END}) is missing; restore it by hand"]
            rest = rest[end + len(END) :].lstrip("\n")
        code.source = f"{block}\n\n{rest}" if rest else block
    return problems


def sync(write: bool, root: Path | None = None) -> list[str]:
    """Check (and with ``write``, rewrite) every badge and set-up block; return what disagreed."""
    import nbformat

    root = root or checkout_root()
    source = read_source(root / "pyproject.toml")
    paths = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    problems = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        found = sync_notebook(notebook, path.name, source)
        problems += found
        if write and found:
            for cell in notebook.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            nbformat.write(notebook, path)
    readme = root / "README.md"
    text, found = sync_readme(readme.read_text(), [p.name for p in paths], source)
    problems += found
    if write and found:
        readme.write_text(text)
    return problems


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m unlearnlib.colab", description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="name what disagrees with pyproject.toml (exit 1 if any)")
    action.add_argument("--write", action="store_true", help="rewrite the badges and set-up blocks that disagree")
    args = parser.parse_args(argv)
    try:
        problems = sync(write=args.write)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    source = read_source()
    for problem in problems:
        print(("fixed: " if args.write else "") + problem)
    if not problems:
        print(f"every Colab badge and set-up block points at {source.url} at {source.ref}")
    return 1 if problems and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
