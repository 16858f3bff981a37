"""Property-based tests of the forget requests and the measures' inputs: whatever a user passes, the result is
valid or the error is a ValueError or TypeError that names the argument at fault."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from unlearnlib.batching import Augmentation
from unlearnlib.forget import REQUEST_KINDS, ForgetRequest, class_forget, corrective_forget, random_forget
from unlearnlib.forgetting_quality import epsilon_from_rates, forgetting_quality, unlearning_score
from unlearnlib.imagedata import DatasetInfo
from unlearnlib.metrics import attack_success
from unlearnlib.mia import mia_efficacy, simple_mia

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Anything a user might pass where a number is expected.
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.text(max_size=3),
    st.lists(st.integers(0, 3), max_size=2),
    st.integers(0, 50).map(np.int64),
    st.floats(-2, 2).map(np.float64),
    st.integers(0, 50).map(torch.tensor),
)
fractions = st.one_of(st.floats(-0.5, 1.5), anything)


def refused_clearly(error: Exception, names: list[str]) -> bool:
    """A ValueError or TypeError whose message names one of ``names``."""
    return isinstance(error, ValueError | TypeError) and any(re.search(rf"\b{n}\b", str(error)) for n in names)


def outcome(call, names: list[str]):
    try:
        return call()
    except Exception as error:  # noqa: BLE001 - the property is about which errors come out
        assert refused_clearly(error, names), f"{type(error).__name__}: {error}"
        return None


@FAST
@given(n_train=anything, fraction=st.one_of(st.none(), fractions), count=st.one_of(st.none(), anything), seed=anything)
def test_random_forget(n_train, fraction, count, seed):
    request = outcome(
        lambda: random_forget(n_train, fraction=fraction, count=count, seed=seed),
        ["n_train", "fraction", "count", "seed"],
    )
    if request is not None:
        assert 0 < len(request) < request.n_train and len(request.retain) + len(request) == request.n_train


INFO = DatasetInfo("toy", ("a", "b", "c"), 1, 8, Augmentation())


@FAST
@given(labels=st.lists(st.integers(-1, 4), max_size=20), cls=st.one_of(anything, st.sampled_from(["a", "c", "z"])))
def test_class_forget(labels, cls):
    request = outcome(
        lambda: class_forget(torch.tensor(labels, dtype=torch.long), cls, INFO), ["class", "labels", "forget"]
    )
    if request is not None:
        assert request.kind == "class" and (torch.tensor(labels)[request.forget] == request.target_class).all()


@FAST
@given(
    poisoned=st.lists(st.integers(-2, 40), max_size=12),
    n_train=anything,
    found=st.one_of(st.none(), fractions),
    size=st.one_of(st.none(), anything),
    clean_fraction=fractions,
    seed=anything,
)
def test_corrective_forget(poisoned, n_train, found, size, clean_fraction, seed):
    names = ["poisoned", "n_train", "found", "size", "clean_fraction", "seed", "clean", "forget", "planted", "whole"]
    request = outcome(
        lambda: corrective_forget(
            torch.tensor(poisoned, dtype=torch.long),
            n_train,
            found=found,
            size=size,
            clean_fraction=clean_fraction,
            seed=seed,
        ),
        names,
    )
    if request is not None:
        assert request.kind == "corrective" and len(request) >= 1


@FAST
@given(
    kind=st.one_of(st.sampled_from(REQUEST_KINDS), st.text(max_size=5), st.none()),
    forget=st.lists(st.integers(-2, 12), max_size=12),
    n_train=anything,
    seed=st.one_of(st.none(), anything),
    target_class=st.one_of(st.none(), anything),
)
def test_forget_request(kind, forget, n_train, seed, target_class):
    names = ["kind", "forget", "n_train", "seed", "target_class", "class", "whole"]
    request = outcome(
        lambda: ForgetRequest(kind, torch.tensor(forget, dtype=torch.long), n_train, seed, target_class), names
    )
    if request is not None:
        assert request.kind in REQUEST_KINDS and len(request.retain) + len(request) == request.n_train


samples = st.one_of(
    st.lists(st.floats(-1e6, 1e6), max_size=30),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=8),
    st.lists(st.lists(st.floats(-5, 5), min_size=2, max_size=2), max_size=4),
    anything,
)


@SLOW
@given(members=samples, nonmembers=samples, folds=st.one_of(st.integers(-1, 6), anything), seed=anything)
def test_simple_mia(members, nonmembers, folds, seed):
    value = outcome(
        lambda: simple_mia(members, nonmembers, folds=folds, seed=seed), ["members", "nonmembers", "folds", "seed"]
    )
    if value is not None:
        assert 0 <= value <= 1


@SLOW
@given(retain=samples, test=samples, forget=samples, seed=anything)
def test_mia_efficacy(retain, test, forget, seed):
    value = outcome(lambda: mia_efficacy(retain, test, forget, seed=seed), ["retain", "test", "forget", "seed"])
    if value is not None:
        assert 0 <= value <= 1


rates = st.one_of(st.floats(-0.5, 1.5), st.lists(st.floats(0, 1), min_size=1, max_size=3), anything)


@FAST
@given(fpr=rates, fnr=rates, delta=st.one_of(st.floats(-0.1, 1.1), anything))
def test_epsilon_from_rates(fpr, fnr, delta):
    value = outcome(lambda: epsilon_from_rates(fpr, fnr, delta), ["fpr", "fnr", "delta"])
    if value is not None:
        finite = np.asarray(value)[np.isfinite(value)]
        assert (finite >= 0).all()


@SLOW
@given(
    n_models=st.integers(1, 4),
    n_examples=st.integers(0, 3),
    values=st.floats(-50, 50),
    spoil=st.sampled_from([None, "nan", "shape", "text"]),
)
def test_forgetting_quality(n_models, n_examples, values, spoil):
    rng = np.random.default_rng(0)
    unlearned = rng.normal(values, 1, (n_models, n_examples))
    retrained = rng.normal(0, 1, (n_models, n_examples))
    if spoil == "nan" and unlearned.size:
        unlearned[0, 0] = np.nan
    elif spoil == "shape":
        retrained = retrained[:, :-1] if n_examples else retrained[:-1]
    elif spoil == "text":
        retrained = "retrained"
    result = outcome(lambda: forgetting_quality(unlearned, retrained), ["unlearned", "retrained", "N", "examples"])
    if result is not None:
        assert 0 <= result.value <= 1


@FAST
@given(scores=st.lists(st.one_of(st.floats(-0.5, 1.5), anything), min_size=5, max_size=5))
def test_unlearning_score(scores):
    names = ["forgetting", "retain_unlearned", "retain_retrained", "test_unlearned", "test_retrained"]
    value = outcome(lambda: unlearning_score(*scores), names)
    if value is not None:
        assert 0 <= value


@FAST
@given(
    predictions=st.lists(st.integers(-1, 3), max_size=8),
    labels=st.lists(st.integers(-1, 3), max_size=8),
    targets=st.one_of(st.dictionaries(st.integers(-1, 4), st.integers(-1, 4), max_size=3), anything),
)
@example(predictions=[0], labels=[0], targets={1: 0})  # found in a random-order run: the message named no argument
def test_attack_success(predictions, labels, targets):
    value = outcome(
        lambda: attack_success(
            torch.tensor(predictions, dtype=torch.long), torch.tensor(labels, dtype=torch.long), targets
        ),
        ["predictions", "labels", "targets"],
    )
    if value is not None:
        assert 0 <= value <= 1


@pytest.mark.parametrize("value", [0.5, True, "x"])
def test_helper_recognises_a_clear_refusal(value):
    assert refused_clearly(TypeError(f"count must be a whole number, got {value!r}"), ["count"])
    assert not refused_clearly(IndexError("count"), ["count"])
