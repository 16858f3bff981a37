import re

import numpy as np
import pytest
import torch

from unlearnlib import datasets
from unlearnlib.batching import Augmentation
from unlearnlib.forget import ForgetRequest, class_forget, corrective_forget, random_forget, standard_requests
from unlearnlib.imagedata import DatasetInfo


def test_random_forget_is_fixed_by_the_seed():
    a, b, c = (random_forget(100, count=10, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.forget, b.forget) and not torch.equal(a.forget, c.forget)
    assert a.kind == "random" and a.seed == 1


def test_random_forget_sizes():
    assert len(random_forget(100, count=7)) == 7
    assert len(random_forget(1000, fraction=0.1)) == 100
    assert len(random_forget(10, fraction=0.01)) == 1, "a positive fraction forgets at least one example"


def test_forget_and_retain_partition_the_training_set():
    request = random_forget(50, fraction=0.2, seed=3)
    forget, retain = set(request.forget.tolist()), set(request.retain.tolist())
    assert not forget & retain and forget | retain == set(range(50))
    assert request.retain.tolist() == sorted(retain)


def test_class_forget_takes_every_example_of_the_class_and_nothing_else(digits):
    request = class_forget(digits.train.labels, "3", digits.info)
    labels = digits.train.labels
    assert (labels[request.forget] == 3).all()
    assert (labels[request.retain] != 3).all()
    assert len(request) == (labels == 3).sum()
    assert request.kind == "class" and request.target_class == 3
    assert torch.equal(class_forget(labels, 3, digits.info).forget, request.forget)


@pytest.mark.parametrize("cls", ["cat", 10, -1])
def test_unknown_classes_are_refused(digits, cls):
    with pytest.raises(ValueError, match="unknown class"):
        class_forget(digits.train.labels, cls, digits.info)


def test_a_class_absent_from_the_split_is_refused(digits):
    labels = digits.train.labels.clone()
    labels[labels == 5] = 4
    with pytest.raises(ValueError, match="no examples"):
        class_forget(labels, 5, digits.info)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(), "exactly one"),
        (dict(fraction=0.1, count=3), "exactly one"),
        (dict(fraction=0.0), "fraction"),
        (dict(fraction=1.0), "fraction"),
        (dict(count=0), "count"),
        (dict(count=20), "count"),
    ],
)
def test_bad_random_requests_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        random_forget(20, **options)


@pytest.mark.parametrize(
    ("forget", "message"),
    [
        ([], "empty"),
        ([1, 1, 2], "duplicated"),
        ([3, 20], "out of range"),
        ([0, 1, 2, 3], "whole training set"),
    ],
)
def test_bad_forget_indices_are_refused(forget, message):
    with pytest.raises(ValueError, match=message):
        ForgetRequest("random", torch.tensor(forget, dtype=torch.long), n_train=4 if len(forget) == 4 else 10)


def test_a_request_of_an_unknown_kind_is_refused_when_made():
    with pytest.raises(ValueError, match="unknown request kind 'banana'; choose one of random, class, corrective"):
        ForgetRequest("banana", torch.tensor([1, 2]), n_train=10)


def test_a_class_request_must_name_its_class():
    with pytest.raises(ValueError, match="a class request must name its class"):
        ForgetRequest("class", torch.tensor([1, 2]), n_train=10)


def test_the_registry_takes_its_request_kinds_from_the_requests():
    from unlearnlib.forget import REQUEST_KINDS
    from unlearnlib.unlearn import registry

    assert registry.REQUEST_KINDS is REQUEST_KINDS


@pytest.mark.parametrize(("size", "clean_fraction"), [(10, 0.0), (10, 0.2), (12, 0.3), (15, 0.4), (7, 0.4)])
def test_a_deletion_set_has_exactly_the_size_and_clean_fraction_asked_for(size, clean_fraction):
    poisoned = torch.arange(0, 100, 5)  # 20 poisons among 100
    request = corrective_forget(poisoned, 100, size=size, clean_fraction=clean_fraction, seed=3)
    flagged_poisons = torch.isin(request.forget, poisoned).sum().item()
    assert request.kind == "corrective" and len(request) == size
    assert len(request) - flagged_poisons == round(clean_fraction * size)


def test_with_a_found_fraction_the_deletion_set_holds_that_share_of_poisons_nested():
    poisoned = torch.arange(0, 100, 5)
    sets = {f: corrective_forget(poisoned, 100, found=f, seed=0).forget for f in (0.25, 0.5, 1.0)}
    for found, flagged in sets.items():
        assert torch.isin(flagged, poisoned).all() and len(flagged) == round(found * 20)
    assert set(sets[0.25].tolist()) < set(sets[0.5].tolist()) < set(sets[1.0].tolist())
    mixed = corrective_forget(poisoned, 100, found=0.5, clean_fraction=0.375, seed=0).forget
    assert torch.isin(mixed, poisoned).sum() == 10 and len(mixed) == 16  # 10 poisons, 10·0.375/0.625 = 6 clean


def test_bad_deletion_sets_are_refused_with_a_clear_message():
    poisoned = torch.arange(0, 100, 5)
    with pytest.raises(ValueError, match=r"clean_fraction must be in \[0, 1\)"):
        corrective_forget(poisoned, 100, clean_fraction=1.2)
    with pytest.raises(ValueError, match="clean_fraction must be"):
        corrective_forget(poisoned, 100, clean_fraction=-0.1)
    with pytest.raises(ValueError, match=r"found must be in \(0, 1\]"):
        corrective_forget(poisoned, 100, found=1.5)
    with pytest.raises(ValueError, match="holds 30 poisons, but only 20 were planted"):
        corrective_forget(poisoned, 100, size=30)
    with pytest.raises(ValueError, match="not both"):
        corrective_forget(poisoned, 100, size=5, found=0.5)
    with pytest.raises(ValueError, match="only 2 examples are clean"):
        corrective_forget(torch.arange(18), 20, clean_fraction=0.5)


INFO = DatasetInfo("toy", ("a", "b", "c"), 1, 8, Augmentation())
POISONED = torch.arange(0, 100, 5)  # 20 poisons among 100
SEED_RANGE = "seed must be in 0..4294967295, got -1"
NOT_LABELS = "labels must be the training split's class labels (a 1-d integer tensor), got "


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: random_forget(20, count=5, seed=-1), SEED_RANGE),
        (lambda: random_forget(1, count=1), "n_train must be at least 2, got 1"),
        (lambda: random_forget(20, fraction=1.0), "fraction must be in (0, 1), got 1.0"),
        (lambda: random_forget(20, fraction=1.5), "fraction must be in (0, 1), got 1.5"),
        (lambda: random_forget(20, fraction=0.5, count=3), "give exactly one of fraction and count"),
        (lambda: random_forget(20, count=20), "count must be in 1..19 for 20 training examples, got 20"),
        (lambda: random_forget(20, count=2.5), "count must be a whole number, got 2.5 (float)"),
        (lambda: random_forget(20, fraction=0.99), "fraction 0.99 of 20 training examples would forget all of them"),
        (lambda: ForgetRequest("random", torch.tensor([1]), 0), "n_train must be positive (at least 1), got 0"),
        (lambda: ForgetRequest("random", torch.tensor([1]), 10, seed=-1), SEED_RANGE),
        (lambda: ForgetRequest("class", torch.tensor([1]), 10, target_class=-1), "target_class must be >= 0, got -1"),
        (
            lambda: ForgetRequest("class", torch.tensor([1]), 10),
            "a class request must name its class: give target_class",
        ),
        (
            lambda: ForgetRequest("random", torch.arange(4), 4),
            "the forget set covers the whole training set: nothing would be retained",
        ),
        (lambda: corrective_forget(POISONED, 0), "n_train must be positive (at least 1), got 0"),
        (
            lambda: corrective_forget(torch.tensor([0]), 1),
            "the forget set covers the whole training set: nothing would be retained",
        ),
        (lambda: corrective_forget(POISONED, 100, seed=-1), SEED_RANGE),
        (lambda: corrective_forget(POISONED, 100, size=0), "size must be positive (at least 1), got 0"),
        (lambda: corrective_forget(POISONED, 100, size=3, found=0.5), "give found or size, not both"),
        (lambda: corrective_forget(POISONED, 100, clean_fraction=1.0), "clean_fraction must be in [0, 1), got 1.0"),
        (lambda: corrective_forget(POISONED, 100, found=0.0), "found must be in (0, 1], got 0.0"),
        (
            lambda: class_forget(torch.zeros(2, 2, dtype=torch.long), 0, INFO),
            NOT_LABELS + "torch.int64 of shape (2, 2)",
        ),
        (
            lambda: class_forget(torch.tensor([0.0, 1.0]), 0, INFO),
            NOT_LABELS + "torch.float32 of shape (2,)",
        ),
        (
            lambda: class_forget(torch.tensor([True, False]), 0, INFO),
            NOT_LABELS + "torch.bool of shape (2,)",
        ),
        (
            lambda: class_forget(torch.tensor([0j, 1j]), 0, INFO),
            NOT_LABELS + "torch.complex64 of shape (2,)",
        ),
    ],
)
def test_each_refusal_names_the_argument_the_value_and_what_is_allowed(call, message):
    with pytest.raises((ValueError, TypeError), match=f"^{re.escape(message)}$"):
        call()


def test_a_request_holds_its_fields_as_plain_numbers_and_its_indices_sorted():
    request = ForgetRequest(
        "class", torch.tensor([7, 1, 3]), np.int64(10), seed=np.int64(4), target_class=torch.tensor(2)
    )
    assert request.forget.tolist() == [1, 3, 7] and request.forget.dtype == torch.int64
    assert (type(request.n_train), type(request.seed), type(request.target_class)) == (int, int, int)
    assert (request.n_train, request.seed, request.target_class) == (10, 4, 2)


def test_a_request_describes_itself():
    assert random_forget(100, count=10, seed=1).describe() == "forget 10 of 100 training examples: random (seed 1)"
    request = ForgetRequest("class", torch.tensor([0, 5]), 10, target_class=3)
    assert request.describe() == "forget 2 of 10 training examples: class 3"


def test_the_default_seed_is_0_and_the_smallest_random_request_is_one_of_two():
    assert torch.equal(random_forget(100, count=10).forget, random_forget(100, count=10, seed=0).forget)
    assert torch.equal(
        corrective_forget(POISONED, 100, found=0.5).forget, corrective_forget(POISONED, 100, found=0.5, seed=0).forget
    )
    assert len(random_forget(2, count=1)) == 1


def test_a_deletion_set_at_the_limits_of_what_was_planted():
    everything = corrective_forget(POISONED, 100, size=20, seed=3)
    assert everything.forget.tolist() == POISONED.tolist(), "a deletion set as large as the poisons holds them all"
    assert len(corrective_forget(POISONED, 100, size=1)) == 1
    assert len(corrective_forget(POISONED, 100, found=0.01)) == 1, "a positive share finds at least one poison"
    every_clean = corrective_forget(torch.arange(18), 20, size=4, clean_fraction=0.5).forget
    assert every_clean.tolist()[-2:] == [18, 19], "as many clean false positives as there are clean examples"


def test_with_no_share_given_every_poison_is_found_and_clean_ones_join_in_proportion():
    request = corrective_forget(POISONED, 100, clean_fraction=0.2, seed=5)
    assert torch.isin(request.forget, POISONED).sum() == 20 and len(request) == 25  # 20 poisons, 20·0.2/0.8 clean
    assert request.kind == "corrective" and request.seed == 5


def test_the_clean_false_positives_are_drawn_from_the_seed():
    first, second, other = (corrective_forget(POISONED, 100, size=10, clean_fraction=0.5, seed=s) for s in (2, 2, 3))
    assert torch.equal(first.forget, second.forget) and not torch.equal(first.forget, other.forget)
    clean = [request.forget[~torch.isin(request.forget, POISONED)] for request in (first, other)]
    assert not torch.equal(*clean), "the clean examples, not only the poisons, follow the seed"


def test_a_request_must_fit_the_data_it_is_for():
    small = datasets.load("digits", n_train=40, n_test=10, device="cpu")
    class_forget(small.train.labels, 0, small.info).check_fits(small)
    class_forget(small.train.labels, 9, small.info).check_fits(small)
    for request, message in (
        (
            ForgetRequest("class", torch.tensor([0]), 40, target_class=10),
            "class 10 does not exist in digits (classes 0..9)",
        ),
        (
            ForgetRequest("random", torch.tensor([0]), 41),
            "the request is for a training split of 41 examples, this data has 40",
        ),
    ):
        with pytest.raises(ValueError) as raised:
            request.check_fits(small)
        assert str(raised.value) == message


def test_the_standard_requests_are_a_random_fifth_and_class_zero():
    data = datasets.load("digits", n_train=100, n_test=10, device="cpu")
    requests = standard_requests(data)
    assert requests.random.kind == "random" and len(requests.random) == 20 and requests.random.seed == 0
    assert requests.whole_class.kind == "class" and requests.whole_class.target_class == 0
    assert torch.equal(requests.whole_class.forget, (data.train.labels == 0).nonzero().squeeze(1))
    assert requests.labelled() == {"random 20%": requests.random, "class 0": requests.whole_class}
