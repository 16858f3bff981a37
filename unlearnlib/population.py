"""Populations of models: N originals, N retrained and N unlearned per method, in this process or on Ray.

    python -m unlearnlib.population --profile smoke --n 16 --methods finetune,retrain [--engine ray]

Forgetting quality compares N unlearned with N retrained models, and the NeurIPS
2023 unlearning challenge used hundreds a side.  Every one of those models is an
independent job that fills the checkpoint cache: an original (seeds 0..N-1, on
the whole training split), a retrained model (seeds N..2N-1, on D_r) and, for each
method, the method run on each original.  These are exactly the models a
:class:`~unlearnlib.trial.Trial` with ``n_models=N`` reads, so a leaderboard or a
notebook run after :func:`fill` loads them all from the cache.

The jobs run one after the other in this process (``engine="local"``, the default)
or as Ray tasks (``engine="ray"``, ``pip install -e '.[scale]'``): across the cores
or GPUs of this machine, or across a Ray cluster (``--address``), with fractional
GPUs so that several small models share one.  Each job saves under the cache's
file lock and with an atomic rename, so concurrent workers train each model once
and a killed run leaves no broken file; restarted, a run makes only what is
missing and loads the rest.  On a cluster, the course folder (``UNLEARN_ROOT``,
which holds ``checkpoints/`` and ``data/``) must be on a filesystem every node
shares, and every node needs the package installed.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import cli, config, profiles, session, validate
from .checkpoints import get_or_train
from .datasets import DATASETS, DatasetUnavailable
from .forget import ForgetRequest, standard_requests
from .imagedata import ImageData
from .unlearn import check_overrides, get, methods
from .unlearn.cache import get_or_unlearn

ENGINES = ("local", "ray")
"""Where the jobs run: one after the other in this process, or as Ray tasks."""

SIDES = ("original", "retrained", "unlearned")

REQUEST_KINDS = ("random", "class")
"""The standard requests a population can be made for (:func:`~unlearnlib.forget.standard_requests`)."""


@dataclass(frozen=True)
class Job:
    """One model of a population: its side, its seed, and (but for an original) its request and method."""

    side: str
    seed: int
    request: int | None = None
    """The request's position in the population's list of requests; ``None`` for an original."""
    method: str | None = None
    """The unlearning method, for the unlearned side."""

    def __str__(self) -> str:
        where = "" if self.request is None else f" request {self.request}"
        return f"{self.method or self.side} seed {self.seed}{where}"


@dataclass(frozen=True)
class Done:
    """A job's outcome: where its model is in the cache, and whether this run made it or found it there."""

    job: Job
    path: Path
    made: bool
    seconds: float
    """The job's wall time here (a model found in the cache: the time to load it)."""


@dataclass(frozen=True)
class Report:
    """Every job of a :func:`fill`, and how long it took."""

    done: tuple[Done, ...]
    seconds: float
    engine: str

    @property
    def made(self) -> int:
        return sum(d.made for d in self.done)

    @property
    def found(self) -> int:
        return len(self.done) - self.made

    def summary(self) -> str:
        """One line: the models per side, how many this run made and found, the time and the rate."""
        sides = Counter(d.job.side for d in self.done)
        per_hour = self.made / self.seconds * 3600 if self.made and self.seconds > 0 else 0.0
        return (
            f"{len(self.done)} models ({', '.join(f'{sides[s]} {s}' for s in SIDES if sides[s])}): "
            f"made {self.made}, found {self.found} in the cache; {self.seconds:.1f} s on {self.engine}"
            + (f", {per_hour:.0f} models per hour" if per_hour else "")
        )


class EngineUnavailable(RuntimeError):
    """The engine asked for cannot run here (Ray is not installed)."""


def plan(n: int, requests: Sequence[ForgetRequest], method_names: Sequence[str] = ()) -> list[Job]:
    """The jobs of a population of ``n`` models a side: the originals, then for each request its retrained
    models and each applicable method on each original (the seeds a :class:`~unlearnlib.trial.Trial` uses)."""
    n = validate.integer("n", n, minimum=3)
    chosen = [get(name) for name in method_names]
    jobs = [Job("original", seed) for seed in range(n)]
    for r, request in enumerate(requests):
        jobs += [Job("retrained", seed, r) for seed in range(n, 2 * n)]
        jobs += [Job("unlearned", seed, r, m.name) for m in chosen if m.applies_to(request) for seed in range(n)]
    return jobs


@cache
def _data(setup: session.Setup) -> ImageData:
    """The population's data, loaded once per process (a Ray worker runs many jobs)."""
    return setup.load_data()


def run_job(
    job: Job,
    setup: session.Setup,
    requests: Sequence[ForgetRequest],
    hyperparameters: dict[str, dict],
    directory: Path,
    *_after: object,
) -> Done:
    """Make (or find in the cache at ``directory``) the model of ``job``; ``_after``: the jobs it waits for (Ray)."""
    start = time.perf_counter()
    data = _data(setup)
    recipe = replace(setup.recipe, seed=job.seed)
    if job.side == "unlearned":
        original = get_or_train(recipe, data, directory=directory, progress=False)
        options = hyperparameters.get(job.method, {})
        made = get_or_unlearn(get(job.method), original, requests[job.request], data, **options)
    else:
        retain = None if job.side == "original" else requests[job.request].retain
        made = get_or_train(recipe, data, retain, directory=directory, progress=False)
    return Done(job, made.path, not made.from_cache, time.perf_counter() - start)


def fill(
    setup: session.Setup,
    requests: Sequence[ForgetRequest],
    method_names: Sequence[str] = (),
    *,
    n: int,
    engine: str = "local",
    hyperparameters: dict[str, dict] | None = None,
    address: str | None = None,
    cpus_per_model: float = 1.0,
    gpus_per_model: float = 0.0,
    progress: bool = True,
) -> Report:
    """Make every model of a population of ``n`` a side for ``requests`` and the methods named, in the cache.

    ``engine`` "local" runs the jobs here, one after the other; "ray" runs each as a
    Ray task with ``cpus_per_model`` cores and ``gpus_per_model`` of a GPU (0.25: four
    models share one GPU), on the cluster at ``address`` or on a local one started
    here.  Methods, hyperparameters and requests are checked before any model is made.
    """
    check_engine(engine)
    if not isinstance(setup, session.Setup):
        raise TypeError(f"setup must be a session.Setup (session.start()), got {type(setup).__name__}")
    if isinstance(requests, ForgetRequest) or not requests:
        raise TypeError("requests must be a non-empty list of ForgetRequest")
    data = _data(setup)
    for request in requests:
        if not isinstance(request, ForgetRequest):
            raise TypeError(f"each request must be a ForgetRequest, got {type(request).__name__}")
        request.check_fits(data)
    hyperparameters = check_overrides(hyperparameters, [get(name).name for name in method_names])
    validate.positive("cpus_per_model", cpus_per_model)
    validate.non_negative("gpus_per_model", gpus_per_model)
    if gpus_per_model > 0 and engine == "local":
        raise ValueError("gpus_per_model is for engine 'ray'; the local engine uses the setup's device")
    jobs = plan(n, requests, method_names)
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), desc=f"population ({engine})", unit="model", disable=not progress)
    if engine == "local":
        done = []
        for job in jobs:
            done.append(run_job(job, setup, requests, hyperparameters, config.checkpoint_dir()))
            bar.update()
    else:
        done = _on_ray(jobs, setup, requests, hyperparameters, address, cpus_per_model, gpus_per_model, bar.update)
    bar.close()
    return Report(tuple(done), time.perf_counter() - start, engine)


def _on_ray(
    jobs: list[Job],
    setup: session.Setup,
    requests: Sequence[ForgetRequest],
    hyperparameters: dict[str, dict],
    address: str | None,
    cpus_per_model: float,
    gpus_per_model: float,
    tick: Callable[[], object],
) -> list[Done]:
    """Run ``jobs`` as Ray tasks, each unlearning job after the training of its original."""
    ray = check_engine("ray")
    env = {config.ROOT_ENV: str(config.root_dir()), "OMP_NUM_THREADS": str(max(1, int(cpus_per_model)))}
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, runtime_env={"env_vars": env}, include_dashboard=False, log_to_driver=False)
    try:
        device = torch.device("cuda" if gpus_per_model > 0 else "cpu")
        remote = ray.remote(num_cpus=cpus_per_model, num_gpus=gpus_per_model, max_retries=2)(run_job)
        shared = (replace(setup, device=device), ray.put(list(requests)), hyperparameters, config.checkpoint_dir())
        refs, originals = {}, {}
        for job in jobs:
            after = [originals[job.seed]] if job.side == "unlearned" else []
            refs[job] = remote.remote(job, *shared, *after)
            if job.side == "original":
                originals[job.seed] = refs[job]
        pending, done = list(refs.values()), {}
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            outcome = ray.get(ready[0])
            done[outcome.job] = outcome
            tick()
        return [done[job] for job in jobs]
    finally:
        if started_here:
            ray.shutdown()


def check_engine(engine: str):
    """Raise a clear error unless ``engine`` can run here; for "ray", return the ``ray`` module."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "ray":
        try:
            import ray
        except ImportError:
            raise EngineUnavailable("engine 'ray' needs Ray: pip install -e '.[scale]' (or pip install ray)") from None
        return ray
    return None


def standard(data: ImageData, kind: str, repeats: int = 1) -> list[ForgetRequest]:
    """The first ``repeats`` standard requests of ``kind`` ("random" 20% with seeds 0..K-1, or "class" 0..K-1)."""
    if kind not in REQUEST_KINDS:
        raise ValueError(f"unknown request kind {kind!r}; choose one of {', '.join(REQUEST_KINDS)}")
    drawn = [standard_requests(data, k) for k in range(validate.integer("repeats", repeats, minimum=1))]
    return [d.random if kind == "random" else d.whole_class for d in drawn]


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say where a population's jobs run (shared with the leaderboard's CLI)."""
    parser.add_argument("--engine", choices=ENGINES, default="local", help="where the models are made")
    parser.add_argument("--address", default=None, help="a Ray cluster's address (default: start one here)")
    parser.add_argument("--cpus-per-model", type=float, default=1.0, metavar="C", help="Ray: cores per job")
    parser.add_argument(
        "--gpus-per-model", type=float, default=0.0, metavar="G", help="Ray: share of a GPU per job (0.25: 4 a GPU)"
    )


def engine_options(args: argparse.Namespace) -> dict[str, object]:
    """The keyword arguments of :func:`fill` that :func:`add_engine_arguments`'s options give."""
    return {
        "engine": args.engine,
        "address": args.address,
        "cpus_per_model": args.cpus_per_model,
        "gpus_per_model": args.gpus_per_model,
    }


def main(argv: list[str] | None = None) -> None:
    names = [m.name for m in methods()]
    parser = argparse.ArgumentParser(prog="python -m unlearnlib.population", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, choices=sorted(profiles.PROFILES), help="default: UNLEARN_PROFILE")
    parser.add_argument("--dataset", default=None, choices=DATASETS, help="default: the profile's first available")
    parser.add_argument(
        "--n", type=cli.whole_number(3), default=None, metavar="N", help="models a side (default: the profile's)"
    )
    parser.add_argument(
        "--methods",
        type=cli.names(names, "method"),
        default=[],
        metavar="NAMES",
        help=f"comma-separated, from: {', '.join(names)} (default: none, only originals and retrained)",
    )
    parser.add_argument("--request", choices=REQUEST_KINDS, default="random", help="random 20%% or a whole class")
    parser.add_argument("--repeats", type=cli.whole_number(1), default=1, metavar="K", help="K requests of the kind")
    add_engine_arguments(parser)
    args = parser.parse_args(argv)
    try:
        setup = session.start(args.profile, args.dataset)
        requests = standard(_data(setup), args.request, args.repeats)
        check_engine(args.engine)
    except (ValueError, EngineUnavailable, DatasetUnavailable) as err:
        parser.error(str(err))
    report = fill(setup, requests, args.methods, n=args.n or setup.profile.n_models, **engine_options(args))
    print(report.summary())
    print(f"cache: {config.checkpoint_dir()}")


if __name__ == "__main__":
    # Under its own name, not as __main__: the jobs, and what they are made of, must be importable by Ray's workers.
    importlib.import_module("unlearnlib.population").main()
