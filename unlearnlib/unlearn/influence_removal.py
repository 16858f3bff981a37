"""Influence-based removal: one Newton step that takes the forget set's influence out of the last blocks."""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checkpoints import TrainedModel
from ..forget import ForgetRequest
from ..imagedata import ImageData
from ..influence_functions import Influence, Objective, image_tensors, removal_step
from ..validate import check_counts, non_negative, positive
from .networks import last_blocks, working_copy
from .registry import register

EXACT_LIMIT = 6_000
"""Up to this many varying parameters the ``"auto"`` solver builds the exact Hessian; beyond, conjugate gradients."""


def head_objective(model: nn.Module, data: ImageData, k: int, l2: float, batch_size: int) -> Objective:
    """The training objective of ``model``'s last ``k`` blocks, the rest fixed, over the whole training split.

    When only the classifier varies (``k = 1`` on the course's networks), its inputs
    are the pooled features, computed once; otherwise each evaluation runs the network.
    """
    model.eval()
    inputs, targets = image_tensors(data, data.train, batch_size)
    tail = last_blocks(model, k)
    if k == 1 and hasattr(model, "features") and tail[0] is getattr(model, "fc", None):
        with torch.no_grad():
            features = torch.cat([model.features(x) for x in inputs.split(batch_size)])
        return Objective.of(model.fc, features, targets, l2=l2, batch_size=batch_size)
    varying = {id(p) for module in tail for p in module.parameters()}
    names = [name for name, p in model.named_parameters() if id(p) in varying]
    return Objective.of(model, inputs, targets, names, l2=l2, batch_size=batch_size)


@register(
    "influence",
    family="influence",
    summary="one Newton step θ + H⁻¹ Σ∇ℓ(D_f)/n on the last k blocks: the influence-function update",
)
def influence(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    k: int = 1,
    damping: float = 0.01,
    l2: float = 5e-4,
    solver: str = "auto",
    max_iterations: int = 100,
    batch_size: int = 256,
    progress: bool = True,
) -> nn.Module:
    """Remove D_f's influence from the last ``k`` blocks by one damped Newton step (Koh and Liang, 2017).

    With H_r the Hessian of the retain set's mean loss plus (l2/2)‖θ‖² at the trained
    weights θ*, the step is θ* + (H_r + λI)⁻¹ [(1/n_r) Σ_{z∈D_f} ∇ℓ(z) + (m/n_r)·l2·θ*]
    (see :func:`unlearnlib.influence_functions.removal_step`).  ``damping`` λ > 0 makes the
    network's indefinite Hessian invertible and bounds the step; ``l2`` is the weight
    decay the model was trained with.  ``solver`` is ``"exact"``, ``"cg"`` (at most
    ``max_iterations`` products) or ``"auto"`` (exact up to 6,000 parameters).
    Only the last ``k`` blocks change; batch-norm statistics stay as they were.

    Taught in notebook 04, section 5 (Influence-based unlearning).
    """
    positive("damping", damping)
    check_counts(k=k, max_iterations=max_iterations, batch_size=batch_size)
    non_negative("l2", l2)
    if solver not in ("auto", "exact", "cg"):
        raise ValueError(f"unknown solver {solver!r}; choose auto, exact or cg")
    unlearned = working_copy(model).eval()
    objective = head_objective(unlearned, data, k, l2, batch_size)
    if solver == "auto":
        solver = "exact" if objective.size <= EXACT_LIMIT else "cg"
    forget = request.forget.to(objective.inputs.device)
    with tqdm(total=max_iterations, desc="influence (CG)", disable=not progress or solver != "cg", leave=False) as bar:
        options = {"max_iterations": max_iterations, "callback": lambda i, x: bar.update()} if solver == "cg" else {}
        retain = Influence(
            objective.subset(request.retain.to(forget.device)), damping=damping, solver=solver, **options
        )
        step = removal_step(retain, objective.inputs[forget], objective.targets[forget])
    objective.load(objective.theta + step)
    return unlearned
