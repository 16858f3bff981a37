"""The leaderboard: every method on the same requests, one row each, saved as CSV and Markdown."""

from __future__ import annotations

import dataclasses

import pandas as pd
import torch

from unlearnlib import config, leaderboard
from unlearnlib import data as data_module
from unlearnlib.forget import class_forget, random_forget
from unlearnlib.session import Session


def test_the_leaderboard_runs_each_applicable_method_on_each_request(isolated_root):
    digits = data_module.load("digits", n_train=300, n_test=200, device="cpu")
    profile = dataclasses.replace(config.PROFILES["smoke"], arch="resnet9", width=4, epochs=2, batch_size=64)
    setup = Session(profile, "digits", torch.device("cpu"), 0)
    requests = {
        "random": random_forget(len(digits.train), fraction=0.1, seed=0),
        "class 1": class_forget(digits.train.labels, 1, digits.info),
    }
    rows = leaderboard.run(
        setup, digits, ["retrain", "finetune", "pbu"], requests=requests, hyperparameters={"finetune": {"epochs": 1}}
    )
    assert list(zip(rows["request"], rows["method"])) == [
        ("random", "retrain"),
        ("random", "finetune"),
        ("class 1", "retrain"),
        ("class 1", "finetune"),
        ("class 1", "pbu"),
    ]
    assert (rows["n_models"] == profile.n_models).all()
    assert rows[["unlearn_accuracy", "forgetting_quality", "seconds", "time_ratio"]].notna().all().all()
    table = leaderboard.table(rows)
    assert list(table.columns) == list(leaderboard.COLUMNS.values())

    csv_path, md_path = leaderboard.save(rows, isolated_root / "build", header="made by a test")
    assert pd.read_csv(csv_path).shape == rows.shape
    text = md_path.read_text()
    assert text.startswith("made by a test") and text.count("\n| ") == len(rows) + 1


def test_markdown_rounds_numbers_and_marks_missing_ones():
    frame = pd.DataFrame({"method": ["a"], "F": [0.12345], "US": [float("nan")]})
    assert leaderboard.markdown(frame) == "| method | F | US |\n|---|---|---|\n| a | 0.123 | – |\n"
