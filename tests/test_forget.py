import pytest
import torch

from unlearnlib.forget import ForgetRequest, class_forget, random_forget


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
