"""Every registered unlearning method on the same requests, judged by the same measures, in one table.

    python -m unlearnlib.leaderboard [--profile cpu] [--methods finetune,eu_k] [--repeats 3] [--out build]
                                     [--n 16] [--engine ray]

For each request (a random 20% of the training set, and the whole of class 0,
the requests of notebook 03) the table starts with the original models' own
row: doing nothing.  Then, for each method that applies to the request, a
:class:`~unlearnlib.trial.Trial` runs the method on the N original models
(seeds 0..N-1) and judges it with :func:`unlearnlib.metrics.evaluate` against
N models retrained without the forget set at other seeds (N..2N-1), so that
even retraining is compared with independent retrained models.  A measure of
single models reads mean ± std over the N models; with ``--repeats K`` each kind
of request is drawn K times and every measure, forgetting quality included, reads
mean ± std over the K requests.  The table goes to ``build/leaderboard.csv`` and
``build/leaderboard.md``.

``--n`` sets N, the models a side (the profile's by default); with ``--engine ray``
every model is first made in parallel as a :mod:`~unlearnlib.population` (on the
cores or GPUs here, or a Ray cluster), and the table is then read from the cache.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import cli, config, metrics, population, profiles, session, validate
from .datasets import DATASETS, DatasetUnavailable
from .forget import ForgetRequest, standard_requests
from .imagedata import ImageData
from .trial import Trial
from .unlearn import Method, check_overrides, get, methods

COLUMNS = (
    "request",
    "method",
    "unlearn_accuracy",
    "retain_accuracy",
    "test_accuracy",
    "mia_unlearned",
    "mia_efficacy_unlearned",
    "gap_to_retrained",
    "average_gap",
    "forgetting_quality",
    "unlearning_score",
    "seconds",
    "time_ratio",
)
"""The leaderboard's columns (:func:`~unlearnlib.metrics.evaluate` names), labelled by :data:`metrics.LABELS`."""


def run(
    setup: session.Setup,
    data: ImageData,
    method_names: list[str] | None = None,
    *,
    requests: dict[str, ForgetRequest] | None = None,
    repeats: int = 1,
    hyperparameters: dict[str, dict] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run each method (all registered, by default) on each request and return every :func:`evaluate` row.

    Each request's rows start with the original models' own ("original": doing nothing).
    With ``repeats`` K > 1 (the standard requests only), each kind of request is drawn K
    times (:func:`~unlearnlib.forget.standard_requests` with index 0..K-1: random 20%
    with seeds 0..K-1, classes 0..K-1), and a row holds the mean over the K requests,
    with each leaderboard measure's standard deviation over them (``<column>_std``,
    in place of the spread over models that one request gives) and ``requests`` = K.

    Each method gets its default hyperparameters, the profile's batch size, and
    any overrides in ``hyperparameters[name]``; it is judged by a
    :class:`~unlearnlib.trial.Trial`.  Retraining's run time is the training
    time of its models, from the checkpoint cache.  Method names, requests and
    the names of the overrides are checked before any model is trained.
    """
    if isinstance(method_names, str):
        method_names = cli.split_names([method_names])
    chosen: list[Method] = methods() if method_names is None else [get(name) for name in method_names]
    if not chosen:
        raise ValueError(f"no method to run; choose from {', '.join(m.name for m in methods())}")
    repeats = validate.integer("repeats", repeats, minimum=1)
    if requests is not None and repeats > 1:
        raise ValueError("repeats draws the standard requests anew: give requests or repeats, not both")
    groups = _standard_groups(data, repeats) if requests is None else None
    if groups is None and (not isinstance(requests, dict) or not requests):
        raise TypeError("requests must be a non-empty dict of label -> ForgetRequest")
    groups = groups or {label: [request] for label, request in requests.items()}
    for label, request in ((label, r) for label, group in groups.items() for r in group):
        if not isinstance(request, ForgetRequest):
            raise TypeError(f"request {label!r} must be a ForgetRequest, got {type(request).__name__}")
        if request.n_train != len(data.train):
            raise ValueError(
                f"request {label!r} is for a training split of {request.n_train} examples, "
                f"this data has {len(data.train)}"
            )
    hyperparameters = check_overrides(hyperparameters, [method.name for method in chosen])
    rows = []
    for label, group in groups.items():
        trials = [Trial(setup.recipe, data, r, n_models=setup.profile.n_models, progress=progress) for r in group]
        rows.append(_over_requests(label, "original", [trial.do_nothing() for trial in trials]))
        for method in tqdm([m for m in chosen if m.applies_to(group[0])], desc=label, disable=not progress):
            overrides = hyperparameters.get(method.name, {})
            runs = [trial.run(method, progress=False, **overrides) for trial in trials]
            rows.append(_over_requests(label, method.name, runs))
    return pd.DataFrame(rows).reset_index(drop=True)


def _standard_groups(data: ImageData, repeats: int) -> dict[str, list[ForgetRequest]]:
    """The standard requests, each kind drawn ``repeats`` times, under the labels of the table's rows."""
    if repeats == 1:
        return {label: [request] for label, request in standard_requests(data).labelled().items()}
    drawn = [standard_requests(data, k) for k in range(repeats)]
    return {
        f"random 20% ({repeats} seeds)": [d.random for d in drawn],
        f"class ({repeats} classes)": [d.whole_class for d in drawn],
    }


def _over_requests(label: str, method: str, runs: list[pd.Series]) -> pd.Series:
    """One row of the table from a method's runs on each request of a group: the run itself for one request;
    for several, every numeric column's mean and each leaderboard measure's std over the requests."""
    lead = pd.Series({"request": label, "method": method})
    if len(runs) == 1:
        return pd.concat([lead, runs[0]])
    frame = pd.DataFrame(runs).apply(pd.to_numeric, errors="coerce")
    measures = [column for column in COLUMNS if column in frame]
    spread = frame[measures].std(ddof=1).add_suffix("_std")
    means = frame.mean().drop(spread.index, errors="ignore")  # the spread over models gives way to this one
    return pd.concat([lead, means, spread, pd.Series({"requests": len(runs)})])


def table(rows: pd.DataFrame, digits: int | None = None) -> pd.DataFrame:
    """The leaderboard's columns of :func:`run`'s rows, with short labels.

    With ``digits``, a measure that has a spread over the N models (``<column>_std``) is written
    "mean ± std", both rounded to ``digits`` decimals.
    """
    shown = rows[list(COLUMNS)].copy()
    if digits is not None:
        for column in COLUMNS:
            if f"{column}_std" in rows:
                shown[column] = [
                    metrics.with_spread(mean, std, digits) for mean, std in zip(rows[column], rows[f"{column}_std"])
                ]
    return shown.rename(columns=metrics.LABELS)


def markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """``frame`` as a GitHub Markdown table, numbers rounded to ``digits`` decimals."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "–" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def save(rows: pd.DataFrame, out: Path, header: str = "") -> tuple[Path, Path]:
    """Write every column of ``rows`` to ``out/leaderboard.csv`` and the table to ``out/leaderboard.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "leaderboard.csv", out / "leaderboard.md"
    rows.to_csv(csv_path, index=False)
    md_path.write_text((header + "\n\n" if header else "") + markdown(table(rows, digits=3)))
    return csv_path, md_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m unlearnlib.leaderboard", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--profile",
        default=None,
        choices=sorted(profiles.PROFILES),
        help="default: UNLEARN_PROFILE, else gpu with CUDA, else cpu",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        choices=DATASETS,
        help="default: UNLEARN_DATASET, else the profile's first available",
    )
    parser.add_argument(
        "--methods",
        default=None,
        type=cli.names([m.name for m in methods()], "method"),
        metavar="NAMES",
        help=f"comma-separated, from: {', '.join(m.name for m in methods())} (default: every one)",
    )
    parser.add_argument(
        "--repeats",
        type=cli.whole_number(1),
        default=1,
        metavar="K",
        help="draw each kind of request K times (random seeds, classes 0..K-1) and report mean ± std over them",
    )
    parser.add_argument(
        "--n", type=cli.whole_number(3), default=None, metavar="N", help="models a side (default: the profile's)"
    )
    population.add_engine_arguments(parser)
    parser.add_argument("--out", type=Path, default=None, help="where the table goes (default: build/ in the course)")
    args = parser.parse_args(argv)
    try:
        setup = session.start(args.profile, args.dataset)
        if args.n is not None:
            setup = replace(setup, profile=setup.profile.adjusted(n_models=args.n))
        population.check_engine(args.engine)
        out = config.check_writable_folder(
            args.out or config.build_dir(), "--out", "give a folder you can write to" if args.out else None
        )
        data = setup.load_data()
    except (ValueError, DatasetUnavailable, population.EngineUnavailable) as err:
        parser.error(str(err))
    names = args.methods
    start = time.perf_counter()
    if args.engine != "local":  # make every model in parallel first; the table then reads them from the cache
        requests = [r for group in _standard_groups(data, args.repeats).values() for r in group]
        chosen = names if names is not None else [m.name for m in methods()]
        made = population.fill(setup, requests, chosen, n=setup.profile.n_models, **population.engine_options(args))
        print(made.summary())
    rows = run(setup, data, names, repeats=args.repeats)
    repeated = f", {args.repeats} requests of each kind" if args.repeats > 1 else ""
    given = [("repeats", args.repeats, 1), ("n", args.n, None), ("engine", args.engine, "local")]
    options = "".join(f" --{flag} {value}" for flag, value, default in given if value != default)
    header = (
        f"Profile {setup.profile.name}, {data.info.name}, {setup.profile.n_models} models per method"
        f"{repeated}; "
        f"made by `python -m unlearnlib.leaderboard --profile {setup.profile.name}{options}` "
        f"in {time.perf_counter() - start:.0f} s."
    )
    csv_path, md_path = save(rows, out, header)
    print(header)
    print(markdown(table(rows, digits=3)))
    print(f"saved {csv_path} and {md_path}")


if __name__ == "__main__":
    main()
