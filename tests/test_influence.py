"""Influence functions against known answers: explicit Hessians, exact solves, leave-one-out retraining."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unlearnlib import data as data_module
from unlearnlib import influence as inf
from unlearnlib import unlearn
from unlearnlib.forget import random_forget
from unlearnlib.models import ResNet9, blocks


def small_problem(n: int = 60, batch_size: int = 16):
    """A tanh network 4-5-3 in float64 on random data, and its objective with an L2 term."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 3, (n,), generator=generator)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    return inf.Objective.of(model, inputs, targets, l2=0.01, batch_size=batch_size)


def explicit_risk(objective: inf.Objective):
    """R(θ) written out with autograd, independently of the objective's batching."""

    def risk(theta: torch.Tensor) -> torch.Tensor:
        state = {**dict(objective.model.named_buffers()), **objective.unflatten(theta)}
        outputs = torch.func.functional_call(objective.model, state, (objective.inputs,))
        return F.cross_entropy(outputs, objective.targets) + 0.5 * objective.l2 * theta.pow(2).sum()

    return risk


def test_hessian_vector_products_equal_the_explicit_hessian_times_the_vector():
    objective = small_problem()
    theta = objective.theta
    hessian = torch.autograd.functional.hessian(explicit_risk(objective), theta)
    v = torch.randn(len(theta), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(objective.hvp(v), hessian @ v, rtol=1e-10, atol=1e-12)
    columns = torch.stack([v, -2 * v, torch.ones_like(v)], 1)
    torch.testing.assert_close(objective.hvp(columns), hessian @ columns, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(objective.hessian(chunk=7), hessian, rtol=1e-10, atol=1e-12)
    gradient = torch.autograd.functional.jacobian(explicit_risk(objective), theta)
    torch.testing.assert_close(objective.gradient(), gradient, rtol=1e-10, atol=1e-12)
    assert objective.value() == pytest.approx(float(explicit_risk(objective)(theta)), rel=1e-12)


def test_per_example_gradients_are_the_gradients_of_each_example_alone():
    objective = small_problem(n=10)
    found = objective.example_gradients(objective.inputs, objective.targets)
    for i in range(10):
        one = objective.subset(torch.tensor([i]))
        expected = one.gradient() - one.l2 * one.theta
        torch.testing.assert_close(found[i], expected, rtol=1e-10, atol=1e-12)
    assert found.shape == (10, objective.size) == (10, 4 * 5 + 5 + 5 * 3 + 3)


def _indefinite_problem():
    """small_problem's objective, its Hessian (indefinite; definite after the damping 0.5), two right-hand sides."""
    objective = small_problem(batch_size=60)  # one batch per product: LiSSA's thousand products in seconds
    hessian = objective.hessian()
    assert torch.linalg.eigvalsh(hessian)[0] < 0 < torch.linalg.eigvalsh(hessian)[0] + 0.5, "indefinite H"
    v = torch.randn(objective.size, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return objective, hessian, v


def test_conjugate_gradient_converges_to_the_exact_solve():
    objective, hessian, v = _indefinite_problem()
    exact = inf.exact_solve(hessian, v, 0.5)
    assert exact.residual < 1e-12
    cg = inf.conjugate_gradient(objective.hvp, v, 0.5, tolerance=1e-10, max_iterations=200)
    assert cg.residual < 1e-10 and cg.iterations <= objective.size
    torch.testing.assert_close(cg.x, exact.x, rtol=1e-8, atol=1e-10)


def test_lissa_converges_to_the_exact_solve():
    objective, hessian, v = _indefinite_problem()
    exact = inf.exact_solve(hessian, v, 0.5)
    largest = float(torch.linalg.eigvalsh(hessian)[-1]) + 0.5
    exact_products = inf.lissa(lambda c, g: objective.hvp(c), v, 0.5, scale=largest, depth=400, hvp=objective.hvp)
    assert exact_products.iterations == 400 and exact_products.residual < 1e-8
    torch.testing.assert_close(exact_products.x, exact.x, rtol=1e-6, atol=1e-8)
    sampled = inf.lissa(objective.sampled_hvp, v, 0.5, scale=2 * largest, depth=300, repeats=3, hvp=objective.hvp)
    error = float((sampled.x - exact.x).norm() / exact.x.norm())
    assert error < 0.3 and sampled.iterations == 900, error


def test_solvers_report_progress_and_stop_early():
    objective = small_problem()
    v = torch.ones(objective.size, dtype=torch.float64)
    seen = []
    cg = inf.conjugate_gradient(objective.hvp, v, 1.0, max_iterations=3, callback=lambda i, x: seen.append(i))
    assert seen == [1, 2, 3] and cg.iterations == 3 and cg.residual > 1e-6
    assert inf.conjugate_gradient(objective.hvp, torch.zeros_like(v), 1.0).x.abs().max() == 0


def test_influence_is_batched_consistently():
    objective = small_problem()
    influence = inf.Influence(objective, damping=0.5)
    x, y = objective.inputs[:5], objective.targets[:5]
    tx, ty = objective.inputs[40:43], objective.targets[40:43]
    hessian = objective.hessian() + 0.5 * torch.eye(objective.size, dtype=torch.float64)
    gradients = objective.example_gradients(x, y)
    test_gradients = objective.example_gradients(tx, ty)
    parameters = influence.on_parameters(x, y)
    torch.testing.assert_close(parameters, -torch.linalg.solve(hessian, gradients.T).T)
    on_loss = influence.on_test_loss(x, y, tx, ty)
    assert on_loss.shape == (3, 5)
    torch.testing.assert_close(on_loss, test_gradients @ parameters.T)
    torch.testing.assert_close(influence.self_influence(x, y), -(gradients * parameters).sum(1))
    assert influence.last is not None and influence.last.residual < 1e-10
    cg = inf.Influence(objective, damping=0.5, solver="cg", tolerance=1e-12, max_iterations=500)
    torch.testing.assert_close(cg.on_test_loss(x, y, tx, ty), on_loss, rtol=1e-7, atol=1e-10)


def digits_logistic_regression(n: int = 300, l2: float = 0.01):
    data = data_module.load("digits", device="cpu")
    inputs, targets = inf.image_tensors(data, data.train)
    test_inputs, test_targets = inf.image_tensors(data, data.test)
    model = nn.Linear(64, 10).double()
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    objective = inf.Objective.of(model, inputs[:n].flatten(1).double(), targets[:n], l2=l2, batch_size=512)
    inf.newton_minimise(objective)
    return objective, test_inputs.flatten(1).double(), test_targets


@pytest.mark.slow
def test_on_l2_logistic_regression_influence_predicts_leave_one_out_retraining():
    objective, test_inputs, test_targets = digits_logistic_regression()
    model, n = objective.model, len(objective)
    with torch.no_grad():
        losses = F.cross_entropy(model(test_inputs), test_targets, reduction="none")
    j = int(losses.argmax())
    x_test, y_test = test_inputs[j : j + 1], test_targets[j : j + 1]
    predicted = -inf.Influence(objective).on_test_loss(objective.inputs, objective.targets, x_test, y_test)[0] / n
    strongest = predicted.abs().argsort(descending=True)[:10]
    others = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:10]
    chosen = torch.cat([strongest, others[~torch.isin(others, strongest)]])
    theta, actual = objective.theta, []
    for i in chosen.tolist():
        inf.newton_minimise(objective.without(torch.tensor([i])))
        with torch.no_grad():
            actual.append(float(F.cross_entropy(model(x_test), y_test) - losses[j]))
        objective.load(theta)
    correlation = np.corrcoef(predicted[chosen].numpy(), actual)[0, 1]
    assert correlation > 0.95, correlation


def test_the_removal_step_is_exact_retraining_for_a_quadratic_loss():
    generator = torch.Generator().manual_seed(3)
    inputs = torch.randn(80, 6, generator=generator, dtype=torch.float64)
    targets = inputs @ torch.randn(6, 2, generator=generator, dtype=torch.float64) + 0.3 * torch.randn(
        80, 2, generator=generator, dtype=torch.float64
    )
    model = nn.Linear(6, 2).double()

    def squared_error(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * (outputs - y).pow(2).sum(1).mean()

    objective = inf.Objective.of(model, inputs, targets, loss=squared_error, l2=0.1)
    inf.newton_minimise(objective)
    original = objective.theta
    forget = torch.arange(0, 80, 4)
    retain = objective.without(forget)
    step = inf.removal_step(inf.Influence(retain), inputs[forget], targets[forget])
    inf.newton_minimise(retain)
    torch.testing.assert_close(original + step, retain.theta, rtol=1e-10, atol=1e-12)
    assert float((retain.theta - original).norm()) > 0.01, "removing a quarter of the data must move the minimum"


def test_the_registered_method_changes_only_the_last_blocks_and_its_solvers_agree(digits):
    data = data_module.load("digits", n_train=200, n_test=50, device="cpu")
    model = ResNet9(num_classes=10, in_channels=1, width=4).eval()  # seeded by conftest's seeded_torch
    request = random_forget(len(data.train), fraction=0.1, seed=0)
    exact = unlearn.influence(model, request, data, damping=0.1, solver="exact", progress=False)
    cg = unlearn.influence(model, request, data, damping=0.1, solver="cg", max_iterations=400, progress=False)
    for (name, before), (_, after), (_, other) in zip(blocks(model), blocks(exact), blocks(cg)):
        for key, value in before.state_dict().items():
            assert torch.equal(value, after.state_dict()[key]) == (name != "fc"), (name, key)
            torch.testing.assert_close(after.state_dict()[key], other.state_dict()[key], rtol=1e-3, atol=1e-5)
    deeper = unlearn.influence(model, request, data, k=2, damping=10.0, solver="cg", max_iterations=5, progress=False)
    changed = [
        name
        for name, block in blocks(deeper)
        if not all(
            torch.equal(a, b)
            for a, b in zip(block.state_dict().values(), dict(blocks(model))[name].state_dict().values())
        )
    ]
    assert changed == ["layer3.1", "fc"]


def test_bad_inputs_get_clear_errors():
    objective = small_problem()
    hessian = objective.hessian()
    v = torch.ones(objective.size, dtype=torch.float64)
    for call in (
        lambda: inf.exact_solve(hessian, v, -1.0),
        lambda: inf.conjugate_gradient(objective.hvp, v, -0.1),
        lambda: inf.lissa(objective.sampled_hvp, v, -0.1),
        lambda: inf.Influence(objective, damping=-1.0),
    ):
        with pytest.raises(ValueError, match="damping must be non-negative"):
            call()
    with pytest.raises(ValueError, match="not positive definite.*increase damping"):
        inf.conjugate_gradient(objective.hvp, v, 0.0)
    with pytest.raises(ValueError, match="LiSSA diverged.*scale"):
        inf.lissa(lambda c, g: objective.hvp(c), v, 0.5, scale=0.01, depth=200)
    with pytest.raises(ValueError, match=f"vector of {objective.size} entries"):
        objective.hvp(torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="must be square"):
        inf.exact_solve(hessian[:, :4], v)
    with pytest.raises(ValueError, match="as many targets as inputs"):
        inf.Objective.of(objective.model, objective.inputs, objective.targets[:5])
    with pytest.raises(ValueError, match="2 inputs but 3 targets"):
        objective.example_gradients(objective.inputs[:2], objective.targets[:3])
    with pytest.raises(ValueError, match="no parameter nope"):
        inf.Objective.of(objective.model, objective.inputs, objective.targets, ["nope"])
    with pytest.raises(RuntimeError, match="did not reach gradient norm"):
        inf.newton_minimise(objective, max_iterations=0)
    with pytest.raises(ValueError, match="unknown solver 'newton'"):
        inf.Influence(objective, solver="newton")
    data = data_module.load("digits", n_train=100, n_test=20, device="cpu")
    model = ResNet9(num_classes=10, in_channels=1, width=2)
    request = random_forget(100, fraction=0.1)
    with pytest.raises(ValueError, match="damping must be positive"):
        unlearn.influence(model, request, data, damping=0.0)
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        unlearn.influence(model, request, data, l2=-1.0)
    with pytest.raises(ValueError, match="unknown solver 'lu'"):
        unlearn.influence(model, request, data, solver="lu")
