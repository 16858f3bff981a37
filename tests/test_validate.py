"""Argument checks: one helper for whole numbers, numbers, fractions and class ids, used across the package."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from unlearnlib import datasets, poisoning, unlearn, validate
from unlearnlib.batching import Augmentation
from unlearnlib.checkpoints import get_or_train_seeds
from unlearnlib.corrective import backdoored_pair
from unlearnlib.forget import ForgetRequest, class_forget, corrective_forget, random_forget
from unlearnlib.metrics import attack_success
from unlearnlib.mia import simple_mia
from unlearnlib.models import build_model
from unlearnlib.train import TrainConfig, fit


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3), torch.tensor(3), np.array(3)])
def test_whole_numbers_of_any_library_are_accepted(value):
    assert validate.integer("count", value) == 3 and type(validate.integer("count", value)) is int


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (2.5, TypeError, r"count must be a whole number, got 2.5 \(float\)"),
        (3.0, TypeError, "count must be a whole number, got 3.0"),
        (True, TypeError, "a bool is not a number here"),
        (np.bool_(False), TypeError, "a bool is not a number here"),
        ("3", TypeError, r"got '3' \(str\)"),
        (None, TypeError, "got None"),
        (torch.tensor(2.5), TypeError, "whole number"),
        (0, ValueError, r"count must be positive \(at least 1\), got 0"),
        (11, ValueError, r"count must be in 1..10, got 11"),
    ],
)
def test_what_is_not_a_whole_number_in_range_is_refused_naming_it(value, error, message):
    with pytest.raises(error, match=message):
        validate.integer("count", value, minimum=1, maximum=10 if value == 11 else None)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0.0, ValueError, "lr must be positive, got 0.0"),
        (-1, ValueError, "lr must be positive"),
        (float("nan"), ValueError, "lr must be a finite number, got nan"),
        (float("inf"), ValueError, "finite"),
        ("0.1", TypeError, r"lr must be a number, got '0.1' \(str\)"),
        (False, TypeError, "a bool is not a number"),
    ],
)
def test_positive_numbers(value, error, message):
    with pytest.raises(error, match=message):
        validate.positive("lr", value)
    assert validate.positive("lr", np.float32(0.5)) == 0.5 and validate.positive("lr", 2) == 2.0


def test_fractions_and_intervals_name_their_bounds():
    assert validate.fraction("share", 1) == 1.0
    with pytest.raises(ValueError, match=r"share must be in \(0, 1\], got 0.0"):
        validate.fraction("share", 0.0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), got 1.0"):
        validate.interval("momentum", 1.0, 0, 1, low_open=False, high_open=True)


def test_class_ids():
    assert validate.class_id("class", np.int64(9), 10) == 9
    with pytest.raises(ValueError, match=r"unknown class 10 for digits: classes are 0..9"):
        validate.class_id("class", 10, 10, dataset="digits")
    with pytest.raises(TypeError, match=r"class must be a class index .* got 3.7 \(float\)"):
        validate.class_id("class", 3.7, 10)


@pytest.fixture(scope="module")
def small():
    """Digits, an untrained tiny network and a random request: enough for checks that come before any work."""
    digits = datasets.load("digits", n_train=200, n_test=100, device="cpu")
    model = build_model("resnet9", num_classes=10, in_channels=1, width=2, seed=0)
    return digits, model, random_forget(200, count=20)


WRONG_NUMBERS = [
    ("count", lambda d, m, r: random_forget(100, count=2.5)),
    ("n_train", lambda d, m, r: random_forget(100.0, count=2)),
    ("seed", lambda d, m, r: random_forget(100, count=2, seed=1.5)),
    ("epochs", lambda d, m, r: TrainConfig(dataset="digits", epochs=2.5)),
    ("width", lambda d, m, r: TrainConfig(dataset="digits", width=2.5)),
    ("batch_size", lambda d, m, r: TrainConfig(dataset="digits", batch_size=True)),
    ("width", lambda d, m, r: build_model("resnet9", num_classes=10, in_channels=1, width=2.5)),
    ("k", lambda d, m, r: unlearn.eu_k(m, r, d, k=2.5)),
    ("k", lambda d, m, r: unlearn.cf_k(m, r, d, k=True)),
    ("epochs", lambda d, m, r: unlearn.finetune(m, r, d, epochs=2.5)),
    ("batch_size", lambda d, m, r: unlearn.finetune(m, r, d, batch_size=64.0)),
    ("hidden", lambda d, m, r: unlearn.adversarial(m, r, d, hidden=8.5)),
    ("max_iterations", lambda d, m, r: unlearn.influence(m, r, d, max_iterations=1.5)),
    ("lr", lambda d, m, r: unlearn.bad_teaching(m, r, d, lr="0.1")),
    ("class", lambda d, m, r: class_forget(d.train.labels, 3.7, d.info)),
    ("class", lambda d, m, r: class_forget(d.train.labels, True, d.info)),
    ("size", lambda d, m, r: corrective_forget(torch.arange(10), 100, size=2.5)),
    ("n_train", lambda d, m, r: datasets.load("digits", n_train=100.5, device="cpu")),
    ("count", lambda d, m, r: poisoning.poison(d, 2.5, 0)),
    ("poisons", lambda d, m, r: backdoored_pair(d, (3, 8), minority=8, ratio=1.0, poisons=2.5, minority_share=1)),
    ("crop_padding", lambda d, m, r: Augmentation(crop_padding=1.5)),
    ("batch_size", lambda d, m, r: next(d.batches(d.test, 2.5))),
    ("folds", lambda d, m, r: simple_mia([1.0] * 10, [2.0] * 10, folds=2.5)),
    ("target_class", lambda d, m, r: ForgetRequest("class", torch.arange(3), 10, target_class=2.5)),
    (
        "targets",
        lambda d, m, r: attack_success(torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), {0.5: 1}),
    ),
]


@pytest.mark.parametrize(
    ("name", "call"), WRONG_NUMBERS, ids=[f"{i}-{name}" for i, (name, _) in enumerate(WRONG_NUMBERS)]
)
def test_numbers_of_the_wrong_kind_are_refused_naming_the_argument(small, name, call):
    with pytest.raises(TypeError, match=name):
        call(*small)


def test_a_class_given_as_a_bool_or_a_float_is_never_rounded(digits):
    for cls in (True, 3.7, np.float64(3.0)):
        with pytest.raises(TypeError, match="class index"):
            digits.info.class_index(cls)
    assert digits.info.class_index(np.int64(3)) == digits.info.class_index(torch.tensor(3)) == 3


def test_training_configs_check_kinds_too():
    with pytest.raises(TypeError, match="augment must be True or False"):
        TrainConfig(dataset="digits", augment="no")
    with pytest.raises(TypeError, match="lr must be a number"):
        dataclasses.replace(TrainConfig(dataset="digits"), lr="0.1")


def test_other_mistakes_a_user_makes_get_named_errors(small):
    digits, model, _ = small
    config = TrainConfig(dataset="digits", arch="resnet9", width=2, epochs=1, batch_size=64)
    with pytest.raises(TypeError, match="seeds must be a list"):
        get_or_train_seeds(config, digits, 3)
    with pytest.raises(ValueError, match="seeds is empty"):
        get_or_train_seeds(config, digits, [])
    with pytest.raises(ValueError, match=r"classes must be a pair of classes .*got \(3,\)"):
        poisoning.class_pair(digits, (3,), minority=3)
    with pytest.raises(TypeError, match="config must be a TrainConfig, got NoneType"):
        fit(model, digits, None)
    with pytest.raises(ValueError, match="training needs at least 2 examples"):
        fit(model, digits, config, torch.tensor([5]))
    with pytest.raises(TypeError, match="model must be a network"):
        unlearn.finetune(None, random_forget(200, count=20), digits)
    with pytest.raises(TypeError, match="finetune needs a ForgetRequest as its request, got Tensor"):
        unlearn.finetune(model, torch.arange(3), digits)
