"""The course as a whole: run every notebook, and say which passed, how long each took and what failed.

    python -m unlearnlib.course [--profile cpu] [--dataset digits] [--only 03,05] [--out build]

It executes ``notebooks/NN_*.ipynb`` in order, on one profile and
dataset chosen once for all of them. A notebook that fails does not stop the
run: every notebook is executed and written (as far as it got) to
``build/notebooks/``, and the run ends with a table of each notebook's status,
run time and, for a failure, the failing claim and its cell. The table and the
notebooks' own figures (added with :func:`record`) go to ``build/results.md``;
``build/results.json`` keeps them with the profile, dataset, date and machine.
The exit status is 1 when a notebook failed. ``python -m unlearnlib.readme``
then writes such a results file into the README, the notebooks and RESULTS.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import cli, config, profiles

RESULTS_ENV = "UNLEARN_RESULTS"
PASSED, FAILED = "passed", "failed"


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


def select(paths: list[Path], only: str | None) -> list[Path]:
    """The notebooks named by ``only`` ("03,05", "3, 5" or "03_measuring_forgetting"), all without it.

    An entry that names no notebook, or more than one, is an error that lists the valid numbers.
    """
    if only is None:
        return paths
    chosen = []
    for entry in (e.strip() for e in only.split(",")):
        if not entry:
            continue
        stem = entry.removesuffix(".ipynb")
        matches = [p for p in paths if p.stem == stem or (stem.isdigit() and int(p.stem[:2]) == int(stem))]
        if len(matches) != 1:
            numbers = ", ".join(p.stem[:2] for p in paths)
            raise ValueError(
                f"--only: {entry!r} names {'no' if not matches else 'more than one'} notebook; choose among {numbers}"
            )
        if matches[0] not in chosen:
            chosen.append(matches[0])
    if not chosen:
        raise ValueError("--only names no notebook")
    return sorted(chosen)


@dataclass
class Outcome:
    """How one notebook's run went."""

    notebook: str
    status: str
    seconds: float
    claim: str | None = None
    """For a failure: the assertion's message, else the error's last line."""
    cell: int | None = None
    """For a failure: the failing cell's position in the notebook, counting every cell from 1."""
    execution_count: int | None = None
    """For a failure: the failing cell's ``In [n]`` number in the executed notebook."""


def machine() -> dict:
    """The machine a run is measured on: CPU cores, GPU, platform and versions."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu_cores": cores,
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def describe_machine(info: dict) -> str:
    """A machine in words, e.g. "2-core CPU, no GPU"."""
    return f"{info['cpu_cores']}-core CPU, " + (info["gpu"] or "no GPU")


def _commit() -> str | None:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.stdout.strip() or None


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _failure(notebook, error: BaseException, timeout: int) -> tuple[str, int | None, int | None]:
    """The failing claim and the failing cell of a partially executed notebook."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    for position, cell in enumerate(notebook.cells, start=1):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                ename, evalue = output.get("ename", "Error"), output.get("evalue", "")
                claim = evalue if ename == "AssertionError" and evalue else f"{ename}: {evalue}".rstrip(": ")
                return _one_line(claim), position, cell.get("execution_count")
    started = [(i, c) for i, c in enumerate(notebook.cells, start=1) if c.cell_type == "code" and c.execution_count]
    position, count = (started[-1][0], started[-1][1].execution_count) if started else (None, None)
    if isinstance(error, CellTimeoutError):
        return f"timed out: a cell ran longer than {timeout} s", position, count
    if isinstance(error, DeadKernelError):
        return "the kernel died (out of memory?)", position, count
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return _one_line(f"{type(error).__name__}: {lines[-1] if lines else ''}".rstrip(": ")), position, count


def execute(path: Path, executed: Path, env: dict[str, str], timeout: int) -> Outcome:
    """Run one notebook top to bottom; write it, as far as it got, to ``executed``; never raise on its errors."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    status, claim, cell, count = PASSED, None, None, None
    with tempfile.TemporaryDirectory(prefix="unlearn-kernel-") as sockets:
        client = NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            config=_local_kernel(Path(sockets)),
        )
        try:
            client.execute(env=env)
        except Exception as error:  # any failure of one notebook is reported, and the run goes on
            status = FAILED
            claim, cell, count = _failure(notebook, error, timeout)
        finally:
            seconds = time.perf_counter() - start
            nbformat.write(notebook, executed / path.name)
    return Outcome(path.stem, status, round(seconds, 1), claim, cell, count)


def _local_kernel(sockets: Path):
    """Kernel settings: on Unix, talk to the kernel over Unix sockets in ``sockets`` rather than over TCP, so the
    kernel has no network port and prints no warning about one; elsewhere, the default (TCP on localhost)."""
    from traitlets.config import Config

    if os.name != "posix":
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "kernel")}})


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(outcomes: list[Outcome]) -> str:
    """The outcomes as a Markdown table: notebook, status, run time, failing claim and cell."""
    lines = ["| notebook | status | time | failing claim | cell |", "|---|---|---|---|---|"]
    for o in outcomes:
        where = f"{o.cell} (In [{o.execution_count}])" if o.cell and o.execution_count else str(o.cell or "")
        lines.append(f"| {o.notebook} | {o.status} | {o.seconds:.0f} s | {_cell(o.claim or '')} | {where} |")
    return "\n".join(lines)


def outcomes_of(results: dict) -> list[Outcome]:
    """The outcomes stored in a results file (see :func:`run`)."""
    fields = set(Outcome.__dataclass_fields__) - {"notebook"}
    return [
        Outcome(name, **{k: v for k, v in entry.items() if k in fields}) for name, entry in results["notebooks"].items()
    ]


def _format(value: float | int | str) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary(results: dict) -> str:
    """A results file (see :func:`run`) as Markdown: the run, the table, then each notebook's figures."""
    outcomes = outcomes_of(results)
    passed = sum(o.status == PASSED for o in outcomes)
    lines = [
        "# Course results",
        "",
        f"profile **{results['profile']}** ({results['profile_reason']}); "
        f"dataset **{results['dataset']}** ({results['dataset_reason']})",
        "",
        f"{results['date']}, {describe_machine(results['machine'])}; `{results['command']}`",
        "",
        f"{passed} of {len(outcomes)} notebooks passed.",
        "",
        table(outcomes),
        "",
    ]
    for name, entry in results["notebooks"].items():
        if entry.get("values"):
            lines += [f"## {name}", "", "| result | value |", "|---|---|"]
            lines += [f"| {key} | {_cell(_format(value))} |" for key, value in entry["values"].items()]
            lines.append("")
    return "\n".join(lines)


def run(
    notebook_dir: Path,
    out: Path,
    profile: str | None = None,
    dataset: str | None = None,
    only: str | None = None,
    timeout: int = 7200,
    command: str | None = None,
    jobs: int = 1,
) -> dict:
    """Execute the notebooks of ``notebook_dir`` (those ``only`` names, else all) under one profile and dataset.

    Every notebook runs even when an earlier one fails. Writes the executed
    notebooks, ``results.json`` (after each notebook, so an interrupted run
    keeps what it measured) and ``results.md`` under ``out``; returns the results.
    With ``jobs`` > 1, that many notebooks run at once, in teaching order (their
    models are shared through the checkpoint cache's locks): faster, but their
    run times are not those of one notebook after another, which the README reports.
    """
    from .session import choose_dataset

    paths = select(notebooks(notebook_dir), only)
    if not paths:
        raise ValueError(f"no NN_*.ipynb notebooks in {notebook_dir}")
    chosen, why_profile = profiles.choose_profile(profile)
    name, why_dataset = choose_dataset(chosen, dataset)
    executed = out / "notebooks"
    executed.mkdir(parents=True, exist_ok=True)
    env = os.environ | {config.PROFILE_ENV: chosen.name, config.DATASET_ENV: name}
    results = {
        "profile": chosen.name,
        "profile_reason": why_profile,
        "dataset": name,
        "dataset_reason": why_dataset,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": _commit(),
        "command": command or "unlearnlib.course.run",
        "jobs": jobs,
        "notebooks": {},
    }

    def one(path: Path) -> tuple[Outcome, dict]:
        print(f"running {path.name} ...", flush=True)
        recorded = out / f"recorded-{path.stem}.json"  # one file a notebook: notebooks may run at once
        recorded.unlink(missing_ok=True)
        outcome = execute(path, executed, env | {RESULTS_ENV: str(recorded.resolve())}, timeout)
        values = json.loads(recorded.read_text()).get(path.stem, {}) if recorded.exists() else {}
        recorded.unlink(missing_ok=True)
        return outcome, values

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for path, (outcome, values) in zip(paths, pool.map(one, paths)):
            entry = {k: v for k, v in asdict(outcome).items() if k != "notebook"}
            results["notebooks"][path.stem] = entry | {"values": values}
            (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
            if outcome.status == PASSED:
                print(f"  {path.stem} passed in {outcome.seconds:.0f} s", flush=True)
            else:
                print(
                    f"  {path.stem} FAILED in {outcome.seconds:.0f} s, cell {outcome.cell}: {outcome.claim}", flush=True
                )
    (out / "results.md").write_text(summary(results))
    return results


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    from .datasets import DATASETS

    listed = "\n".join(f"  {p.name:8s} {p.meant_for}" for p in profiles.PROFILES.values())
    parser = argparse.ArgumentParser(
        prog="python -m unlearnlib.course",
        description=__doc__.split("\n")[0],
        epilog=f"profiles:\n{listed}\n\nexit status: 0 when every notebook passed, 1 when one failed, "
        "2 for a usage error.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--profile", choices=sorted(profiles.PROFILES), help="default: UNLEARN_PROFILE, else gpu with CUDA, else cpu"
    )
    parser.add_argument("--dataset", choices=DATASETS, help="default: UNLEARN_DATASET, else the profile's first found")
    parser.add_argument("--only", metavar="NN,NN", help="run only these notebooks, e.g. 03,05 (default: all)")
    parser.add_argument("--notebooks", type=Path, default=config.root_dir() / "notebooks", help="default: %(default)s")
    parser.add_argument("--out", type=Path, default=config.build_dir(), help="default: %(default)s")
    parser.add_argument(
        "--timeout", type=_positive_int, default=7200, help="seconds one cell may run (default: %(default)s)"
    )
    parser.add_argument(
        "--jobs",
        type=cli.whole_number(1),
        default=1,
        help="notebooks run at once (default: %(default)s; the README's run times are of one at a time)",
    )
    return parser


def _check_out(parser: argparse.ArgumentParser, out: Path) -> None:
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"--out {out} cannot be created: {err.strerror}")
    if not os.access(out, os.W_OK):
        parser.error(f"--out {out} is not writable")


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (1 when a notebook failed)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        import nbclient  # noqa: F401
    except ImportError:
        parser.error("running notebooks needs the notebook tools: pip install 'unlearnlib[notebooks]' (or make setup)")
    if not args.notebooks.is_dir():
        parser.error(f"--notebooks {args.notebooks} is not a folder")
    paths = notebooks(args.notebooks)
    if not paths:
        parser.error(f"--notebooks {args.notebooks} holds no NN_*.ipynb notebook")
    from .datasets import DatasetUnavailable
    from .session import describe_data

    try:
        select(paths, args.only)
        print(describe_data(args.profile, args.dataset), flush=True)
    except (ValueError, DatasetUnavailable) as err:
        parser.error(str(err))
    _check_out(parser, args.out)
    command = " ".join(["python -m unlearnlib.course", *(argv if argv is not None else sys.argv[1:])])
    results = run(args.notebooks, args.out, args.profile, args.dataset, args.only, args.timeout, command, args.jobs)
    outcomes = outcomes_of(results)
    failed = [o for o in outcomes if o.status == FAILED]
    print()
    print(table(outcomes))
    print()
    print(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} notebooks passed ({results['profile']} profile, "
        f"{results['dataset']}); executed notebooks in {args.out / 'notebooks'}, results in {args.out / 'results.md'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
