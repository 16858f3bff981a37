"""The small cases on which notebooks check their hand-written methods against the library's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnlib import forget, teaching


def test_a_small_case_keeps_the_requests_kind_and_proportion_on_the_cpu(digits):
    request = forget.random_forget(len(digits.train), fraction=0.2, seed=3)
    small, small_request = teaching.small_case(digits, request, n_train=100, n_held_out=20)
    assert len(small.train) == 100 and len(small.test) == 20 and small.device.type == "cpu"
    assert (small_request.kind, small_request.seed, len(small_request), small_request.n_train) == ("random", 3, 20, 100)
    chosen = small.train_ids[small_request.forget]
    assert set(chosen.tolist()) <= set(digits.train_ids[request.forget].tolist()), "what it forgets was forgotten"
    kept = small.train_ids[small_request.retain]
    assert not set(kept.tolist()) & set(digits.train_ids[request.forget].tolist())
    assert torch.equal(small.train.images[0], digits.train.images[small.train_ids[0] == digits.train_ids][0])


def test_a_small_class_request_forgets_every_example_of_its_class(digits):
    request = forget.class_forget(digits.train.labels, 3, digits.info)
    small, small_request = teaching.small_case(digits, request, n_train=60)
    assert small_request.target_class == 3
    assert torch.equal(small_request.forget, (small.train.labels == 3).nonzero().squeeze(1))
    assert 0 < len(small_request) < 60


def test_a_small_case_is_the_same_for_the_same_seed_and_differs_for_another(digits):
    request = forget.random_forget(len(digits.train), fraction=0.1, seed=0)
    ids = [teaching.small_case(digits, request, n_train=50, seed=s)[0].train_ids for s in (0, 0, 1)]
    assert torch.equal(ids[0], ids[1]) and not torch.equal(ids[0], ids[2])


def test_a_small_case_refuses_a_request_for_other_data(digits):
    with pytest.raises(ValueError, match="training split of 10 examples"):
        teaching.small_case(digits, forget.random_forget(10, count=2))


def test_largest_difference_is_the_largest_change_of_any_weight_or_statistic():
    a = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    b = teaching.on_cpu(a)
    assert teaching.largest_difference(a, b) == 0.0
    with torch.no_grad():
        b[0].weight[1, 2] += 0.25
        b[1].running_mean[0] -= 0.5
    assert teaching.largest_difference(a, b) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="differ in their tensors"):
        teaching.largest_difference(a, nn.Sequential(nn.Linear(3, 2)))
