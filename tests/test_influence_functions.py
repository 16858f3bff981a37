"""Influence functions against known answers: explicit Hessians, exact solves, leave-one-out retraining."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unlearnlib import datasets, unlearn
from unlearnlib import influence_functions as inf
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
    data = datasets.load("digits", device="cpu")
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


@pytest.mark.parametrize("forget", [torch.arange(0, 80, 4), torch.tensor([7])], ids=["a quarter", "one example"])
def test_the_removal_step_is_exact_retraining_for_a_quadratic_loss(forget):
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
    retain = objective.without(forget)
    step = inf.removal_step(inf.Influence(retain), inputs[forget], targets[forget])
    inf.newton_minimise(retain)
    torch.testing.assert_close(original + step, retain.theta, rtol=1e-10, atol=1e-12)
    assert float((retain.theta - original).norm()) > 1e-3, "removing data must move the minimum"


def test_the_registered_method_changes_only_the_last_blocks_and_its_solvers_agree(digits):
    data = datasets.load("digits", n_train=200, n_test=50, device="cpu")
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


def _refusals():
    objective = small_problem()
    model, x, y = objective.model, objective.inputs, objective.targets
    hessian = torch.eye(objective.size, dtype=torch.float64)
    v = torch.ones(objective.size, dtype=torch.float64)
    of = inf.Objective.of
    return [
        (lambda: inf.exact_solve(hessian, v, -1.0), ValueError, "damping must be >= 0, got -1.0"),
        (lambda: inf.conjugate_gradient(objective.hvp, v, -0.1), ValueError, "damping must be >= 0, got -0.1"),
        (lambda: inf.lissa(objective.sampled_hvp, v, -0.1), ValueError, "damping must be >= 0, got -0.1"),
        (lambda: inf.Influence(objective, damping=-1), ValueError, "damping must be >= 0, got -1.0"),
        (lambda: inf.Influence(objective, damping="a"), TypeError, "damping must be a number, got 'a' (str)"),
        (
            lambda: inf.conjugate_gradient(objective.hvp, v, max_iterations=0),
            ValueError,
            "max_iterations must be positive (at least 1), got 0",
        ),
        (
            lambda: inf.conjugate_gradient(objective.hvp, v, max_iterations=2.0),
            TypeError,
            "max_iterations must be a whole number, got 2.0 (float)",
        ),
        (
            lambda: inf.conjugate_gradient(objective.hvp, v, tolerance=0),
            ValueError,
            "tolerance must be positive, got 0.0",
        ),
        (
            lambda: inf.conjugate_gradient(objective.hvp, v, tolerance="a"),
            TypeError,
            "tolerance must be a number, got 'a' (str)",
        ),
        (lambda: inf.lissa(objective.sampled_hvp, v, scale=0), ValueError, "scale must be positive, got 0.0"),
        (lambda: inf.lissa(objective.sampled_hvp, v, scale="a"), TypeError, "scale must be a number, got 'a' (str)"),
        (
            lambda: inf.lissa(objective.sampled_hvp, v, depth=0),
            ValueError,
            "depth must be positive (at least 1), got 0",
        ),
        (
            lambda: inf.lissa(objective.sampled_hvp, v, depth=1.5),
            TypeError,
            "depth must be a whole number, got 1.5 (float)",
        ),
        (
            lambda: inf.lissa(objective.sampled_hvp, v, repeats=0),
            ValueError,
            "repeats must be positive (at least 1), got 0",
        ),
        (
            lambda: inf.lissa(objective.sampled_hvp, v, repeats=1.5),
            TypeError,
            "repeats must be a whole number, got 1.5 (float)",
        ),
        (lambda: inf.lissa(objective.sampled_hvp, v, seed=-1), ValueError, "seed must be in 0..4294967295, got -1"),
        (
            lambda: inf.lissa(objective.sampled_hvp, v, seed=1.5),
            TypeError,
            "seed must be a whole number, got 1.5 (float)",
        ),
        (
            lambda: inf.Influence(objective, solver="newton"),
            ValueError,
            "unknown solver 'newton'; choose one of exact, cg, lissa",
        ),
        (lambda: of(model, x, y, ["nope", "zz"]), ValueError, "the model has no parameter nope, zz"),
        (lambda: of(model, x, y, []), ValueError, "at least one parameter must vary"),
        (lambda: of(model, x, y[:5]), ValueError, "need as many targets as inputs, and some: got 60 and 5"),
        (lambda: of(model, x[:0], y[:0]), ValueError, "need as many targets as inputs, and some: got 0 and 0"),
        (lambda: of(model, x, y, l2=-1), ValueError, "l2 must be >= 0, got -1.0"),
        (lambda: of(model, x, y, l2="a"), TypeError, "l2 must be a number, got 'a' (str)"),
        (lambda: of(model, x, y, batch_size=0), ValueError, "batch_size must be positive (at least 1), got 0"),
        (lambda: of(model, x, y, batch_size=2.0), TypeError, "batch_size must be a whole number, got 2.0 (float)"),
        (
            lambda: objective.subset(torch.tensor([], dtype=torch.long)),
            ValueError,
            "a subset needs at least one example",
        ),
        (lambda: inf.removal_step(inf.Influence(objective), x[:0], y[:0]), ValueError, "the forget set is empty"),
        (
            lambda: objective.hvp(torch.ones(3, dtype=torch.float64)),
            ValueError,
            f"expected a vector of {objective.size} entries or a ({objective.size}, k) matrix, got shape (3,)",
        ),
        (
            lambda: inf.exact_solve(hessian[:, :4], v),
            ValueError,
            f"the Hessian must be square, got shape ({objective.size}, 4)",
        ),
        (lambda: objective.example_gradients(x[:2], y[:3]), ValueError, "got 2 inputs but 3 targets"),
        (lambda: inf.conjugate_gradient(objective.hvp, v, 0.0), ValueError, "H + 0.0·I is not positive definite"),
        (
            lambda: inf.conjugate_gradient(torch.zeros_like, v),
            ValueError,
            "H + 0.0·I is not positive definite (curvature 0 along a search direction): increase damping",
        ),
        (
            lambda: inf.lissa(lambda c, g: objective.hvp(c), v, 0.5, scale=0.01, depth=200),
            ValueError,
            "LiSSA diverged after",
        ),
    ]


def test_bad_inputs_get_clear_errors():
    for call, kind, message in _refusals():
        with pytest.raises(kind) as raised:
            call()
        assert str(raised.value).startswith(message), (str(raised.value), message)


def test_the_registered_method_refuses_bad_options():
    data = datasets.load("digits", n_train=100, n_test=20, device="cpu")
    model = ResNet9(num_classes=10, in_channels=1, width=2)
    request = random_forget(100, fraction=0.1)
    for options, message in (
        ({"damping": 0.0}, "damping must be positive, got 0.0"),
        ({"l2": -1.0}, "l2 must be >= 0, got -1.0"),
        ({"solver": "lu"}, "unknown solver 'lu'; choose auto, exact or cg"),
    ):
        with pytest.raises(ValueError) as raised:
            unlearn.influence(model, request, data, **options)
        assert str(raised.value) == message


def test_the_edges_of_what_is_allowed_are_accepted():
    objective = small_problem()
    model, x, y = objective.model, objective.inputs, objective.targets
    one = inf.Objective.of(model, x[:1], y[:1], l2=0, batch_size=1)
    assert (len(one), one.l2, one.batch_size) == (1, 0.0, 1)
    assert inf.Objective.of(model, x, y, batch_size=7).batch_size == 7
    defaults = inf.Objective.of(model, x, y)
    assert (defaults.l2, defaults.batch_size) == (0.0, 256)
    v = torch.ones(objective.size, dtype=torch.float64)
    assert inf.conjugate_gradient(objective.hvp, v, 1.0, max_iterations=1).iterations == 1
    assert inf.lissa(objective.sampled_hvp, v, depth=1).iterations == 1
    assert inf.Influence(objective).last is None


def _moved(objective: inf.Objective) -> torch.Tensor:
    """Parameters away from the model's own, where every quantity differs from its value at the model's."""
    return objective.theta + 0.3 * torch.randn(
        objective.size, generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )


def test_every_quantity_is_taken_at_the_parameters_given():
    objective = small_problem()
    theta = _moved(objective)
    risk = explicit_risk(objective)
    hessian = torch.autograd.functional.hessian(risk, theta)
    assert not torch.allclose(hessian, objective.hessian(), atol=1e-3), "the two points must differ"
    v = torch.randn(objective.size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert objective.value(theta) == pytest.approx(float(risk(theta)), rel=1e-12)
    torch.testing.assert_close(objective.gradient(theta), torch.autograd.functional.jacobian(risk, theta))
    torch.testing.assert_close(objective.hvp(v, theta), hessian @ v)
    torch.testing.assert_close(objective.hessian(theta, chunk=7), hessian)
    one = objective.subset(torch.tensor([3]))
    expected = one.gradient(theta) - one.l2 * theta
    torch.testing.assert_close(objective.example_gradients(one.inputs, one.targets, theta)[0], expected)


def test_a_sampled_product_over_one_example_is_the_exact_product():
    one = small_problem().subset(torch.tensor([5]))  # every batch LiSSA can draw is this example
    theta = _moved(one)
    v = torch.randn(one.size, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sampled = one.sampled_hvp(v, torch.Generator().manual_seed(0), theta)
    torch.testing.assert_close(sampled, one.hvp(v, theta), rtol=1e-12, atol=1e-14)
    assert not torch.allclose(sampled, one.hvp(v), atol=1e-6)


def test_sampled_products_depend_on_their_generator_alone():
    objective = small_problem()  # 60 examples, batches of 16
    v = torch.ones(objective.size, dtype=torch.float64)
    torch.manual_seed(1)
    first = objective.sampled_hvp(v, torch.Generator().manual_seed(7))
    torch.manual_seed(2)
    torch.testing.assert_close(objective.sampled_hvp(v, torch.Generator().manual_seed(7)), first, rtol=0, atol=0)
    assert not torch.allclose(objective.sampled_hvp(v, torch.Generator().manual_seed(8)), first)
    torch.manual_seed(3)
    default = inf.lissa(objective.sampled_hvp, v, 0.5, scale=20.0, depth=5).x
    torch.manual_seed(4)
    torch.testing.assert_close(inf.lissa(objective.sampled_hvp, v, 0.5, scale=20.0, depth=5, seed=0).x, default)
    assert not torch.allclose(inf.lissa(objective.sampled_hvp, v, 0.5, scale=20.0, depth=5, seed=1).x, default)


def test_no_examples_have_an_empty_matrix_of_gradients():
    objective = small_problem()
    empty = objective.example_gradients(objective.inputs[:0], objective.targets[:0])
    assert empty.shape == (0, objective.size) and empty.dtype == torch.float64
    on_meta = objective.example_gradients(objective.inputs[:0], objective.targets[:0], objective.theta.to("meta"))
    assert on_meta.device.type == "meta"


def test_the_parameters_that_do_not_vary_are_constants():
    objective = small_problem()
    head = inf.Objective.of(objective.model, objective.inputs, objective.targets, ["2.weight", "2.bias"])
    assert head.size == 5 * 3 + 3
    loss = head.batch_loss(head.theta, head.inputs, head.targets)
    assert not loss.requires_grad, "the fixed layers must not enter autograd's graph"


def test_only_the_deprecation_warning_of_forward_mode_is_hidden():
    objective = small_problem()

    def warning(message: str, category: type[Warning]):
        def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            warnings.warn(message, category, stacklevel=1)
            return F.cross_entropy(outputs, targets)

        return inf.Objective.of(objective.model, objective.inputs, objective.targets, loss=loss)

    v = torch.ones(objective.size, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warning("`torch.jit.script` is deprecated. Please switch to `torch.compile`", FutureWarning).hvp(v)
    for message, category in (("something else", FutureWarning), ("`torch.jit.script` is deprecated", UserWarning)):
        with pytest.warns(category, match=message):
            warning(message, category).hvp(v)


def _diagonal(eigenvalues: list[float]):
    """H = diag(eigenvalues) as a product, its eigenvalues as a tensor."""
    a = torch.tensor(eigenvalues, dtype=torch.float64)
    return (lambda c: a.reshape(-1, *([1] * (c.dim() - 1))) * c), a


def _timed(solve):
    before = time.perf_counter()
    solution = solve()
    return solution, time.perf_counter() - before


def test_the_solvers_default_to_no_damping_and_time_themselves():
    hvp, a = _diagonal([1.0, 2.0, 4.0])
    v = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    exact, took = _timed(lambda: inf.exact_solve(torch.diag(a), v))
    torch.testing.assert_close(exact.x, v / a)
    assert exact.iterations == 3 and 0 <= exact.seconds <= took
    cg, took = _timed(lambda: inf.conjugate_gradient(hvp, v))
    torch.testing.assert_close(cg.x, v / a)
    assert 0 <= cg.seconds <= took
    lissa, took = _timed(lambda: inf.lissa(lambda c, g: hvp(c), v))
    assert 0 <= lissa.seconds <= took
    damped = inf.with_damping(torch.zeros(3, 3, dtype=torch.float64), 0.1)
    assert torch.equal(damped, torch.diag(torch.full((3,), 0.1, dtype=torch.float64)))
    assert inf.with_damping(torch.zeros(3, 3, device="meta"), 0.1).device.type == "meta"


def test_conjugate_gradients_stop_after_a_hundred_products_by_default():
    hvp, a = _diagonal(torch.logspace(-4, 0, 300).tolist())  # condition number 10⁴: hundreds of iterations
    v = torch.ones(300, dtype=torch.float64)
    assert inf.conjugate_gradient(hvp, v).iterations == 100
    assert inf.conjugate_gradient(hvp, v, max_iterations=101).iterations == 101


def test_conjugate_gradients_finish_in_as_many_steps_as_distinct_eigenvalues():
    hvp, a = _diagonal([1.0, 2.0, 3.0, 5.0, 8.0])
    v = 1e-3 * torch.tensor([1.0, -2.0, 1.0, 3.0, 1.0], dtype=torch.float64)  # small: ‖r‖² far below 1
    seen = []
    cg = inf.conjugate_gradient(hvp, v, 0.5, tolerance=1e-12, callback=lambda i, x: seen.append((i, x.clone())))
    assert cg.iterations <= 5 and cg.residual < 1e-12
    torch.testing.assert_close(cg.x, v / (a + 0.5), rtol=1e-12, atol=0)
    assert [i for i, _ in seen] == list(range(1, cg.iterations + 1)) and torch.equal(seen[-1][1], cg.x)


def test_conjugate_gradients_solve_each_column_as_if_alone():
    generator = torch.Generator().manual_seed(5)
    basis = torch.linalg.qr(torch.randn(8, 8, generator=generator, dtype=torch.float64)).Q
    h = basis @ torch.diag(torch.linspace(1, 50, 8, dtype=torch.float64)) @ basis.T
    v = torch.stack(
        [basis[:, 0] + 0.01 * basis[:, 7], 1e-6 * torch.randn(8, generator=generator, dtype=torch.float64)], 1
    )
    together = inf.conjugate_gradient(lambda c: h @ c, v, tolerance=1e-4)
    for j in range(2):
        alone = inf.conjugate_gradient(lambda c: h @ c, v[:, j], tolerance=1e-4)
        torch.testing.assert_close(together.x[:, j], alone.x, rtol=1e-12, atol=0)
        relative = float((h @ together.x[:, j] - v[:, j]).norm() / v[:, j].norm())
        assert relative < 1e-4, (j, relative)


def _lissa_closed_form(a: torch.Tensor, v: torch.Tensor, damping: float, scale: float, steps: int) -> torch.Tensor:
    """LiSSA with the exact product of a diagonal H after ``steps`` steps: a geometric series, summed."""
    m = 1 - (a + damping) / scale
    return v * (1 - m ** (steps + 1)) / (a + damping)


def test_lissa_with_exact_products_sums_the_neumann_series():
    hvp, a = _diagonal([1.0, 2.0, 5.0])
    v = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)
    default = inf.lissa(lambda c, g: hvp(c), v)  # scale 10, depth 100, no damping
    torch.testing.assert_close(default.x, _lissa_closed_form(a, v, 0.0, 10.0, 100), rtol=1e-12, atol=0)
    assert default.iterations == 100 and math.isnan(default.residual)
    seen = []
    short = inf.lissa(lambda c, g: hvp(c), v, 0.5, scale=8.0, depth=4, callback=lambda j, x: seen.append((j, x)))
    assert [j for j, _ in seen] == [1, 2, 3, 4]
    for j, x in seen:
        torch.testing.assert_close(x, _lissa_closed_form(a, v, 0.5, 8.0, j), rtol=1e-12, atol=0)
    torch.testing.assert_close(short.x, seen[-1][1])


def test_the_residual_is_each_columns_relative_residual_at_its_worst():
    hvp, a = _diagonal([1.0, 2.0, 5.0])
    v = torch.tensor([[1.0, 1e-3], [-1.0, 3e-3], [2.0, 0.0]], dtype=torch.float64)
    found = inf.lissa(lambda c, g: hvp(c), v, 0.5, scale=8.0, depth=3, hvp=hvp)
    worst = max(float((hvp(found.x[:, j]) + 0.5 * found.x[:, j] - v[:, j]).norm() / v[:, j].norm()) for j in range(2))
    assert found.residual == pytest.approx(worst, rel=1e-12)


def test_influence_uses_the_parameters_it_was_built_at_with_every_solver():
    objective = small_problem(batch_size=60)
    theta, v = (
        objective.theta,
        torch.randn(objective.size, generator=torch.Generator().manual_seed(6), dtype=torch.float64),
    )
    hessian = objective.hessian()
    x, y = objective.inputs[:3], objective.targets[:3]
    largest = float(torch.linalg.eigvalsh(hessian)[-1]) + 1.0
    lissa = {"scale": 2 * largest, "depth": 50, "repeats": 2, "seed": 3}
    solvers = {"exact": {}, "cg": {"tolerance": 1e-12, "max_iterations": 500}, "lissa": lissa}
    expected = {
        "exact": inf.exact_solve(hessian, v, 1.0).x,
        "cg": inf.conjugate_gradient(objective.hvp, v, 1.0, tolerance=1e-12, max_iterations=500).x,
        "lissa": inf.lissa(objective.sampled_hvp, v, 1.0, hvp=objective.hvp, **lissa).x,
    }
    gradients = objective.example_gradients(x, y)
    for solver, options in solvers.items():
        influence = inf.Influence(objective, damping=1.0, solver=solver, **options)
        objective.load(_moved(objective))  # the model moves on; the influence stays at θ
        found, took = _timed(lambda influence=influence: influence.inverse_hvp(v))
        torch.testing.assert_close(found, expected[solver], rtol=1e-9, atol=1e-12)
        residual = float(((hessian + torch.eye(len(v), dtype=v.dtype)) @ found - v).norm() / v.norm())
        assert influence.last.residual == pytest.approx(residual, rel=1e-6, abs=1e-12), solver
        assert 0 <= influence.last.seconds <= took
        torch.testing.assert_close(influence.gradients(x, y), gradients)
        objective.load(theta)
    exact = inf.Influence(objective, damping=1.0)
    exact.inverse_hvp(v)
    assert exact.last.iterations == objective.size


def _quartic(start: float = 1.0) -> inf.Objective:
    """R(w) = w⁴ over one weight, whose Newton steps are w ← 2w/3: the gradient 4w³ after k steps is 4(2/3)^(3k)."""
    model = nn.Linear(1, 1, bias=False).double()
    nn.init.constant_(model.weight, start)
    ones = torch.ones(1, 1, dtype=torch.float64)
    return inf.Objective.of(model, ones, torch.zeros(1), loss=lambda outputs, y: outputs.pow(4).mean())


def test_newtons_method_takes_its_steps_up_to_its_limit():
    tolerance = 4 * (2 / 3) ** (3 * 30.5)  # reached after 31 steps, not 30
    with pytest.raises(RuntimeError) as raised:
        inf.newton_minimise(_quartic(), tolerance=tolerance)
    assert str(raised.value) == f"Newton's method did not reach gradient norm {tolerance} in 30 steps"
    quartic = _quartic()
    assert inf.newton_minimise(quartic, tolerance=tolerance, max_iterations=31) == 31
    assert float(quartic.theta) == pytest.approx((2 / 3) ** 31, rel=1e-12)
    at_minimum = _quartic(start=0.0)
    assert inf.newton_minimise(at_minimum, tolerance=0.0) == 0, "a gradient of exactly zero is at the tolerance 0"
    with pytest.raises(RuntimeError, match="in 0 steps"):
        inf.newton_minimise(_quartic(), max_iterations=0)
