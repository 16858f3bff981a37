"""Fisher forgetting: noise every weight in inverse proportion to how firmly the retain set pins it down."""

from __future__ import annotations

import torch
from torch import nn

from ..checkpoints import TrainedModel
from ..forget import ForgetRequest
from ..imagedata import ImageData
from ..validate import check_positive
from ..validate import seed as check_seed
from .networks import working_copy
from .registry import register
from .training import diagonal_fisher


def noise_variance(fisher_retain: torch.Tensor, alpha: float, cap: float) -> torch.Tensor:
    """Each weight's noise variance: α / F_r, at most ``cap`` (F_r its diagonal Fisher information on D_r)."""
    return (alpha / fisher_retain.clamp(min=torch.finfo(fisher_retain.dtype).tiny)).clamp(max=cap)


@register(
    "fisher",
    family="state-of-the-art",
    summary="Fisher forgetting: Gaussian noise on each weight, larger where the retain set leaves it free",
)
def fisher(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    alpha: float = 1e-7,
    cap: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Fisher forgetting (Golatkar, Achille, Soatto, CVPR 2020), in the form later papers compare with.

    With F_r the diagonal empirical Fisher information at the original weights on
    D_r (:func:`~.training.diagonal_fisher`), each weight gets Gaussian noise of
    variance min(``alpha`` / F_r, ``cap``) (:func:`noise_variance`), drawn from
    ``seed``: a weight the retain set pins down (large F_r) hardly moves, one it
    leaves free is scrambled, and with it whatever it held of D_f alone.  No
    gradient step; ``progress`` is accepted for the common call shape.

    Taught in notebook 11, section 6 (Parameter importance: Fisher forgetting and SSD).
    """
    check_positive(alpha=alpha, cap=cap)
    check_seed("seed", seed)
    unlearned = working_copy(model).eval()
    information = diagonal_fisher(unlearned, data, data.train.subset(request.retain), batch_size)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in unlearned.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator).to(parameter.device)
            parameter.add_(noise_variance(information[name], alpha, cap).sqrt() * noise)
    return unlearned.eval()
