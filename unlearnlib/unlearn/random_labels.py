"""Unlearning by relabelling the forget set at random (RL), over all weights or, in SalUn, only over the weights
most salient to the forget set's loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import TrainedModel
from ..forget import ForgetRequest
from ..imagedata import ImageData, wrong_labels
from ..validate import check_counts, check_fraction, check_positive
from ..validate import seed as check_seed
from .networks import working_copy
from .registry import register
from .training import fine_tune


def relabelled(request: ForgetRequest, data: ImageData, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The positions of D_r then D_f, and their labels: D_r's own, and for D_f a seeded wrong label each."""
    forget_labels = data.train.labels[request.forget.to(data.device)]
    random = wrong_labels(forget_labels, data.info.num_classes, torch.Generator().manual_seed(seed))
    indices = torch.cat([request.retain, request.forget])
    return indices, torch.cat([data.train.labels[request.retain.to(data.device)], random])


def saliency_mask(model: nn.Module, data: ImageData, forget: torch.Tensor, fraction: float, batch_size: int):
    """SalUn's weight saliency: 1 for the ``fraction`` of all weights with the largest |∂ CE(D_f) / ∂θ|, else 0.

    The gradient is of the summed cross-entropy over D_f at the original weights,
    with the network in eval mode (batch-norm statistics as trained); one threshold
    for the whole network, as in the paper.
    """
    was_training = model.training
    model.eval()
    parameters = dict(model.named_parameters())
    gradients = {name: torch.zeros_like(p) for name, p in parameters.items()}
    for x, y in data.batches(data.train.subset(forget), batch_size):
        loss = F.cross_entropy(model(x), y, reduction="sum")
        for name, g in zip(parameters, torch.autograd.grad(loss, list(parameters.values()), allow_unused=True)):
            if g is not None:
                gradients[name] += g
    model.train(was_training)
    magnitudes = torch.cat([g.abs().flatten() for g in gradients.values()])
    chosen = torch.zeros_like(magnitudes)
    chosen[magnitudes.topk(max(1, round(fraction * len(magnitudes)))).indices] = 1  # ties (zeros) broken by place
    parts = chosen.split([g.numel() for g in gradients.values()])
    return {name: part.view_as(g) for (name, g), part in zip(gradients.items(), parts)}


def fine_tune_relabelled(
    network: nn.Module,
    request: ForgetRequest,
    data: ImageData,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    desc: str,
    progress: bool,
    mask: dict[str, torch.Tensor] | None = None,
) -> nn.Module:
    """Fine-tune ``network`` in place on D_r with its own labels and D_f with :func:`relabelled` ones, mixed in
    one shuffled pass per epoch; with ``mask``, only the weights it keeps, and then without weight decay, so
    that a weight outside it never moves."""
    indices, labels = relabelled(request, data, seed)
    return fine_tune(
        network,
        data,
        indices,
        labels=labels,
        mask=mask,
        weight_decay=0.0 if mask is not None else 5e-4,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        desc=desc,
        progress=progress,
    )


@register(
    "random_labels",
    family="state-of-the-art",
    summary="RL: fine-tune on the retain set and on the forget set relabelled at random",
)
def random_labels(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    epochs: int = 2,
    lr: float = 0.02,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Random labelling (RL; Golatkar et al., 2020, as run in SalUn, Fan et al., 2024).

    Each example of D_f gets a seeded label drawn uniformly from the other classes
    (:func:`relabelled`); the network is fine-tuned on D_r, with its own labels, and
    D_f, with the new ones, mixed in one shuffled pass per epoch (:func:`fine_tune_relabelled`).

    Taught in notebook 11, section 3 (Relabelling: random labels (RL)).
    """
    check_counts(epochs=epochs, batch_size=batch_size)
    check_positive(lr=lr)
    check_seed("seed", seed)
    settings = dict(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, progress=progress)
    return fine_tune_relabelled(working_copy(model), request, data, desc="RL", **settings)


@register(
    "salun",
    family="state-of-the-art",
    summary="SalUn: random-label fine-tuning of only the weights most salient to the forget loss",
)
def salun(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    salient: float = 0.5,
    epochs: int = 2,
    lr: float = 0.02,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Saliency unlearning (SalUn; Fan et al., ICLR 2024).

    A weight-saliency mask keeps the share ``salient`` of the weights with the
    largest gradient magnitude of the forget loss (:func:`saliency_mask`); random-label
    fine-tuning (:func:`fine_tune_relabelled`) then updates those weights only.  Without
    weight decay, so that a weight outside the mask never moves (the paper's code
    decays them too); batch-norm statistics are updated as in any fine-tuning.

    Taught in notebook 11, section 4 (Sparsity and saliency: ℓ1-sparse and SalUn).
    """
    check_fraction("salient", salient)
    check_counts(epochs=epochs, batch_size=batch_size)
    check_positive(lr=lr)
    check_seed("seed", seed)
    unlearned = working_copy(model)
    mask = saliency_mask(unlearned, data, request.forget, salient, batch_size)
    settings = dict(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, progress=progress)
    return fine_tune_relabelled(unlearned, request, data, desc="SalUn", mask=mask, **settings)
