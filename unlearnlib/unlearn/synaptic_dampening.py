"""Selective synaptic dampening (SSD): shrink the weights far more important to the forget set than to the
training data as a whole, with no training at all."""

from __future__ import annotations

import torch
from torch import nn

from ..checkpoints import TrainedModel
from ..forget import ForgetRequest
from ..imagedata import ImageData
from ..validate import check_positive
from .networks import working_copy
from .registry import register
from .training import diagonal_fisher


def dampening(
    importance_all: torch.Tensor, importance_forget: torch.Tensor, alpha: float, strength: float
) -> torch.Tensor:
    """SSD's factor per weight: β = min(λ·I_D / I_Df, 1) where I_Df > α·I_D, else 1 (the weight is kept).

    ``importance_all`` (I_D) and ``importance_forget`` (I_Df) are a weight's diagonal Fisher
    information on the training data and on D_f; ``strength`` is λ.
    """
    selected = importance_forget > alpha * importance_all
    beta = (strength * importance_all / importance_forget.clamp(min=torch.finfo(importance_forget.dtype).tiny)).clamp(
        max=1.0
    )
    return torch.where(selected, beta, torch.ones_like(beta))


@register(
    "ssd",
    family="state-of-the-art",
    summary="SSD: dampen the weights far more important to the forgotten class than to the data (no training)",
    kinds=("class",),
)
def ssd(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    alpha: float = 5.0,
    strength: float = 1.0,
    batch_size: int = 128,
    progress: bool = True,
) -> nn.Module:
    """Selective synaptic dampening (Foster, Schoepf, Brintrup, AAAI 2024).

    With I_D and I_Df the diagonal empirical Fisher information at the original
    weights on the whole training set and on D_f (:func:`~.training.diagonal_fisher`,
    from per-example gradients; the paper squares batch gradients), every weight
    with I_Df > ``alpha`` · I_D is multiplied by min(``strength`` · I_D / I_Df, 1)
    (:func:`dampening`); every other weight is left as it is.  One pass over the
    data, no gradient step, so no learning rate and no epochs.  ``progress`` is
    accepted for the common call shape; there is no loop to show.

    The registry offers it for class requests.  On a random request of the course's
    digits task its selection is a cliff: at α = 5 or more no weight qualifies and
    nothing changes, at α = 3 so many do that the model is wrecked (10% accuracy),
    since D_f, drawn from the same distribution as D, has no weights of its own.  On a
    class (digits, class 3) α = 5 forgets the class entirely and leaves the others as
    they were; the paper's α = 10 left it untouched there.

    Taught in notebook 11, section 6 (Parameter importance: Fisher forgetting and SSD).
    """
    check_positive(alpha=alpha, strength=strength)
    unlearned = working_copy(model).eval()
    importance_all = diagonal_fisher(unlearned, data, data.train, batch_size)
    importance_forget = diagonal_fisher(unlearned, data, data.train.subset(request.forget), batch_size)
    with torch.no_grad():
        for name, parameter in unlearned.named_parameters():
            parameter.mul_(dampening(importance_all[name], importance_forget[name], alpha, strength))
    return unlearned.eval()
