"""Measured figures into the repository: run times into the README, every result into RESULTS.md.

    python -m unlearnlib.readme build/results.json [--readme-file README.md]      # make readme

The README's notebook table lies between two marker comments. Its last columns
are named after the profiles (``smoke``, ``cpu``, ``gpu``); the run-time cell
of each notebook's row, in the column of the results' profile, and that
profile's line under the table (date, machine, dataset, command) are rewritten.
Every other cell, and everything outside the markers, is left as written.
Each notebook's "**Run time**" paragraph, in its first cell, is then rewritten
from its row of the table, so the notebook and the README say the same.

RESULTS.md holds one section per profile, between marker comments of its own:
the run (date, machine, command), the notebooks' outcomes and the figures they
recorded, and the leaderboard that notebook 09 saved beside the results. A run
rewrites its profile's section only; nothing in RESULTS.md is written by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import textwrap
from pathlib import Path

BEGIN = "<!-- run-times: begin"
END = "<!-- run-times: end -->"
NOT_MEASURED = "not measured"
RUN_TIME = "**Run time**"


def format_seconds(seconds: float) -> str:
    """A run time in words: "48 s", "7 min 12 s"."""
    seconds = round(seconds)
    if seconds < 100:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest:02d} s"


def _cells(row: str) -> list[str]:
    """The cells of a Markdown table row (pipes escaped as ``\\|`` stay inside their cell)."""
    inner = row.strip()
    if not (inner.startswith("|") and inner.endswith("|")):
        raise ValueError(f"not a table row: {row!r}")
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", inner[1:-1])]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _run_time(entry: dict) -> str:
    text = format_seconds(entry["seconds"])
    if entry.get("status") == "failed":
        text += f" (failed, cell {entry['cell']})" if entry.get("cell") else " (failed)"
    return text


def _provenance(results: dict, names: list[str], all_rows: int) -> str:
    from .course import describe_machine

    line = (
        f"- **{results['profile']}**: measured {results['date'][:10]} on a {describe_machine(results['machine'])}, "
        f"dataset {results['dataset']}, with `{results['command']}`"
    )
    if results.get("commit"):
        line += f" at commit {results['commit'][:7]}"
    if len(names) < all_rows:
        line += f" (notebooks {', '.join(n[:2] for n in names)}; the others earlier)"
    failed = [n[:2] for n in names if results["notebooks"][n].get("status") == "failed"]
    if failed:
        line += f"; failed: {', '.join(failed)}"
    return line + "."


def update_run_times(text: str, results: dict) -> str:
    """``text`` (a README) with the run times of ``results`` (a course run's results.json) written in."""
    try:
        start = text.index(BEGIN)
        end = text.index(END, start)
    except ValueError:
        raise ValueError(f"the README has no run-time markers ({BEGIN} ... -->, {END})") from None
    head, block, tail = text[:start], text[start:end], text[end:]
    lines = block.split("\n")
    table = [i for i, line in enumerate(lines) if line.lstrip().startswith("|")]
    if len(table) < 2:
        raise ValueError("the README has no table between its run-time markers")
    profile = results["profile"]
    header = _cells(lines[table[0]])
    if profile not in header:
        header.append(profile)
        lines[table[0]] = _row(header)
        lines[table[1]] = _row(_cells(lines[table[1]]) + ["---"])
        for i in table[2:]:
            lines[i] = _row(_cells(lines[i]) + [NOT_MEASURED])
    column = header.index(profile)
    rows = {_cells(lines[i])[0]: i for i in table[2:]}
    names = list(results["notebooks"])
    for name in names:
        number = name[:2]
        if number not in rows:
            raise ValueError(f"notebook {name} has no row in the README's table: add one by hand, then run this again")
        if f"{name}.ipynb" not in lines[rows[number]]:
            raise ValueError(f"the README's row {number} does not link notebook {name}.ipynb: is the table outdated?")
        cells = _cells(lines[rows[number]])
        if len(cells) != len(header):
            raise ValueError(f"the README's row for {number} has {len(cells)} cells, its header {len(header)}")
        cells[column] = _run_time(results["notebooks"][name])
        lines[rows[number]] = _row(cells)
    provenance = _provenance(results, names, len(rows))
    marker = f"- **{profile}**:"
    found = [i for i, line in enumerate(lines) if line.startswith(marker)]
    if found:
        lines[found[0]] = provenance
    else:
        last = max([table[-1]] + [i for i, line in enumerate(lines) if line.startswith("- **")])
        lines[last + 1 : last + 1] = ["", provenance] if last == table[-1] else [provenance]
    return head + "\n".join(lines) + tail


def table_run_times(text: str) -> dict[str, dict[str, str]]:
    """The run times in a README's notebook table: notebook number -> {profile: run time}."""
    from .profiles import PROFILES

    block = text[text.index(BEGIN) : text.index(END)]
    rows = [_cells(line) for line in block.split("\n") if line.lstrip().startswith("|")]
    header = rows[0]
    columns = [i for i, name in enumerate(header) if name in PROFILES]
    return {cells[0]: {header[i]: cells[i] for i in columns} for cells in rows[2:]}


def run_time_paragraph(times: dict[str, str]) -> str:
    """A notebook's run-time paragraph, from its row of the README's table."""
    listed = "; ".join(f"{profile} profile {time}" for profile, time in times.items())
    text = (
        f"{RUN_TIME}, measured by `make course` with every notebook after the ones before it, whose models it "
        f"reuses (the machines are named in the README): {listed}."
    )
    return textwrap.fill(text, width=110, break_long_words=False, break_on_hyphens=False)


def with_run_time(text: str, times: dict[str, str]) -> str:
    """``text`` (a notebook's first cell) with its one paragraph that starts with **Run time** rewritten."""
    paragraphs = text.split("\n\n")
    found = [i for i, paragraph in enumerate(paragraphs) if paragraph.startswith(RUN_TIME)]
    if len(found) != 1:
        raise ValueError(f"{len(found)} paragraphs start with {RUN_TIME}, not one")
    paragraphs[found[0]] = run_time_paragraph(times)
    return "\n\n".join(paragraphs)


def run_time_cell(notebook):
    """The markdown cell of ``notebook``'s opening (the cells before its first code cell) with the run time."""
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            break
        if RUN_TIME in cell.source:
            return cell
    raise ValueError(f"no {RUN_TIME} paragraph in the markdown cells before the first code cell")


def update_notebook_run_times(folder: Path, readme_text: str) -> list[str]:
    """Rewrite the run-time paragraph of every notebook in ``folder`` from the README's table; return the changed."""
    import nbformat

    times = table_run_times(readme_text)
    changed = []
    for path in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb")):
        if path.name[:2] not in times:
            raise ValueError(f"notebook {path.name} has no row in the README's table: add one by hand")
        notebook = nbformat.read(path, as_version=4)
        try:
            cell = run_time_cell(notebook)
            before = cell.source
            cell.source = with_run_time(before, times[path.name[:2]])
        except ValueError as err:
            raise ValueError(f"{path.name}: {err}") from None
        if cell.source != before:
            nbformat.write(notebook, path)
            changed.append(path.stem)
    return changed


RESULTS_HEADER = """# Measured results

Generated from course runs by `python -m unlearnlib.readme build/results.json` (`make readme`):
one section per profile, each with the run it comes from; from mutation testing (`make mutation`);
and from the throughput benchmark (`make bench`). Do not edit by hand.
"""


def results_section(results: dict, leaderboard: str | None = None) -> str:
    """A profile's section of RESULTS.md: the course run's summary, then the leaderboard of that run (if any)."""
    from .course import summary

    lines = summary(results).split("\n")
    lines[0] = f"## The {results['profile']} profile"
    lines = [f"#{line}" if line.startswith("## ") and i else line for i, line in enumerate(lines)]
    text = "\n".join(lines).rstrip() + "\n"
    if leaderboard:
        text += "\n### Leaderboard (notebook 09)\n\n" + leaderboard.strip() + "\n"
    return text


def write_section(text: str, name: str, body: str) -> str:
    """``text`` (RESULTS.md, empty for a new one) with the section ``name`` set to ``body``.

    A section lies between ``<!-- NAME: begin -->`` and ``<!-- NAME: end -->``; one that is not
    there yet is appended (a new file starts with :data:`RESULTS_HEADER`).  Every command that
    measures something for RESULTS.md writes its figures this way, so none are copied by hand.
    """
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    block = f"{begin}\n{body}{end}"
    if begin in text and end in text:
        return text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    return (text.rstrip() + "\n\n" if text.strip() else RESULTS_HEADER + "\n") + block + "\n"


def update_results(text: str, results: dict, leaderboard: str | None = None) -> str:
    """``text`` (RESULTS.md, empty for a new one) with the section of ``results``' profile written in."""
    return write_section(text, f"results {results['profile']}", results_section(results, leaderboard))


def _write(path: Path, text: str) -> None:
    temporary = Path(path).with_name(Path(path).name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def update_readme(readme: Path, results_path: Path) -> str:
    """Write the run times of ``results_path`` into ``readme`` and into the notebooks beside it (their first
    cells), and all its results into RESULTS.md beside it.

    Returns what was done, in words.
    """
    try:
        results = json.loads(Path(results_path).read_text())
        profile, notebooks = results["profile"], results["notebooks"]
    except FileNotFoundError:
        raise ValueError(
            f"{results_path} does not exist: run `make course` (or python -m unlearnlib.course) first"
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{results_path} is not a course run's results.json ({err})") from None
    if results.get("jobs", 1) > 1:
        raise ValueError(
            f"{results_path} ran {results['jobs']} notebooks at once: its run times are not one notebook's after "
            "another, which the README reports; run make course (one at a time) for them"
        )
    text = Path(readme).read_text()
    updated = update_run_times(text, results)
    _write(readme, updated)
    changed = "updated" if updated != text else "already up to date"
    folder = Path(readme).with_name("notebooks")
    notebooks_changed = update_notebook_run_times(folder, updated) if folder.is_dir() else []
    leaderboard_path = Path(results_path).with_name("leaderboard.md")
    leaderboard = leaderboard_path.read_text() if leaderboard_path.is_file() else None
    results_md = Path(readme).with_name("RESULTS.md")
    _write(results_md, update_results(results_md.read_text() if results_md.is_file() else "", results, leaderboard))
    return (
        f"{readme}: run times of {len(notebooks)} notebooks under the {profile} profile {changed}; "
        f"run-time paragraphs of {len(notebooks_changed)} notebooks rewritten; "
        f"{results_md}: the {profile} section rewritten"
    )


def main(argv: list[str] | None = None) -> int:
    """The command line: write a course run's results into the README, the notebooks and RESULTS.md."""
    from . import config

    parser = argparse.ArgumentParser(
        prog="python -m unlearnlib.readme",
        description="Write the run times of a course run (build/results.json) into the README's notebook table and "
        "the notebooks' first cells, and all its results into RESULTS.md.",
    )
    parser.add_argument("results", type=Path, metavar="RESULTS_JSON", help="a course run's results.json")
    parser.add_argument(
        "--readme-file", type=Path, default=config.root_dir() / "README.md", help="default: %(default)s"
    )
    args = parser.parse_args(argv)
    try:
        message = update_readme(args.readme_file, args.results)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    print(message)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
