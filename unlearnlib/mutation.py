"""Mutation testing: how many deliberately broken versions of each module its own tests catch.

    python -m unlearnlib.mutation                            # every module below (make mutation)
    python -m unlearnlib.mutation --modules mia,forget       # some of them
    python -m unlearnlib.mutation --results RESULTS.md       # and write the scores into RESULTS.md

A *mutant* is a module with one small change made by ``mutmut`` (a ``<`` turned
into ``<=``, a constant into another, an argument dropped, ...). It is *killed*
when one of the tests fails on it. A mutant no test kills is a change of the
code that the tests would let through: a missing known answer.

Each module runs against its own fast tests only (:data:`TARGETS`; tests marked ``slow`` left out), in a
workspace of its own under ``build/mutation/<module>``, so that its score says
how well those tests pin that module down, and runs never share a directory.

Some mutants change nothing a caller can observe (a default that every caller
overrides, a bound no input reaches): they are *equivalent* and no test can kill
them. Each is listed in ``tests/mutation_equivalents.toml`` with its change and
the reason; they leave the score's denominator:

    score = killed / (mutants - equivalent)

A listed mutant whose change no longer matches the code (the module was edited
since) counts as a survivor until the list is brought up to date. Surviving
mutants are written, with their diffs, to ``build/mutation/<module>/survivors.txt``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from . import cli
from .colab import checkout_root

EQUIVALENTS = Path("tests/mutation_equivalents.toml")
COPIED = ("unlearnlib", "tests", "conftest.py", "pyproject.toml")
KILLED = {1, 3, 24, -24, 36, 152, 255}
"""mutmut's exit codes of a mutant that a test failed on (3: pytest's internal error) or that timed out."""


@dataclass(frozen=True)
class Target:
    """A module under mutation and the fast tests that must catch its mutants."""

    source: str
    tests: tuple[str, ...]
    goal: float
    """The least acceptable score."""


TARGETS = {
    "forgetting_quality": Target(
        "unlearnlib/forgetting_quality.py", ("tests/test_forgetting_quality.py", "tests/test_properties.py"), 0.9
    ),
    "mia": Target("unlearnlib/mia.py", ("tests/test_mia.py", "tests/test_properties.py"), 0.9),
    "forget": Target("unlearnlib/forget.py", ("tests/test_forget.py", "tests/test_properties.py"), 0.9),
    "batching": Target("unlearnlib/batching.py", ("tests/test_batching.py", "tests/test_properties.py"), 0.9),
    "metrics": Target("unlearnlib/metrics.py", ("tests/test_metrics.py", "tests/test_properties.py"), 0.8),
    "influence": Target("unlearnlib/influence_functions.py", ("tests/test_influence_functions.py",), 0.8),
    "unlearn_networks": Target("unlearnlib/unlearn/networks.py", ("tests/test_unlearn_networks.py",), 0.8),
    "unlearn_training": Target("unlearnlib/unlearn/training.py", ("tests/test_unlearn_training.py",), 0.8),
}


@dataclass
class Score:
    """One module's mutation run."""

    module: str
    mutants: int
    killed: int
    equivalent: int
    survivors: list[str]
    goal: float
    seconds: float

    @property
    def score(self) -> float:
        counted = self.mutants - self.equivalent
        return self.killed / counted if counted else 1.0

    @property
    def met(self) -> bool:
        return self.score >= self.goal


def mutmut_section(target: Target) -> str:
    """The ``[tool.mutmut]`` table that mutates ``target``'s module only and runs only its tests."""
    settings = {
        "source_paths": ["unlearnlib/"],
        "only_mutate": [target.source],
        "pytest_add_cli_args_test_selection": list(target.tests),
        # The tests' own order and Hypothesis's fixed examples (tests/conftest.py): a mutant's fate reproduces.
        # Tests marked slow (seconds each) are left out: they would run again on every mutant they cover.
        "pytest_add_cli_args": ["-p", "no:randomly", "--hypothesis-profile=mutation", "-m", "not slow", "-q"],
        "also_copy": ["conftest.py"],
        # A mutant's CPU-time limit is (estimate + constant) x multiplier x 2 seconds, its wall-time limit half that.
        # mutmut's estimate counts the tests' calls but not their fixtures (a dataset to load): the constant covers
        # those, so that a timeout means a mutant made a run several times slower (or made it hang).
        "timeout_multiplier": 2.0,
        "timeout_constant": 10.0,
    }
    lines = ["[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def prepare(workspace: Path, target: Target) -> None:
    """A fresh copy of the package and its tests in ``workspace``, configured to mutate ``target``."""
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = checkout_root() / name
        if source.is_dir():
            shutil.copytree(source, workspace / name, ignore=ignore)
        else:
            shutil.copy2(source, workspace / name)
    pyproject = workspace / "pyproject.toml"
    text = pyproject.read_text()
    if "[tool.mutmut]" in text:
        raise ValueError("pyproject.toml has a [tool.mutmut] table: unlearnlib.mutation writes its own, remove it")
    pyproject.write_text(text.rstrip() + "\n\n" + mutmut_section(target))


def exit_codes(workspace: Path, target: Target) -> dict[str, int | None]:
    """Mutant name -> mutmut's exit code of its test run, from the run's record beside the mutated module."""
    meta = workspace / "mutants" / (target.source + ".meta")
    if not meta.is_file():
        raise RuntimeError(f"mutmut left no record of its run at {meta}: see its output above")
    return json.loads(meta.read_text())["exit_code_by_key"]


def diff(workspace: Path, mutant: str) -> str:
    """The change that makes ``mutant``, as a unified diff."""
    shown = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", mutant], cwd=workspace, capture_output=True, text=True, check=True
    )
    return shown.stdout


def changed_lines(unified_diff: str) -> str:
    """The lines a mutant adds, stripped and joined: what identifies its change while the module stays as it is."""
    lines = unified_diff.splitlines()
    return "\n".join(line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++"))


def load_equivalents(path: Path) -> dict[str, dict[str, str]]:
    """Mutant name -> {"change": the lines it adds, "reason": why no test can tell it from the module}."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    if not path.is_file():
        return {}
    listed = tomllib.loads(path.read_text())
    for name, entry in listed.items():
        missing = {"change", "reason"} - set(entry)
        if missing:
            raise ValueError(f"{path}: {name} lacks {', '.join(sorted(missing))}")
    return listed


def run_module(name: str, target: Target, jobs: int, equivalents: dict[str, dict[str, str]]) -> Score:
    """Mutate one module, run its tests on every mutant, and score the run."""
    workspace = checkout_root() / "build" / "mutation" / name
    prepare(workspace, target)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("UNLEARN_ROOT", None)
    log = workspace / "mutmut.log"
    start = time.perf_counter()
    with log.open("w") as output:
        done = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)],
            cwd=workspace,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"mutmut failed on {target.source} (exit status {done.returncode}, log {log}):\n{tail}")
    codes = exit_codes(workspace, target)
    killed = [mutant for mutant, code in codes.items() if code in KILLED]
    left = sorted(set(codes) - set(killed))
    with ThreadPoolExecutor(jobs) as pool:
        changes = dict(zip(left, pool.map(lambda mutant: diff(workspace, mutant), left)))
    equivalent, survivors, report = 0, [], []
    for mutant, change in changes.items():
        listed = equivalents.get(mutant)
        if listed is not None and listed["change"].strip() == changed_lines(change):
            equivalent += 1
            continue
        survivors.append(mutant)
        stale = "# listed as equivalent, but its change differs now\n" if listed is not None else ""
        report.append(stale + change)
    (workspace / "survivors.txt").write_text("\n".join(report) or "none\n")
    return Score(name, len(codes), len(killed), equivalent, survivors, target.goal, seconds)


def table(scores: list[Score]) -> str:
    """The scores as a Markdown table."""
    lines = [
        "| module | mutants | killed | equivalent | survived | score | goal |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        mark = "" if s.met else " (below goal)"
        lines.append(
            f"| {s.module} | {s.mutants} | {s.killed} | {s.equivalent} | {len(s.survivors)} | "
            f"{s.score:.1%}{mark} | {s.goal:.0%} |"
        )
    return "\n".join(lines)


def results_section(run: dict) -> str:
    """RESULTS.md's section on mutation testing, from a run's record."""
    from .course import describe_machine

    scores = [Score(**fields) for fields in run["scores"]]
    minutes = sum(s.seconds for s in scores) / 60
    return (
        f"## Mutation testing\n\n"
        f"{run['date'][:10]}, {describe_machine(run['machine'])}, {minutes:.0f} min; `{run['command']}`. "
        f"Score = killed / (mutants - equivalent); the equivalent mutants are listed with their reasons in "
        f"`{EQUIVALENTS}`.\n\n{table(scores)}\n"
    )


def update_results(text: str, run: dict) -> str:
    """``text`` (RESULTS.md) with its mutation-testing section written in (appended where there is none)."""
    from .readme import write_section

    return write_section(text, "mutation", results_section(run))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unlearnlib.mutation",
        description="Mutation testing of the modules the course's science stands on, each against its own tests.",
    )
    parser.add_argument(
        "--modules",
        type=cli.names(list(TARGETS), "module"),
        default=list(TARGETS),
        help=f"comma-separated, among {', '.join(TARGETS)} (default: all)",
    )
    parser.add_argument("--jobs", type=cli.whole_number(1), default=os.cpu_count() or 1, help="mutants run at once")
    parser.add_argument("--results", type=Path, help="write the scores into this RESULTS.md")
    parser.add_argument("--out", type=Path, help="the run's record (default: build/mutation.json in the checkout)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .course import machine

    equivalents = load_equivalents(checkout_root() / EQUIVALENTS)
    scores = []
    for name in args.modules:
        print(f"mutating {TARGETS[name].source} against {', '.join(TARGETS[name].tests)} ...", flush=True)
        score = run_module(name, TARGETS[name], args.jobs, equivalents)
        print(
            f"  {score.killed} of {score.mutants - score.equivalent} killed ({score.score:.1%}, goal "
            f"{score.goal:.0%}), {score.equivalent} equivalent, {score.seconds:.0f} s"
            + (f"; survivors: build/mutation/{name}/survivors.txt" if score.survivors else ""),
            flush=True,
        )
        scores.append(score)
    command = "python -m unlearnlib.mutation" + (
        f" --modules {','.join(args.modules)}" if args.modules != list(TARGETS) else ""
    )
    run = {
        "command": command,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "scores": [asdict(s) for s in scores],
    }
    out = args.out or checkout_root() / "build" / "mutation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(run, indent=2) + "\n")
    print("\n" + table(scores))
    if args.results:
        text = args.results.read_text() if args.results.is_file() else ""
        args.results.write_text(update_results(text, run))
        print(f"{args.results}: the mutation-testing section rewritten")
    below = [s.module for s in scores if not s.met]
    if below:
        print(f"below goal: {', '.join(below)}", file=sys.stderr)
    return 1 if below else 0


if __name__ == "__main__":
    raise SystemExit(main())
