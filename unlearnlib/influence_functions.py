"""Influence functions: how a model's parameters and losses would change if a training example were removed.

For a model trained to the minimum θ* of the empirical risk
``R(θ) = (1/n) Σᵢ ℓ(zᵢ, θ) + (l2/2)‖θ‖²``, upweighting a training example z by ε
moves the minimum by ``dθ/dε = −H⁻¹ ∇ℓ(z, θ*)`` (Koh and Liang, 2017), where H is the
Hessian of R at θ*.  Everything here works on a flat vector θ of the parameters
that vary (all of them, or only the last layers):

- :class:`Objective` — R as a function of θ over a dataset held as tensors, with its
  gradient, per-example gradients, Hessian-vector products (forward-over-reverse with
  ``torch.func``) and, for small models, the whole Hessian;
- three ways to apply (H + λI)⁻¹: :func:`exact_solve`, :func:`conjugate_gradient` and
  :func:`lissa`, each returning a :class:`Solution` that says how far it got;
- :class:`Influence` — influence on the parameters and on test losses, and self-influence,
  for many training examples at once;
- :func:`removal_step` — the Newton step that removes a whole forget set.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from . import validate
from .imagedata import ImageData, Split, complement

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(outputs, targets)``: the mean loss over a batch."""

SOLVERS = ("exact", "cg", "lissa")


def image_tensors(data: ImageData, split: Split, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised images and the labels of ``split``, as two tensors (no augmentation)."""
    xs, ys = zip(*data.batches(split, batch_size))
    return torch.cat(xs), torch.cat(ys)


@dataclass(frozen=True)
class Objective:
    """The empirical risk ``R(θ) = (1/n) Σᵢ loss(model(xᵢ; θ), yᵢ) + (l2/2)‖θ‖²`` over ``inputs`` and ``targets``.

    θ is the flat vector of the parameters named in ``names``; the model's other
    parameters and its buffers stay as they are.  The model is evaluated in eval
    mode (batch norm uses its running statistics), so R is a fixed function of θ.
    """

    model: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    names: tuple[str, ...]
    loss: Loss = F.cross_entropy
    l2: float = 0.0
    batch_size: int = 256

    @classmethod
    def of(
        cls,
        model: nn.Module,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        parameters: Sequence[str] | None = None,
        *,
        loss: Loss = F.cross_entropy,
        l2: float = 0.0,
        batch_size: int = 256,
    ) -> Objective:
        """The objective of ``model`` over ``parameters`` (names; all when ``None``); sets ``model`` to eval mode."""
        known = [name for name, _ in model.named_parameters()]
        names = tuple(known if parameters is None else parameters)
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ValueError(f"the model has no parameter {', '.join(unknown)}")
        if not names:
            raise ValueError("at least one parameter must vary")
        if len(inputs) != len(targets) or len(inputs) == 0:
            raise ValueError(f"need as many targets as inputs, and some: got {len(inputs)} and {len(targets)}")
        l2 = validate.non_negative("l2", l2)
        batch_size = validate.integer("batch_size", batch_size, minimum=1)
        return cls(model.eval(), inputs, targets, names, loss, l2, batch_size)

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def theta(self) -> torch.Tensor:
        """The model's current values of the varying parameters, flattened (a copy)."""
        named = dict(self.model.named_parameters())
        return torch.cat([named[name].detach().reshape(-1) for name in self.names])

    @property
    def size(self) -> int:
        """p, the number of varying parameters."""
        named = dict(self.model.named_parameters())
        return sum(named[name].numel() for name in self.names)

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """``theta`` cut into the varying parameters' shapes, by name."""
        named = dict(self.model.named_parameters())
        shapes = [named[name].shape for name in self.names]
        pieces = torch.split(theta, [math.prod(s) for s in shapes])
        return {name: piece.reshape(shape) for name, piece, shape in zip(self.names, pieces, shapes)}

    def load(self, theta: torch.Tensor) -> None:
        """Write ``theta`` into the model's varying parameters."""
        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in self.unflatten(theta).items():
                named[name].copy_(value)

    def subset(self, indices: torch.Tensor) -> Objective:
        """The same objective over the examples at ``indices`` only (for example the retain set)."""
        indices = torch.as_tensor(indices, device=self.inputs.device)
        if len(indices) == 0:
            raise ValueError("a subset needs at least one example")
        return replace(self, inputs=self.inputs[indices], targets=self.targets[indices])

    def without(self, indices: torch.Tensor) -> Objective:
        """The same objective without the examples at ``indices`` (a leave-out retraining's objective)."""
        return self.subset(complement(indices, len(self)))

    def batch_loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean loss over the batch ``(x, y)`` at ``theta`` (without the L2 term)."""
        fixed = {name: p.detach() for name, p in self.model.named_parameters() if name not in self.names}
        state = {**fixed, **dict(self.model.named_buffers()), **self.unflatten(theta)}
        return self.loss(functional_call(self.model, state, (x,)), y)

    def _batches(self):
        for start in range(0, len(self), self.batch_size):
            yield self.inputs[start : start + self.batch_size], self.targets[start : start + self.batch_size]

    def _penalty(self, theta: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.l2 * theta.pow(2).sum()

    def value(self, theta: torch.Tensor | None = None) -> float:
        """R(θ) at ``theta`` (the model's own parameters when ``None``)."""
        theta = self.theta if theta is None else theta
        with torch.no_grad():
            total = sum(self.batch_loss(theta, x, y) * len(x) for x, y in self._batches())
            return float(total / len(self) + self._penalty(theta))

    def gradient(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """∇R(θ), flat."""
        theta = self.theta if theta is None else theta
        total = torch.zeros_like(theta)
        for x, y in self._batches():
            total += grad(self.batch_loss)(theta, x, y) * len(x)
        return total / len(self) + self.l2 * theta

    def example_gradients(self, inputs: torch.Tensor, targets: torch.Tensor, theta: torch.Tensor | None = None):
        """∇ℓ(z, θ) for each example z = (x, y) of ``inputs`` and ``targets``: an (m, p) tensor (no L2 term)."""
        theta = self.theta if theta is None else theta
        if len(inputs) != len(targets):
            raise ValueError(f"got {len(inputs)} inputs but {len(targets)} targets")

        def one(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return grad(self.batch_loss)(theta, x[None], y[None])

        pieces = [
            vmap(one)(inputs[i : i + self.batch_size], targets[i : i + self.batch_size])
            for i in range(0, len(inputs), self.batch_size)
        ]
        return torch.cat(pieces) if pieces else torch.zeros(0, len(theta), device=theta.device, dtype=theta.dtype)

    def _hvp_on(self, theta: torch.Tensor, vectors: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∇²(mean loss on the batch)·v for each column v of ``vectors`` (p, k): forward-over-reverse."""
        gradient = grad(self.batch_loss)

        def one(v: torch.Tensor) -> torch.Tensor:
            return jvp(lambda t: gradient(t, x, y), (theta,), (v,))[1]

        with warnings.catch_warnings():
            # PyTorch's forward-mode AD loads its decompositions through the deprecated torch.jit.script once.
            warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=FutureWarning)
            return vmap(one, in_dims=1, out_dims=1)(vectors)

    def hvp(self, vectors: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
        """H v, with H the Hessian of R at ``theta``, for a vector (p,) or each column of a matrix (p, k)."""
        theta = self.theta if theta is None else theta
        columns = _as_columns(vectors, len(theta))
        total = torch.zeros_like(columns)
        for x, y in self._batches():
            total += self._hvp_on(theta, columns, x, y) * len(x)
        return (total / len(self) + self.l2 * columns).reshape(vectors.shape)

    def sampled_hvp(self, vectors: torch.Tensor, generator: torch.Generator, theta: torch.Tensor | None = None):
        """An unbiased estimate of H v from one random batch of ``batch_size`` examples (for LiSSA)."""
        theta = self.theta if theta is None else theta
        columns = _as_columns(vectors, len(theta))
        pick = torch.randint(len(self), (min(self.batch_size, len(self)),), generator=generator)
        pick = pick.to(self.inputs.device)
        estimate = self._hvp_on(theta, columns, self.inputs[pick], self.targets[pick]) + self.l2 * columns
        return estimate.reshape(vectors.shape)

    def hessian(self, theta: torch.Tensor | None = None, chunk: int = 64) -> torch.Tensor:
        """The whole p x p Hessian of R (p Hessian-vector products, ``chunk`` columns at a time): small models only."""
        theta = self.theta if theta is None else theta
        p = len(theta)
        columns = [
            self.hvp(torch.eye(p, dtype=theta.dtype, device=theta.device)[:, i : i + chunk], theta)
            for i in range(0, p, chunk)
        ]
        hessian = torch.cat(columns, dim=1)
        return (hessian + hessian.T) / 2


def _as_columns(vectors: torch.Tensor, p: int) -> torch.Tensor:
    if vectors.dim() not in (1, 2) or vectors.shape[0] != p:
        raise ValueError(f"expected a vector of {p} entries or a ({p}, k) matrix, got shape {tuple(vectors.shape)}")
    return vectors.reshape(p, -1)


@dataclass
class Solution:
    """An approximation x of (H + λI)⁻¹ v, and how far its solver got."""

    x: torch.Tensor
    iterations: int
    """Hessian-vector products (or, for the exact solve, Hessian columns) the solver used."""
    residual: float
    """The largest relative residual ‖(H + λI)x − v‖ / ‖v‖ over the right-hand sides."""
    seconds: float


def _relative_residual(apply: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, v: torch.Tensor) -> float:
    columns, targets = x.reshape(len(x), -1), v.reshape(len(v), -1)
    error = (apply(columns) - targets).norm(dim=0)
    scale = targets.norm(dim=0).clamp_min(torch.finfo(targets.dtype).tiny)
    return float((error / scale).max())


def with_damping(hessian: torch.Tensor, damping: float) -> torch.Tensor:
    """H + λI."""
    return hessian + damping * torch.eye(len(hessian), dtype=hessian.dtype, device=hessian.device)


def exact_solve(hessian: torch.Tensor, v: torch.Tensor, damping: float = 0.0) -> Solution:
    """(H + λI)⁻¹ v by a direct solve with the explicit Hessian; ``v`` a vector or a matrix of columns."""
    damping = validate.non_negative("damping", damping)
    start = time.perf_counter()
    p = hessian.shape[0]
    if hessian.shape != (p, p):
        raise ValueError(f"the Hessian must be square, got shape {tuple(hessian.shape)}")
    columns = _as_columns(v, p)
    damped = with_damping(hessian, damping)
    x = torch.linalg.solve(damped, columns)
    residual = _relative_residual(lambda c: damped @ c, x, columns)
    return Solution(x.reshape(v.shape), p, residual, time.perf_counter() - start)


def conjugate_gradient(
    hvp: Callable[[torch.Tensor], torch.Tensor],
    v: torch.Tensor,
    damping: float = 0.0,
    *,
    tolerance: float = 1e-6,
    max_iterations: int = 100,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> Solution:
    """(H + λI)⁻¹ v by conjugate gradients, using only products ``hvp(V)`` = H V (V a (p, k) matrix).

    Solves every column of ``v`` at once; stops when each relative residual is below
    ``tolerance`` or after ``max_iterations``.  H + λI must be positive definite: a
    direction of non-positive curvature raises an error that asks for more damping.
    ``callback(i, x)`` sees the iterate after each iteration.
    """
    damping = validate.non_negative("damping", damping)
    max_iterations = validate.integer("max_iterations", max_iterations, minimum=1)
    tolerance = validate.positive("tolerance", tolerance)
    start = time.perf_counter()
    b = _as_columns(v, len(v))
    scale = b.norm(dim=0)
    x = torch.zeros_like(b)
    r = b.clone()
    d = r.clone()
    rs = (r * r).sum(0)
    active = scale > 0
    for iterations in range(1, max_iterations + 1):
        ad = hvp(d) + damping * d
        curvature = (d * ad).sum(0)
        if bool((curvature[active] <= 0).any()):
            raise ValueError(
                f"H + {damping}·I is not positive definite (curvature {float(curvature[active].min()):.3g} "
                "along a search direction): increase damping"
            )
        alpha = torch.where(active, rs / torch.where(active, curvature, 1), 0)
        x += alpha * d
        r -= alpha * ad
        new_rs = (r * r).sum(0)
        if callback is not None:
            callback(iterations, x.reshape(v.shape))
        active = active & (new_rs.sqrt() > tolerance * scale)
        if not bool(active.any()):
            break
        d = r + torch.where(active, new_rs / torch.where(rs > 0, rs, 1), 0) * d
        rs = new_rs
    residual = float((r.norm(dim=0) / scale.clamp_min(torch.finfo(b.dtype).tiny)).max())
    return Solution(x.reshape(v.shape), iterations, residual, time.perf_counter() - start)


def lissa(
    sampled_hvp: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    v: torch.Tensor,
    damping: float = 0.0,
    *,
    scale: float = 10.0,
    depth: int = 100,
    repeats: int = 1,
    seed: int = 0,
    hvp: Callable[[torch.Tensor], torch.Tensor] | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> Solution:
    """(H + λI)⁻¹ v by LiSSA (Agarwal et al., 2017): a truncated Neumann series with sampled Hessians.

    Each repeat runs ``depth`` steps of ``h ← v + h − (Ĥ + λI) h / scale`` with Ĥ from
    ``sampled_hvp(V, generator)`` on a fresh random batch; h / scale tends to (H + λI)⁻¹ v
    when ``scale`` exceeds the largest eigenvalue of H + λI.  The repeats' results are
    averaged.  With the exact product ``hvp``, the residual of the answer is reported
    (one more product); otherwise it is NaN.  ``callback(j, x)`` sees the estimate of
    the current repeat after each step j.
    """
    damping = validate.non_negative("damping", damping)
    scale = validate.positive("scale", scale)
    depth = validate.integer("depth", depth, minimum=1)
    repeats = validate.integer("repeats", repeats, minimum=1)
    seed = validate.seed("seed", seed)
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    b = _as_columns(v, len(v))
    total = torch.zeros_like(b)
    for _ in range(repeats):
        h = b.clone()
        for step in range(1, depth + 1):
            h = b + h - (sampled_hvp(h, generator) + damping * h) / scale
            if not bool(torch.isfinite(h).all()):
                raise ValueError(f"LiSSA diverged after {step} steps: scale {scale} must exceed H's largest eigenvalue")
            if callback is not None:
                callback(step, (h / scale).reshape(v.shape))
        total += h / scale
    x = total / repeats
    residual = math.nan if hvp is None else _relative_residual(lambda c: hvp(c) + damping * c, x, b)
    return Solution(x.reshape(v.shape), depth * repeats, residual, time.perf_counter() - start)


class Influence:
    """Influence of training examples on the minimum of ``objective`` and on losses there.

    ``solver`` is ``"exact"`` (the Hessian is built and factorised once: small p only),
    ``"cg"`` or ``"lissa"``; ``options`` go to the solver.  ``damping`` λ replaces H by
    H + λI, which a non-convex network needs.  The solutions of the last call are in
    :attr:`last`, so the caller can see how far an iterative solver got.
    """

    def __init__(self, objective: Objective, *, damping: float = 0.0, solver: str = "exact", **options):
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
        self.objective = objective
        self.damping = validate.non_negative("damping", damping)
        self.solver = solver
        self.options = options
        self.theta = objective.theta
        self._factorised: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        """H + λI and its LU factors, once the exact solver has built them."""
        self.last: Solution | None = None

    def _exact(self, columns: torch.Tensor) -> Solution:
        """Solve with H + λI, built and LU-factorised on the first call and reused after."""
        start = time.perf_counter()
        if self._factorised is None:
            damped = with_damping(self.objective.hessian(self.theta), self.damping)
            self._factorised = (damped, *torch.linalg.lu_factor(damped))
        damped, lu, pivots = self._factorised
        x = torch.linalg.lu_solve(lu, pivots, columns)
        residual = _relative_residual(lambda c: damped @ c, x, columns)
        return Solution(x, self.objective.size, residual, time.perf_counter() - start)

    def inverse_hvp(self, v: torch.Tensor) -> torch.Tensor:
        """(H + λI)⁻¹ v for a vector (p,) or each column of a (p, k) matrix; its :class:`Solution` goes to ``last``."""
        columns = _as_columns(v, self.objective.size)
        if self.solver == "exact":
            solution = self._exact(columns)
        elif self.solver == "cg":
            hvp = lambda c: self.objective.hvp(c, self.theta)  # noqa: E731
            solution = conjugate_gradient(hvp, columns, self.damping, **self.options)
        else:
            solution = lissa(
                lambda c, g: self.objective.sampled_hvp(c, g, self.theta),
                columns,
                self.damping,
                hvp=lambda c: self.objective.hvp(c, self.theta),
                **self.options,
            )
        self.last = solution
        return solution.x.reshape(v.shape)

    def gradients(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """∇ℓ(z) for each example, (m, p)."""
        return self.objective.example_gradients(inputs, targets, self.theta)

    def on_parameters(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """I(z) = dθ/dε = −(H + λI)⁻¹ ∇ℓ(z) for each example z: an (m, p) tensor."""
        return -self.inverse_hvp(self.gradients(inputs, targets).T).T

    def on_test_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, test_inputs: torch.Tensor, test_targets: torch.Tensor
    ) -> torch.Tensor:
        """−∇ℓ(z_test)ᵀ (H + λI)⁻¹ ∇ℓ(z): row per test example, column per training example.

        One inverse product per test example (s_test), then a dot product with each
        training gradient.  Negative: upweighting z lowers the test loss (z helps);
        removing z changes the test loss by about −1/n times this.
        """
        s_test = self.inverse_hvp(self.gradients(test_inputs, test_targets).T)
        return -(self.gradients(inputs, targets) @ s_test).T

    def self_influence(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """∇ℓ(z)ᵀ (H + λI)⁻¹ ∇ℓ(z) for each example: how much z's own loss depends on z (m,)."""
        gradients = self.gradients(inputs, targets)
        return (gradients * self.inverse_hvp(gradients.T).T).sum(1)


def removal_step(influence: Influence, forget_inputs: torch.Tensor, forget_targets: torch.Tensor) -> torch.Tensor:
    """The change of θ that removes the forget set D_f: one Newton step on the retain objective.

    ``influence`` must be built on the retain set's objective R_r (mean over its n_r
    examples, same L2 term) at the minimum θ* of the objective over all n = n_r + m
    training examples.  There ∇R(θ*) = 0 gives
    ``∇R_r(θ*) = −(1/n_r) Σ_{z∈D_f} ∇ℓ(z) − (m/n_r)·l2·θ*``, so the step is
    ``Δθ = (H_r + λI)⁻¹ [(1/n_r) Σ_{z∈D_f} ∇ℓ(z) + (m/n_r)·l2·θ*]``.  To first order in
    m/n this is the textbook (1/n) H⁻¹ Σ ∇ℓ(z); unlike it, the step is exact (λ = 0)
    for a quadratic loss, whatever the size of D_f.
    """
    objective = influence.objective
    n_retain, m = len(objective), len(forget_inputs)
    if m == 0:
        raise ValueError("the forget set is empty")
    summed = influence.gradients(forget_inputs, forget_targets).sum(0)
    return influence.inverse_hvp(summed / n_retain + (m / n_retain) * objective.l2 * influence.theta)


def newton_minimise(objective: Objective, *, tolerance: float = 1e-10, max_iterations: int = 30) -> int:
    """Move the model to the minimum of a convex ``objective`` by Newton's method; returns the iterations taken.

    Each step solves with the whole Hessian, so this is for small convex models (such as L2-regularised
    logistic regression), where it reaches the minimum to ``tolerance`` in the gradient's norm.
    """
    theta = objective.theta
    for steps in range(max_iterations + 1):
        gradient = objective.gradient(theta)
        if float(gradient.norm()) <= tolerance:
            objective.load(theta)
            return steps
        theta = theta - torch.linalg.solve(objective.hessian(theta), gradient)
    raise RuntimeError(f"Newton's method did not reach gradient norm {tolerance} in {max_iterations} steps")
