"""Unlearning by gradient ascent on the forget set: plain (GA), and weighted against descent on the retain set
(NegGrad+)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..checkpoints import TrainedModel
from ..forget import ForgetRequest
from ..imagedata import ImageData
from ..train import Stepper
from ..validate import check_counts, check_positive, interval
from ..validate import seed as check_seed
from .networks import working_copy
from .registry import register
from .training import batches_per_epoch, cycle, fine_tune


def ascent_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """−cross-entropy: descending it climbs the loss of the examples given."""
    return -F.cross_entropy(logits, labels)


def negative_gradient_plus_loss(
    logits_r: torch.Tensor, labels_r: torch.Tensor, logits_f: torch.Tensor, labels_f: torch.Tensor, alpha: float
) -> torch.Tensor:
    """α · CE on a batch of D_r − (1 − α) · CE on a batch of D_f."""
    return alpha * F.cross_entropy(logits_r, labels_r) - (1 - alpha) * F.cross_entropy(logits_f, labels_f)


@register(
    "gradient_ascent",
    family="state-of-the-art",
    summary="GA: gradient ascent on the forget set's loss, nothing else",
)
def gradient_ascent(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    epochs: int = 5,
    lr: float = 0.003,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Gradient ascent (GA; Thudi et al., 2022; a baseline of SalUn, Fan et al., 2024): SGD on −CE over D_f.

    It uses D_f alone, so nothing holds the rest of what the model knows in place:
    its learning rate and epochs trade forgetting against damage to D_r and the test
    data, and the ascent has no end (the divergence guard stops a run that explodes).

    Taught in notebook 11, section 2 (Ascent: GA and NegGrad+).
    """
    check_counts(epochs=epochs, batch_size=batch_size)
    check_positive(lr=lr)
    check_seed("seed", seed)
    return fine_tune(
        working_copy(model),
        data,
        request.forget,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        loss=ascent_loss,
        weight_decay=0.0,
        seed=seed,
        desc="GA",
        progress=progress,
    )


@register(
    "neggrad_plus",
    family="state-of-the-art",
    summary="NegGrad+: descent on the retain set and ascent on the forget set, weighted",
)
def neggrad_plus(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    alpha: float = 0.95,
    epochs: int = 2,
    lr: float = 0.05,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """NegGrad+ (Kurmanji et al., 2023): each step, on a batch of D_r and one of D_f, SGD on
    α · CE(D_r) − (1 − α) · CE(D_f) (:func:`negative_gradient_plus_loss`).

    ``alpha`` = 1 is fine-tuning on D_r, ``alpha`` = 0 gradient ascent on D_f.  One
    epoch is a pass over D_r; D_f's batches cycle alongside.

    Taught in notebook 11, section 2 (Ascent: GA and NegGrad+).
    """
    alpha = interval("alpha", alpha, 0.0, 1.0, low_open=False, high_open=False)
    check_counts(epochs=epochs, batch_size=batch_size)
    check_positive(lr=lr)
    check_seed("seed", seed)
    unlearned = working_copy(model).train()
    retain = data.train.subset(request.retain)
    stepper = Stepper(
        unlearned.parameters(),
        data.device,
        steps=batches_per_epoch(len(retain), batch_size) * epochs,
        epochs=epochs,
        lr=lr,
        schedule="cosine",
    )
    generator = torch.Generator(device=data.device).manual_seed(seed)
    forget_batches = cycle(data, data.train.subset(request.forget), batch_size, generator)
    for _ in tqdm(range(epochs), desc="NegGrad+", unit="epoch", disable=not progress, leave=False):
        for x_r, y_r in data.batches(retain, batch_size, shuffle=True, generator=generator):
            x_f, y_f = next(forget_batches)
            with stepper.autocast():
                logits = unlearned(torch.cat([x_r, x_f]))
                loss = negative_gradient_plus_loss(logits[: len(x_r)], y_r, logits[len(x_r) :], y_f, alpha)
            stepper.step(loss)
    return unlearned.eval()
