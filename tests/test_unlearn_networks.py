"""How the unlearning methods handle networks (unlearnlib.unlearn.networks), each against a known answer."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from unlearnlib.models import ResNet9, blocks
from unlearnlib.unlearn.networks import (
    distance_squared,
    frozen_copy,
    last_blocks,
    parameters_of,
    reinitialise,
    train_only,
    working_copy,
)


def test_copies_leave_the_original_alone_and_set_what_they_promise():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    working = working_copy(model)
    assert working is not model and all(p.requires_grad for p in working.parameters())
    assert not any(p.requires_grad for p in model.parameters()), "the original keeps its gradients off"
    model.train().requires_grad_(True)
    frozen = frozen_copy(model)
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert model.training and all(p.requires_grad for p in model.parameters()), "the original keeps its mode"
    for copied in (working, frozen):
        owned = {p.data_ptr() for p in model.parameters()}
        assert not owned & {p.data_ptr() for p in copied.parameters()}, "a copy shares no weights with the original"


def test_only_the_trainable_blocks_get_gradients_and_train_mode():
    model = ResNet9(num_classes=10, in_channels=1, width=2)
    head = last_blocks(model, 2)
    parameters = train_only(model, head)
    assert {id(p) for p in parameters} == {id(p) for block in head for p in block.parameters()}
    for p in model.parameters():
        assert p.requires_grad == (id(p) in {id(q) for q in parameters})
    first = blocks(model)[0][1]
    assert not first.training and all(block.training for block in head)
    everything = train_only(model, None)
    assert len(everything) == len(list(model.parameters())) and model.training


def test_the_last_blocks_are_counted_from_the_end_within_the_network():
    model = ResNet9(num_classes=10, in_channels=1, width=2)  # 7 blocks
    assert last_blocks(model, 1) == [model.fc] and len(last_blocks(model, 7)) == 7
    for k in (0, 8):
        with pytest.raises(
            ValueError, match=f"^{re.escape(f'k must be in 1..7 for this network of 7 blocks, got {k}')}$"
        ):
            last_blocks(model, k)
    with pytest.raises(TypeError, match=r"^k must be a whole number, got '2' \(str\)$"):
        last_blocks(model, "2")


def test_batch_norm_statistics_and_weights_are_redrawn_by_the_seed():
    def redrawn(seed: int) -> nn.Module:
        block = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        block[1].running_mean.fill_(5.0)
        block[1].running_var.fill_(7.0)
        reinitialise([block], seed)
        return block

    block = redrawn(3)
    assert torch.equal(block[1].running_mean, torch.zeros(4)) and torch.equal(block[1].running_var, torch.ones(4))
    torch.manual_seed(0)
    again = redrawn(3)
    torch.manual_seed(1)
    assert torch.equal(block[0].weight, again[0].weight) and not torch.equal(block[0].weight, redrawn(4)[0].weight)


def test_the_squared_distance_is_weighted_and_stays_on_the_models_device():
    model = nn.Linear(2, 1)
    reference = {"weight": torch.tensor([[1.0, -1.0]]), "bias": torch.tensor([1.0])}
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, 1.0]]))
        model.bias.fill_(4.0)
    assert set(parameters_of(model)) == set(reference)
    assert distance_squared(model, reference).item() == pytest.approx(1 + 4 + 9)
    weights = {"weight": torch.tensor([[2.0, 0.5]]), "bias": torch.tensor([0.0])}
    assert distance_squared(model, reference, weights).item() == pytest.approx(2 + 2)
    model.bias.requires_grad_(False)
    assert distance_squared(model, reference).item() == pytest.approx(1 + 4), "frozen parameters are left out"
    on_meta = nn.Linear(2, 1, device="meta").requires_grad_(False)
    assert distance_squared(on_meta, {}).device.type == "meta"
