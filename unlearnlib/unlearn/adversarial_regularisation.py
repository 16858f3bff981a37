"""Adversarial regularisation: make the model's outputs on the forget set indistinguishable from unseen data.

A discriminator learns to tell the model's output distributions on D_f from
those on unseen examples; the model is trained against it (min-max), while
distilling the original model's outputs on D_r keeps what it knows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..checkpoints import TrainedModel
from ..forget import ForgetRequest
from ..imagedata import ImageData
from ..train import OPTIMIZERS, Stepper
from ..validate import check_counts, check_fraction, check_positive
from ..validate import seed as check_seed
from .networks import frozen_copy, working_copy
from .registry import register
from .training import batches_per_epoch, cycle, distillation_loss, subsample


def output_features(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """What the discriminator sees of an output: the log-probabilities sorted (class-blind) and log p_y."""
    log_p = F.log_softmax(logits.float(), 1).clamp(min=-30.0)
    return torch.cat([log_p.sort(1, descending=True).values, log_p.gather(1, labels[:, None])], 1)


class OutputDiscriminator(nn.Module):
    """A two-layer perceptron scoring how much an output looks like one on D_f (logit of P(forget))."""

    def __init__(self, num_classes: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(num_classes + 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(1)


@register(
    "adversarial",
    family="adversarial",
    summary="min-max against a discriminator of forget vs unseen outputs, distilling the original on D_r",
    kinds=("random",),
)
def adversarial(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    hidden: int = 64,
    lr: float = 0.02,
    optimizer: str = "sgd",
    discriminator_lr: float = 0.01,
    weight: float = 5.0,
    temperature: float = 2.0,
    epochs: int = 4,
    unseen_fraction: float = 1.0,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Adversarially regularised unlearning of a random forget set.

    Each step, on a batch of D_r, one of D_f and one of unseen data D_u:

    1. the discriminator D (``hidden`` units, Adam at ``discriminator_lr``) takes a
       step on binary cross-entropy, forget outputs labelled 1, unseen ones 0;
    2. the model (``optimizer`` at ``lr``, annealed along a cosine) takes a step on
       KL(original ‖ model) on D_r at ``temperature``  +  ``weight`` · BCE(D(model on D_f), 0),
       i.e. it distils the original on D_r while making D_f look unseen to D.

    ``optimizer`` is the model's: ``"sgd"`` (Nesterov momentum 0.9, the default) or
    ``"adam"`` (AdamW), both with weight decay 5e-4 (:class:`~unlearnlib.train.Stepper`).
    Adam is there for the source material's grid, whose learning rates (4e-5 to 4e-3)
    are Adam's: SGD at such rates hardly moves a network.  The discriminator is on
    Adam at ``discriminator_lr`` whatever the model's optimiser.

    D_u is a seeded ``unseen_fraction`` of the validation split (``data.validation``),
    never the test set, on which the method is judged.

    Taught in notebook 07, section 1 (The objective).
    """
    check_counts(hidden=hidden, epochs=epochs, batch_size=batch_size)
    check_positive(lr=lr, discriminator_lr=discriminator_lr, weight=weight, temperature=temperature)
    check_fraction("unseen_fraction", unseen_fraction)
    check_seed("seed", seed)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r} for the model; choose one of {', '.join(OPTIMIZERS)}")
    validation = data.unseen("adversarial regularisation")
    device = data.device
    unlearned = working_copy(model).train()
    teacher = frozen_copy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        discriminator = OutputDiscriminator(data.info.num_classes, hidden).to(device)
    retain = data.train.subset(request.retain)
    steps_per_epoch = batches_per_epoch(len(retain), batch_size)
    stepper = Stepper(
        unlearned.parameters(),
        device,
        steps=steps_per_epoch * epochs,
        epochs=epochs,
        lr=lr,
        optimizer=optimizer,
        schedule="cosine",
    )
    d_stepper = Stepper(
        discriminator.parameters(),
        device,
        steps=steps_per_epoch * epochs,
        epochs=epochs,
        lr=discriminator_lr,
        optimizer="adam",
        role="discriminator",
    )
    generator = torch.Generator(device=device).manual_seed(seed)
    forget_batches = cycle(data, data.train.subset(request.forget), batch_size, generator)
    unseen = validation.subset(subsample(torch.arange(len(validation)), unseen_fraction, seed))
    unseen_batches = cycle(data, unseen, batch_size, generator)
    for _ in tqdm(range(epochs), desc="adversarial", unit="epoch", disable=not progress, leave=False):
        for x_r, _ in data.batches(retain, batch_size, shuffle=True, generator=generator):
            x_f, y_f = next(forget_batches)
            x_u, y_u = next(unseen_batches)
            with stepper.autocast():
                logits = unlearned(torch.cat([x_r, x_f, x_u]))
            logits_r, logits_f, logits_u = logits.float().split([len(x_r), len(x_f), len(x_u)])
            features_f, features_u = output_features(logits_f, y_f), output_features(logits_u, y_u)

            scores = discriminator(torch.cat([features_f, features_u]).detach())
            targets = torch.cat([torch.ones(len(x_f)), torch.zeros(len(x_u))]).to(device)
            d_stepper.step(F.binary_cross_entropy_with_logits(scores, targets))

            with torch.no_grad():
                teacher_logits = teacher(x_r).float()
            fooled = F.binary_cross_entropy_with_logits(discriminator(features_f), torch.zeros(len(x_f), device=device))
            stepper.step(distillation_loss(logits_r, teacher_logits, temperature) + weight * fooled)
    return unlearned.eval()
