"""Measured run times into the README: each notebook's time under a profile, from a course run's results.

    python -m unlearnlib.course --readme build/results.json

The README's notebook table lies between two marker comments. Its last columns
are named after the profiles (``smoke``, ``cpu``, ``gpu``); the run-time cell
of each notebook's row, in the column of the results' profile, and that
profile's line under the table (date, machine, dataset, command) are rewritten.
Every other cell, and everything outside the markers, is left as written.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

BEGIN = "<!-- run-times: begin"
END = "<!-- run-times: end -->"
NOT_MEASURED = "not measured"


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


def update_readme(readme: Path, results_path: Path) -> str:
    """Write the run times of ``results_path`` into ``readme``; return what was done, in words."""
    try:
        results = json.loads(Path(results_path).read_text())
        profile, notebooks = results["profile"], results["notebooks"]
    except FileNotFoundError:
        raise ValueError(
            f"{results_path} does not exist: run `make course` (or python -m unlearnlib.course) first"
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{results_path} is not a course run's results.json ({err})") from None
    text = Path(readme).read_text()
    updated = update_run_times(text, results)
    temporary = Path(readme).with_name(Path(readme).name + ".tmp")
    temporary.write_text(updated)
    os.replace(temporary, readme)
    changed = "updated" if updated != text else "already up to date"
    return f"{readme}: run times of {len(notebooks)} notebooks under the {profile} profile {changed}"
