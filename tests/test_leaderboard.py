"""Trials and the leaderboard: every method judged on the same requests against independent retrained models."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import torch

from unlearnlib import datasets, leaderboard, population, profiles
from unlearnlib.checkpoints import get_or_train
from unlearnlib.corrective import Repair
from unlearnlib.forget import class_forget, random_forget
from unlearnlib.session import Setup
from unlearnlib.trial import Trial

TINY = profiles.PROFILES["smoke"].adjusted(arch="resnet9", width=4, epochs=2, batch_size=64)


@pytest.fixture
def tiny(isolated_root):
    digits = datasets.load("digits", n_train=300, n_test=200, device="cpu")
    return Setup(TINY, "digits", torch.device("cpu"), 0), digits


def test_a_trial_judges_against_retrained_models_of_other_seeds(tiny):
    setup, digits = tiny
    request = random_forget(len(digits.train), fraction=0.1, seed=0)
    trial = Trial(setup.recipe, digits, request, progress=False)
    n = TINY.n_models
    assert [m.config.seed for m in trial.originals] == list(range(n))
    assert [m.config.seed for m in trial.retrained] == list(range(n, 2 * n))
    assert all(len(m.train_ids) == len(request.retain) for m in trial.retrained)

    row = trial.run("retrain", progress=False)
    assert row.name == "retrain" and row["n_models"] == n and len(trial.outputs["retrain"]) == n
    cached = [get_or_train(m.config, digits, request.retain, progress=False) for m in trial.originals]
    assert all(c.from_cache for c in cached), "retraining went through the checkpoint cache"
    assert row["seconds"] == pytest.approx(sum(c.train_seconds for c in cached) / n)
    assert row["time_ratio"] == pytest.approx(row["seconds"] / trial.retrain_seconds)
    nothing = trial.do_nothing()
    assert nothing.name == "original" and nothing["seconds"] == 0
    images, labels = map(torch.cat, zip(*digits.batches(digits.train.subset(request.forget), 4096)))
    with torch.no_grad():
        hits = [float((m.model.eval()(images).argmax(1) == labels).float().mean()) for m in trial.originals]
    assert nothing["forget_accuracy"] == pytest.approx(sum(hits) / n), "the originals' own accuracy on D_f"


def test_a_trial_and_a_repair_are_built_from_a_recipe(tiny):
    setup, digits = tiny
    request = random_forget(len(digits.train), count=30)
    with pytest.raises(TypeError, match=r"recipe must be a TrainConfig \(setup.recipe\), got Setup"):
        Trial(setup, digits, request)
    with pytest.raises(TypeError, match=r"recipe must be a TrainConfig \(setup.recipe\), got Setup"):
        Repair(setup, digits, None, 0)
    with pytest.raises(ValueError, match="n_models must be at least 3, got 2"):
        Trial(setup.recipe, digits, request, n_models=2)


def test_a_sweep_has_one_row_per_combination_led_by_its_values(tiny):
    setup, digits = tiny
    trial = Trial(setup.recipe, digits, class_forget(digits.train.labels, 2, digits.info), progress=False)
    rows = trial.sweep("finetune", {"epochs": [1, 2], "lr": [0.01, 0.1]}, progress=False, batch_size=32)
    assert list(rows.index) == [f"finetune epochs={e} lr={lr}" for e in (1, 2) for lr in (0.01, 0.1)]
    assert list(rows.columns[:2]) == ["epochs", "lr"] and rows["epochs"].tolist() == [1, 1, 2, 2]
    assert rows[["class_test_accuracy", "other_test_accuracy", "forgetting_quality"]].notna().all().all()
    assert set(trial.outputs) == set(rows.index)
    with pytest.raises(ValueError, match="at least one value"):
        trial.sweep("finetune", {"epochs": []})
    listed = trial.sweep(
        "finetune", [{"epochs": 2, "lr": 0.1}, {"epochs": 1, "lr": 0.01}], progress=False, batch_size=32
    )
    assert list(listed.index) == ["finetune epochs=2 lr=0.1", "finetune epochs=1 lr=0.01"], "the settings as listed"
    assert listed["epochs"].tolist() == [2, 1] and listed["lr"].tolist() == [0.1, 0.01]
    same = rows.loc["finetune epochs=2 lr=0.1"].drop("seconds")
    assert listed.loc["finetune epochs=2 lr=0.1"].drop("seconds").equals(same), "a listed setting is that run"
    with pytest.raises(ValueError, match="pbu unlearns class requests, not a .random. request"):
        Trial(setup.recipe, digits, random_forget(len(digits.train), count=30), progress=False).run("pbu")


def test_the_leaderboard_runs_each_applicable_method_on_each_request(tiny, isolated_root):
    setup, digits = tiny
    profile = TINY
    requests = {
        "random": random_forget(len(digits.train), fraction=0.1, seed=0),
        "class 1": class_forget(digits.train.labels, 1, digits.info),
    }
    rows = leaderboard.run(
        setup, digits, ["retrain", "finetune", "pbu"], requests=requests, hyperparameters={"finetune": {"epochs": 1}}
    )
    assert list(zip(rows["request"], rows["method"])) == [
        ("random", "original"),
        ("random", "retrain"),
        ("random", "finetune"),
        ("class 1", "original"),
        ("class 1", "retrain"),
        ("class 1", "finetune"),
        ("class 1", "pbu"),
    ]
    assert (rows["n_models"] == profile.n_models).all()
    assert rows[["unlearn_accuracy", "forgetting_quality", "seconds", "time_ratio"]].notna().all().all()
    table = leaderboard.table(rows)
    assert list(table.columns) == [
        "request",
        "method",
        "UA",
        "RA",
        "TA",
        "MIA U",
        "MIA-eff U",
        "gap",
        "avg gap",
        "F",
        "US",
        "seconds",
        "time ratio",
    ]

    csv_path, md_path = leaderboard.save(rows, isolated_root / "build", header="made by a test")
    assert pd.read_csv(csv_path).shape == rows.shape
    text = md_path.read_text()
    assert text.startswith("made by a test") and text.count("\n| ") == len(rows) + 1


def test_markdown_rounds_numbers_and_marks_missing_ones():
    frame = pd.DataFrame({"method": ["a"], "F": [0.12345], "US": [float("nan")]})
    assert leaderboard.markdown(frame) == "| method | F | US |\n|---|---|---|\n| a | 0.123 | – |\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--methods", "finetune,nope"], r"argument --methods: unknown method 'nope'; choose from retrain, eu_k"),
        (["--methods", " , "], "argument --methods: give at least one method"),
        (["--profile", "laptop"], r"argument --profile: invalid choice: 'laptop' \(choose from .*cpu.*gpu.*smoke"),
        (["--dataset", "svhn"], "argument --dataset: invalid choice: 'svhn'"),
        (["--repeats", "0"], "argument --repeats: must be at least 1, got 0"),
        (["--repeats", "three"], "argument --repeats: must be a whole number, got .three."),
        (["--n", "2"], "argument --n: must be at least 3, got 2"),
        (["--engine", "slurm"], "argument --engine: invalid choice: 'slurm'"),
        (
            ["--profile", "smoke", "--dataset", "digits", "--methods", "finetune, eu_k", "--out", "FILE"],
            "--out .* is a file",
        ),
    ],
)
def test_bad_arguments_are_one_line_errors_before_any_work(argv, message, capsys, monkeypatch, isolated_root):
    (isolated_root / "FILE").write_text("")
    argv = [str(isolated_root / "FILE") if a == "FILE" else a for a in argv]
    monkeypatch.setattr(leaderboard, "run", lambda *args, **kwargs: pytest.fail("the leaderboard ran"))
    with pytest.raises(SystemExit) as exit_info:
        leaderboard.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and re.search(message, err.strip().splitlines()[-1]), err


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("UNLEARN_PROFILE", "laptop", "unknown profile 'laptop'; choose one of cpu, gpu, smoke"),
        ("UNLEARN_DEVICE", "mps", "UNLEARN_DEVICE='mps' asked for, but PyTorch's MPS backend is not available"),
        ("UNLEARN_ROOT", "FILE", "the course folder .*FILE is a file"),
    ],
)
def test_a_bad_environment_is_a_one_line_error_too(variable, value, message, capsys, monkeypatch, isolated_root):
    (isolated_root / "FILE").write_text("")
    monkeypatch.setenv(variable, str(isolated_root / value) if value == "FILE" else value)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        leaderboard.main(["--dataset", "digits"])
    assert exit_info.value.code == 2 and re.search(message, capsys.readouterr().err.strip().splitlines()[-1])


def test_n_and_a_ray_engine_make_the_population_first_then_the_table_reads_it(capsys, monkeypatch, isolated_root):
    calls = []

    def fill(setup, requests, names, *, n, **options):
        calls.append(("fill", n, len(requests), names, options["engine"], options["gpus_per_model"]))
        return population.Report((), 1.0, options["engine"])

    def run(setup, data, names, repeats):
        calls.append(("run", setup.profile.n_models, names, repeats))
        return pd.DataFrame([dict.fromkeys(leaderboard.COLUMNS, 0.5) | {"request": "random 20%", "method": "original"}])

    monkeypatch.setattr(population, "fill", fill)
    monkeypatch.setattr(leaderboard, "run", run)
    argv = ["--profile", "smoke", "--dataset", "digits", "--methods", "finetune", "--n", "8", "--repeats", "2"]
    leaderboard.main([*argv, "--engine", "ray", "--gpus-per-model", "0.25"])
    assert calls == [("fill", 8, 4, ["finetune"], "ray", 0.25), ("run", 8, ["finetune"], 2)]
    assert (
        "8 models per method" in capsys.readouterr().out
        and "--repeats 2 --n 8 --engine ray" in (isolated_root / "build" / "leaderboard.md").read_text()
    )
    calls.clear()
    leaderboard.main(argv)
    assert calls == [("run", 8, ["finetune"], 2)], "the local engine leaves the models to the trials"


def test_the_help_lists_profiles_datasets_and_methods(capsys):
    with pytest.raises(SystemExit):
        leaderboard.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "{cpu,gpu,smoke}" in out and "digits" in out and "finetune, cf_k" in out


def test_the_python_api_checks_hyperparameter_names_before_any_training(tiny, monkeypatch):
    setup, digits = tiny
    monkeypatch.setattr(leaderboard, "Trial", lambda *args, **kwargs: pytest.fail("models were built"))
    with pytest.raises(TypeError, match="finetune has no hyperparameter lr_typo; it takes epochs, lr"):
        leaderboard.run(setup, digits, ["finetune"], hyperparameters={"finetune": {"lr_typo": 0.1}})
    with pytest.raises(ValueError, match="hyperparameters are given for 'eu_k', which is not among the methods run"):
        leaderboard.run(setup, digits, ["finetune"], hyperparameters={"eu_k": {"k": 2}})
    with pytest.raises(ValueError, match="unknown unlearning method 'nope'"):
        leaderboard.run(setup, digits, ["finetune", "nope"])
    other = random_forget(100, count=10)
    with pytest.raises(ValueError, match="request 'r' is for a training split of 100 examples, this data has 300"):
        leaderboard.run(setup, digits, ["finetune"], requests={"r": other})


def test_a_sweep_checks_its_grid_before_running():
    trial = Trial.__new__(Trial)  # no models: the checks come before any of them is used
    trial.request = random_forget(300, fraction=0.1, seed=0)
    with pytest.raises(TypeError, match="finetune has no hyperparameter epoch"):
        trial.sweep("finetune", {"epoch": [1, 2]})
    with pytest.raises(TypeError, match=r"grid\['lr'\] must be a list of values, got 0.1"):
        trial.sweep("finetune", {"lr": 0.1})
    with pytest.raises(TypeError, match="finetune has no hyperparameter epoch"):
        trial.sweep("finetune", [{"epoch": 2}])
    with pytest.raises(ValueError, match=r"the same hyperparameters in the same order: \['epochs', 'lr'\] then \['lr'"):
        trial.sweep("finetune", [{"epochs": 1, "lr": 0.1}, {"lr": 0.1, "epochs": 2}])
    with pytest.raises(ValueError, match="lr both swept and fixed"):
        trial.sweep("finetune", [{"lr": 0.1}], lr=0.2)
    with pytest.raises(ValueError, match="the list of settings is empty"):
        trial.sweep("finetune", [])
    with pytest.raises(TypeError, match="each listed setting must be a non-empty dict"):
        trial.sweep("finetune", [{"lr": 0.1}, 0.2])


def test_the_table_writes_each_measure_with_a_spread_as_mean_plus_or_minus_std():
    row = {column: 0.5 for column in leaderboard.COLUMNS} | {"request": "r", "method": "m", "test_accuracy_std": 0.0123}
    shown = leaderboard.table(pd.DataFrame([row]), digits=2)
    assert shown.loc[0, "TA"] == "0.50 ± 0.01", "a measure with its spread"
    assert shown.loc[0, "RA"] == 0.5, "a measure without one stays a number"


def test_repeated_requests_give_the_mean_and_the_spread_over_requests(tiny, isolated_root):
    setup, digits = tiny
    rows = leaderboard.run(setup, digits, ["finetune"], repeats=3, hyperparameters={"finetune": {"epochs": 1}})
    assert list(zip(rows["request"], rows["method"])) == [
        ("random 20% (3 seeds)", "original"),
        ("random 20% (3 seeds)", "finetune"),
        ("class (3 classes)", "original"),
        ("class (3 classes)", "finetune"),
    ]
    assert (rows["requests"] == 3).all()
    each = [
        Trial(setup.recipe, digits, random_forget(len(digits.train), fraction=0.2, seed=k), progress=False).run(
            "finetune", progress=False, epochs=1
        )
        for k in range(3)
    ]
    quality = [row["forgetting_quality"] for row in each]
    finetuned = rows.iloc[1]
    assert finetuned["forgetting_quality"] == pytest.approx(sum(quality) / 3)
    assert finetuned["forgetting_quality_std"] == pytest.approx(pd.Series(quality).std(ddof=1))
    assert "±" in leaderboard.table(rows, digits=3).loc[1, "F"]
    with pytest.raises(ValueError, match="^repeats draws the standard requests anew"):
        leaderboard.run(setup, digits, ["finetune"], requests={"r": random_forget(300, count=3)}, repeats=2)
