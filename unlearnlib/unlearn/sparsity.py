"""ℓ1-sparse unlearning: fine-tuning on the retain set with an ℓ1 penalty that drives the weights towards a
sparse network, which forgets more easily."""

from __future__ import annotations

from itertools import count

import torch
from torch import nn

from ..checkpoints import TrainedModel
from ..forget import ForgetRequest
from ..imagedata import ImageData
from ..validate import check_counts, check_positive
from ..validate import seed as check_seed
from .networks import working_copy
from .registry import register
from .training import batches_per_epoch, fine_tune


def l1_norm(model: nn.Module) -> torch.Tensor:
    """‖θ‖₁ over every weight of ``model``."""
    return sum(p.abs().sum() for p in model.parameters())


def decaying(strength: float, steps: int):
    """A penalty weight that falls linearly from ``strength`` at the first call to 0 after ``steps`` calls."""
    calls = count()
    return lambda: strength * max(0.0, 1 - next(calls) / steps)


@register(
    "l1_sparse",
    family="state-of-the-art",
    summary="ℓ1-sparse: fine-tune on the retain set with a decaying ℓ1 penalty on the weights",
)
def l1_sparse(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    strength: float = 5e-5,
    epochs: int = 5,
    lr: float = 0.05,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """ℓ1-sparse unlearning (Jia et al., NeurIPS 2023): fine-tune on D_r minimising CE + γ_t·‖θ‖₁.

    γ_t falls linearly from ``strength`` to 0 over the run (the paper's schedule), so
    that the penalty prunes early and the last steps refit D_r.  Sparsity is what the
    paper finds makes approximate unlearning come closer to retraining.

    Taught in notebook 11, section 4 (Sparsity and saliency: ℓ1-sparse and SalUn).
    """
    check_counts(epochs=epochs, batch_size=batch_size)
    check_positive(strength=strength, lr=lr)
    check_seed("seed", seed)
    weight = decaying(strength, batches_per_epoch(len(request.retain), batch_size) * epochs)
    return fine_tune(
        working_copy(model),
        data,
        request.retain,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        penalty=lambda m: weight() * l1_norm(m),
        seed=seed,
        desc="ℓ1-sparse",
        progress=progress,
    )
