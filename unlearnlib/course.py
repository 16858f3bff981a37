"""The course as a whole: run every notebook and collect their headline results.

    python -m unlearnlib.course [--profile cpu] [--out build]

executes ``notebooks/NN_*.ipynb`` in order, on one profile and dataset chosen
once for all of them, writes the executed notebooks to ``build/notebooks/``
and a summary to ``build/results.md`` (and ``results.json``).  Notebooks add
their figures to the summary with :func:`record`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from . import config

RESULTS_ENV = "UNLEARN_RESULTS"


def record(notebook: str, **values: float | int | str) -> None:
    """Add ``values`` to ``notebook``'s entry in the results being collected, if a course run collects them.

    ``make course`` sets ``UNLEARN_RESULTS`` to the file that gathers them;
    without it (a notebook run by hand) this does nothing.
    """
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    path = Path(path)
    results = json.loads(path.read_text()) if path.exists() else {}
    results.setdefault(notebook, {}).update(values)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(results, indent=2))
    os.replace(temporary, path)


def notebooks(directory: Path) -> list[Path]:
    """The course's notebooks, in teaching order."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))


def _format(value: float | int | str) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary(results: dict, timings: dict[str, float], header: str) -> str:
    """The results as Markdown: one section per notebook, its run time and its figures."""
    lines = ["# Course results", "", header, ""]
    for name, seconds in timings.items():
        lines += [f"## {name}", "", f"run time: {seconds:.0f} s", ""]
        values = results.get(name, {})
        if values:
            lines += ["| result | value |", "|---|---|"]
            lines += [f"| {key} | {_format(value)} |" for key, value in values.items()]
            lines.append("")
    return "\n".join(lines)


def run(notebook_dir: Path, out: Path, profile: str | None = None, timeout: int = 7200) -> Path:
    """Execute every notebook of ``notebook_dir`` under one profile; return the summary's path."""
    import nbformat
    from nbclient import NotebookClient

    from .session import choose_dataset

    chosen, why_profile = config.choose_profile(profile)
    dataset, why_dataset = choose_dataset(chosen)
    header = f"profile **{chosen.name}** ({why_profile}); dataset **{dataset}** ({why_dataset})"
    print(header.replace("**", ""), flush=True)

    executed = out / "notebooks"
    executed.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results_path.unlink(missing_ok=True)
    env = os.environ | {
        config.PROFILE_ENV: chosen.name,
        config.DATASET_ENV: dataset,
        RESULTS_ENV: str(results_path.resolve()),
    }
    timings = {}
    for path in notebooks(notebook_dir):
        print(f"running {path.name} ...", flush=True)
        notebook = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(notebook_dir)}}
        ).execute(env=env)
        timings[path.stem] = time.perf_counter() - start
        nbformat.write(notebook, executed / path.name)
        print(f"  done in {timings[path.stem]:.0f} s -> {executed / path.name}", flush=True)
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    summary_path = out / "results.md"
    summary_path.write_text(summary(results, timings, header))
    return summary_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m unlearnlib.course", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="default: UNLEARN_PROFILE, else gpu with CUDA, else cpu")
    parser.add_argument("--notebooks", type=Path, default=config.root_dir() / "notebooks")
    parser.add_argument("--out", type=Path, default=config.build_dir())
    args = parser.parse_args(argv)
    summary_path = run(args.notebooks, args.out, args.profile)
    print(summary_path.read_text())


if __name__ == "__main__":
    main()
