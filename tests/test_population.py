"""Populations of models: the jobs a Trial of N models reads, made once, in this process or on a Ray cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from unlearnlib import population, profiles
from unlearnlib.forget import class_forget, random_forget
from unlearnlib.population import Job
from unlearnlib.session import Setup
from unlearnlib.trial import Trial

TINY = profiles.PROFILES["smoke"].adjusted(width=4, epochs=1, batch_size=64, n_train=200, n_test=200)


@pytest.fixture
def tiny(isolated_root):
    setup = Setup(TINY.for_dataset("digits").adjusted(width=4, epochs=1, n_train=200), "digits", torch.device("cpu"), 0)
    data = population._data(setup)
    return setup, data, [random_forget(len(data.train), fraction=0.2, seed=0)]


def cached_files(root) -> list:
    return sorted(p for p in (root / "checkpoints").rglob("*.pt"))


def readable(path) -> bool:
    """The cache's file reads back whole (weights only), with finite weights."""
    payload = torch.load(path, weights_only=True)
    return all(torch.isfinite(t).all() for t in payload["state_dict"].values() if t.is_floating_point())


def test_the_plan_is_the_models_a_trial_of_n_reads():
    data_size = 100
    requests = [random_forget(data_size, fraction=0.2, seed=0), random_forget(data_size, fraction=0.2, seed=1)]
    jobs = population.plan(4, requests, ["finetune", "pbu"])
    assert jobs[:4] == [Job("original", seed) for seed in range(4)], "originals at seeds 0..N-1, shared by requests"
    for r in (0, 1):
        retrained = [j.seed for j in jobs if j.side == "retrained" and j.request == r]
        unlearned = [(j.method, j.seed) for j in jobs if j.side == "unlearned" and j.request == r]
        assert retrained == [4, 5, 6, 7], "retrained at seeds N..2N-1, as a Trial judges against"
        assert unlearned == [("finetune", s) for s in range(4)], "pbu is for class requests: left out"
    assert len(jobs) == len(set(jobs)) == 4 + 2 * (4 + 4)
    with pytest.raises(ValueError, match="n must be at least 3, got 2"):
        population.plan(2, requests)
    with pytest.raises(ValueError, match="unknown unlearning method 'fintune'"):
        population.plan(3, requests, ["fintune"])


def test_a_local_population_fills_the_cache_once_and_a_trial_then_trains_nothing(tiny, isolated_root):
    setup, data, requests = tiny
    report = population.fill(setup, requests, ["finetune"], n=3, progress=False)
    files = cached_files(isolated_root)
    assert sorted(d.path for d in report.done) == files, "exactly the population's models, no other file"
    assert len(files) == 3 + 3 + 3 and report.made == 9 and report.found == 0
    assert "9 models (3 original, 3 retrained, 3 unlearned): made 9, found 0" in report.summary()

    again = population.fill(setup, requests, ["finetune"], n=3, progress=False)
    assert (again.made, again.found) == (0, 9) and cached_files(isolated_root) == files

    trial = Trial(setup.recipe, data, requests[0], n_models=3, progress=False)
    assert all(m.from_cache for m in trial.originals + trial.retrained)
    trial.run("finetune", progress=False)
    assert cached_files(isolated_root) == files, "the trial found every model the population made"


def test_bad_input_is_refused_before_any_model_is_made(tiny, isolated_root, monkeypatch):
    setup, data, requests = tiny
    cases = [
        ({"engine": "slurm"}, ValueError, "unknown engine 'slurm'; choose one of local, ray"),
        ({"gpus_per_model": 0.5}, ValueError, "gpus_per_model is for engine 'ray'"),
        ({"cpus_per_model": 0}, ValueError, "cpus_per_model must be positive"),
        ({"hyperparameters": {"retrain": {}}}, ValueError, r"given for 'retrain', which is not among the methods run"),
        ({"hyperparameters": {"finetune": {"lrr": 1}}}, TypeError, "finetune has no hyperparameter lrr"),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            population.fill(setup, requests, ["finetune"], n=3, progress=False, **options)
    with pytest.raises(TypeError, match="requests must be a non-empty list"):
        population.fill(setup, requests[0], n=3, progress=False)
    other = random_forget(len(data.train) + 5, fraction=0.2)
    with pytest.raises(ValueError, match="training split"):
        population.fill(setup, [other], n=3, progress=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(population.EngineUnavailable, match=r"engine 'ray' needs Ray: pip install -e '.\[scale\]'"):
        population.fill(setup, requests, n=3, engine="ray", progress=False)
    assert cached_files(isolated_root) == []


def test_the_standard_requests_of_a_kind():
    from unlearnlib import datasets

    data = datasets.load("digits", n_train=200, n_test=100, device="cpu")
    randoms = population.standard(data, "random", 2)
    assert [len(r.forget) for r in randoms] == [40, 40] and not torch.equal(randoms[0].forget, randoms[1].forget)
    classes = population.standard(data, "class", 2)
    assert [r.target_class for r in classes] == [0, 1]
    assert torch.equal(classes[1].forget, class_forget(data.train.labels, 1, data.info).forget)
    with pytest.raises(ValueError, match="unknown request kind 'subclass'; choose one of random, class"):
        population.standard(data, "subclass")


CLI = [sys.executable, "-m", "unlearnlib.population", "--profile", "smoke", "--dataset", "digits"]
CLI_ENV = {"UNLEARN_OVERRIDES": "width=4,epochs=3,n_train=200,n_test=200", "OMP_NUM_THREADS": "1"}


def test_the_cli_names_a_typo_in_one_line(isolated_root, capsys):
    for wrong, message in [
        (["--engine", "rya"], "argument --engine: invalid choice: 'rya'"),
        (["--methods", "fintune"], "argument --methods: unknown method 'fintune'; choose from"),
        (["--n", "2"], "argument --n: must be at least 3, got 2"),
        (["--repeats", "0"], "argument --repeats: must be at least 1, got 0"),
        (["--request", "subclass"], "argument --request: invalid choice: 'subclass'"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            population.main(["--profile", "smoke", "--dataset", "digits", *wrong])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err.strip().splitlines()[-1] and "Traceback" not in err


def test_without_ray_the_cli_says_how_to_install_it_before_any_work(isolated_root, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SystemExit) as exit_info:
        population.main(["--profile", "smoke", "--dataset", "digits", "--engine", "ray"])
    assert exit_info.value.code == 2 and "engine 'ray' needs Ray: pip install -e '.[scale]'" in capsys.readouterr().err
    assert cached_files(isolated_root) == []


def test_a_killed_run_restarted_makes_only_what_is_missing(isolated_root):
    """The run is killed (SIGKILL, no clean-up) once some models are saved; the restart makes the rest."""
    env = os.environ | CLI_ENV
    command = CLI + ["--n", "3", "--methods", "finetune"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(cached_files(isolated_root)) < 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    kept = cached_files(isolated_root)
    assert 3 <= len(kept) < 9, f"killed after {len(kept)} of 9 models"

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    summary = next(line for line in second.stdout.splitlines() if " models (" in line)
    assert f"9 models (3 original, 3 retrained, 3 unlearned): made {9 - len(kept)}, found {len(kept)}" in summary
    files = cached_files(isolated_root)
    assert len(files) == 9 and set(kept) <= set(files)
    assert not list((isolated_root / "checkpoints").rglob("*.tmp")), "no temporary file is left behind"
    assert all(readable(path) for path in files)


@pytest.mark.slow
def test_a_population_on_a_local_ray_cluster_of_two_cpus_holds_exactly_n_models_a_side(tiny, isolated_root):
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[scale]'")
    setup, data, requests = tiny
    report = population.fill(setup, requests, ["finetune"], n=3, engine="ray", cpus_per_model=1, progress=False)
    assert report.engine == "ray" and not ray.is_initialized(), "the cluster it started is shut down"
    files = cached_files(isolated_root)
    assert sorted(d.path for d in report.done) == files and len(files) == 9, "exactly N a side, no duplicate"
    assert [d.job for d in report.done] == population.plan(3, requests, ["finetune"]) and report.made == 9
    assert all(readable(path) for path in files), "none broken: each file reads back whole"
    local = population.fill(setup, requests, ["finetune"], n=3, progress=False)
    assert local.found == 9, "the local engine finds every model the Ray workers made, under the same keys"
