"""The training the unlearning methods share (unlearnlib.unlearn.training), each against a known answer."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unlearnlib import datasets
from unlearnlib.guard import Diverged
from unlearnlib.models import ResNet9
from unlearnlib.unlearn.networks import working_copy
from unlearnlib.unlearn.training import (
    batches_per_epoch,
    cycle,
    diagonal_fisher,
    distillation_loss,
    fine_tune,
    subsample,
)


@pytest.fixture(scope="module")
def small():
    return datasets.load("digits", n_train=40, n_test=10, device="cpu")


def linear() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def test_a_subsample_is_a_seeded_share_of_at_least_one():
    indices = torch.arange(100, 140)
    torch.manual_seed(0)
    picked = subsample(indices, 0.25, seed=2)
    torch.manual_seed(1)
    assert torch.equal(picked, subsample(indices, 0.25, seed=2)), "the seed alone decides"
    assert len(picked) == 10 and torch.equal(picked, picked.sort().values) and torch.isin(picked, indices).all()
    assert not torch.equal(picked, subsample(indices, 0.25, seed=3))
    assert len(subsample(indices, 0.01, seed=0)) == 1 and len(subsample(indices, 1.0, seed=0)) == 40
    with pytest.raises(ValueError, match=f"^{re.escape('fraction must be in (0, 1], got 0.0')}$"):
        subsample(indices, 0.0, 0)
    with pytest.raises(ValueError, match=f"^{re.escape('seed must be in 0..4294967295, got -1')}$"):
        subsample(indices, 0.5, -1)


def test_batches_per_epoch_round_up_and_never_vanish():
    assert [batches_per_epoch(n, 32) for n in (0, 1, 32, 33, 64, 65)] == [1, 1, 1, 2, 2, 3]


def test_cycle_reshuffles_at_every_pass_with_its_own_generator(small):
    split = small.train.subset(torch.arange(8))

    def labels(seed: int, passes: int = 2) -> list[list[int]]:
        batches = cycle(small, split, 4, torch.Generator().manual_seed(seed))
        flat = [int(v) for _ in range(2 * passes) for v in next(batches)[1]]
        return [flat[i : i + 8] for i in range(0, len(flat), 8)]

    torch.manual_seed(0)
    first = labels(5)
    torch.manual_seed(1)
    assert labels(5) == first, "the generator alone decides the order"
    in_order = split.labels.tolist()
    assert all(sorted(p) == sorted(in_order) for p in first), "every pass is the whole split"
    assert first[0] != in_order and first[0] != first[1], "shuffled, and reshuffled"


def test_distillation_uses_the_class_dimension_and_temperature_one_by_default():
    student = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 1.0]])
    teacher = torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    p, log_q = F.softmax(teacher, 1), F.log_softmax(student, 1)
    expected = (p * (p.log() - log_q)).sum(1).mean()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an implicit softmax dimension warns
        assert distillation_loss(student, teacher).item() == pytest.approx(expected.item(), rel=1e-6)


def _sgd_by_hand(model: nn.Module, x, y, *, lr: float, momentum: float, weight_decay: float, steps: int, penalty=None):
    """torch's SGD written out: d = g + wd·θ, b ← μ·b + d, θ ← θ − lr·(d + μ·b) (Nesterov), on the full batch."""
    buffers = {}
    for _ in range(steps):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        (loss + penalty(model) if penalty is not None else loss).backward()
        with torch.no_grad():
            for name, p in model.named_parameters():
                d = p.grad + weight_decay * p
                buffers[name] = d.clone() if name not in buffers else momentum * buffers[name] + d
                p -= lr * (d + momentum * buffers[name] if momentum else d)
    return model


def check_full_batch_fine_tuning_is_sgd(model, data, *, steps: int, by_hand: dict, penalty=None, **given):
    """fine_tune on the first 40 examples in one batch at a constant rate against :func:`_sgd_by_hand` with the
    momentum and weight decay ``by_hand`` (what ``given``, the options fine_tune gets, amount to)."""
    x, y = next(iter(data.batches(data.train, 40)))
    expected = _sgd_by_hand(working_copy(model), x, y, lr=0.1, steps=steps, penalty=penalty, **by_hand)
    tuned = fine_tune(
        working_copy(model),
        data,
        torch.arange(40),
        epochs=steps,
        lr=0.1,
        batch_size=40,
        schedule="constant",
        penalty=penalty,
        progress=False,
        **given,
    )
    assert not tuned.training
    for (name, found), (_, wanted) in zip(tuned.named_parameters(), expected.named_parameters()):
        torch.testing.assert_close(found, wanted, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    "momentum, weight_decay", [(0.0, 0.0), (0.5, 0.1), (None, None)], ids=["plain", "set", "defaults"]
)
def test_fine_tuning_is_sgd_on_the_cross_entropy(small, momentum, weight_decay):
    given = {"momentum": momentum, "weight_decay": weight_decay} if momentum is not None else {}
    momentum, weight_decay = (momentum, weight_decay) if given else (0.9, 5e-4)  # the defaults
    torch.manual_seed(0)
    by_hand = {"momentum": momentum, "weight_decay": weight_decay}
    check_full_batch_fine_tuning_is_sgd(linear(), small, steps=3, by_hand=by_hand, **given)


def test_fine_tuning_adds_the_penalty_to_the_loss(small):
    def penalty(m: nn.Module) -> torch.Tensor:
        return 0.3 * m[1].weight.pow(2).sum() + (m[1].bias - 1).pow(2).sum()

    torch.manual_seed(0)
    plain = {"momentum": 0.0, "weight_decay": 0.0}
    check_full_batch_fine_tuning_is_sgd(linear(), small, steps=2, by_hand=plain, penalty=penalty, **plain)


def tuned_weights(model: nn.Module, data, **options) -> torch.Tensor:
    """The last layer's weights after fine-tuning a copy of ``model`` on the first 40 training examples."""
    settings = {"epochs": 1, "lr": 0.1, "batch_size": 8, "progress": False} | options
    return fine_tune(working_copy(model), data, torch.arange(40), **settings)[1].weight.detach()


def test_fine_tuning_draws_its_batches_from_its_seed(small):
    torch.manual_seed(0)
    model = linear()
    assert torch.equal(tuned_weights(model, small), tuned_weights(model, small, seed=0))
    different = tuned_weights(model, small, seed=1)
    assert not torch.allclose(tuned_weights(model, small), different), "the order of the batches changes the weights"


def test_fine_tuning_trains_only_the_blocks_it_is_given(small):
    model = ResNet9(num_classes=10, in_channels=1, width=2)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    fine_tune(model, small, torch.arange(40), epochs=1, lr=0.1, batch_size=20, trainable=[model.fc], progress=False)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {"fc.weight", "fc.bias"}


def test_fine_tuning_anneals_by_default_and_counts_its_epochs(small):
    torch.manual_seed(0)
    model = linear()
    two = {"epochs": 2, "batch_size": 20}
    assert torch.equal(tuned_weights(model, small, **two), tuned_weights(model, small, schedule="cosine", **two))
    constant = tuned_weights(model, small, schedule="constant", **two)
    assert not torch.allclose(tuned_weights(model, small, **two), constant), "the schedule reaches the optimizer"
    with pytest.raises(Diverged, match=r"diverged in epoch \d of 3: the loss became nan"):
        fine_tune(working_copy(model), small, torch.arange(40), epochs=3, lr=1e38, batch_size=40, progress=False)


def test_fine_tuning_refuses_what_it_cannot_run(small):
    for options, message in (
        ({"epochs": 0}, "epochs must be positive (at least 1), got 0"),
        ({"batch_size": 0}, "batch_size must be positive (at least 1), got 0"),
        ({"lr": 0.0}, "lr must be positive, got 0.0"),
        ({"seed": -1}, "seed must be in 0..4294967295, got -1"),
        ({"epochs": "2"}, "epochs must be a whole number, got '2' (str)"),
    ):
        with pytest.raises((ValueError, TypeError)) as raised:
            fine_tune(linear(), small, torch.arange(40), **{"epochs": 1, "lr": 0.1, "batch_size": 8, **options})
        assert str(raised.value) == message


def test_fine_tuning_shows_a_progress_bar_of_epochs_that_it_clears(small, capsys):
    fine_tune(linear(), small, torch.arange(40), epochs=2, lr=0.1, batch_size=40)
    shown = capsys.readouterr().err
    assert "fine-tuning:" in shown and "/2 [" in shown and "epoch/s" in shown
    assert shown.endswith("\r") and not shown.endswith("\n"), "the finished bar is cleared"
    fine_tune(linear(), small, torch.arange(40), epochs=1, lr=0.1, batch_size=40, desc="pulling")
    assert "pulling:" in capsys.readouterr().err
    fine_tune(linear(), small, torch.arange(40), epochs=1, lr=0.1, batch_size=40, progress=False)
    assert capsys.readouterr().err == ""


def test_diagonal_fisher_is_the_mean_squared_per_example_gradient(digits):
    model = ResNet9(num_classes=10, in_channels=1, width=2).eval()
    split = digits.train.subset(torch.arange(6))
    fisher = diagonal_fisher(model, digits, split, batch_size=4)
    expected = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for x, y in digits.batches(split, 1):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        for name, p in model.named_parameters():
            expected[name] += p.grad.pow(2) / len(split)
    for name in expected:
        torch.testing.assert_close(fisher[name], expected[name], rtol=1e-4, atol=1e-10)


def test_distillation_loss_is_the_kl_divergence_of_the_softened_outputs():
    teacher = torch.tensor([[2.0, 0.0]])
    assert distillation_loss(teacher, teacher, 3.0).item() == pytest.approx(0.0, abs=1e-7)
    p, q = torch.softmax(teacher / 2, 1), torch.softmax(torch.zeros(1, 2), 1)
    kl = (p * (p / q).log()).sum().item()
    assert distillation_loss(torch.zeros(1, 2), teacher, 2.0).item() == pytest.approx(4 * kl, rel=1e-5)
