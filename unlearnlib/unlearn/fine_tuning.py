"""Unlearning by fine-tuning on the retain set (catastrophic forgetting), of all or the last k blocks,
with or without an L2 pull towards the original weights."""

from __future__ import annotations

from torch import nn

from ..checkpoints import TrainedModel
from ..forget import ForgetRequest
from ..imagedata import ImageData
from ..validate import check_counts, check_positive
from ..validate import seed as check_seed
from .networks import distance_squared, last_blocks, parameters_of, working_copy
from .registry import register
from .training import fine_tune


@register("finetune", family="fine-tuning", summary="fine-tune every layer on the retain set")
def finetune(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    epochs: int = 5,
    lr: float = 0.1,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Fine-tune the whole network on D_r with SGD (cosine-annealed from ``lr``): D_f fades as D_r is rehearsed.

    Taught in notebook 06, section 1 (Fine-tuning on the retain set); the loop is written out there.
    """
    check_counts(epochs=epochs, batch_size=batch_size)
    check_positive(lr=lr)
    check_seed("seed", seed)
    return fine_tune(
        working_copy(model),
        data,
        request.retain,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        desc="fine-tune",
        progress=progress,
    )


@register("cf_k", family="fine-tuning", summary="fine-tune only the last k blocks on the retain set")
def cf_k(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    k: int = 3,
    epochs: int = 5,
    lr: float = 0.1,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Catastrophic forgetting of the last ``k`` blocks (Goel et al., 2022): the others stay frozen.

    Taught in notebook 06, section 3 (CF-k: fine-tune only the last k blocks).
    """
    check_counts(k=k, epochs=epochs, batch_size=batch_size)
    check_positive(lr=lr)
    check_seed("seed", seed)
    unlearned = working_copy(model)
    return fine_tune(
        unlearned,
        data,
        request.retain,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        trainable=last_blocks(unlearned, k),
        seed=seed,
        desc=f"CF-{k}",
        progress=progress,
    )


@register("finetune_l2", family="fine-tuning", summary="fine-tune on the retain set with an L2 pull to the original")
def finetune_l2(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    pull: float = 0.05,
    epochs: int = 5,
    lr: float = 0.1,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Fine-tune on D_r minimising cross-entropy + (``pull``/2)·‖θ − θ*‖², θ* the original weights.

    The pull keeps the network near the original solution, which stops it from
    overfitting D_r and losing test accuracy. Taught in notebook 06, section 2 (An L2 pull towards the
    original weights); exercise 6.3 writes it out.
    """
    check_counts(epochs=epochs, batch_size=batch_size)
    check_positive(pull=pull, lr=lr)
    check_seed("seed", seed)
    unlearned = working_copy(model)
    original = parameters_of(unlearned)
    return fine_tune(
        unlearned,
        data,
        request.retain,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        penalty=lambda m: 0.5 * pull * distance_squared(m, original),
        seed=seed,
        desc="fine-tune + L2",
        progress=progress,
    )
