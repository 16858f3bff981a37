"""The training the unlearning methods share: the fine-tuning loop, its batches, subsets of the data,
and the losses and statistics built on a model's outputs (distillation, the diagonal Fisher information)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from .. import validate
from ..imagedata import ImageData, Split
from ..train import Stepper
from ..validate import check_counts, check_positive
from .networks import train_only


def subsample(indices: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A seeded random ``fraction`` of ``indices`` (at least one), sorted."""
    validate.check_fraction("fraction", fraction)
    seed = validate.seed("seed", seed)
    count = max(1, round(fraction * len(indices)))
    order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))[:count]
    return indices[order].sort().values


def batches_per_epoch(n: int, batch_size: int) -> int:
    """The batches in one pass over ``n`` examples, the last one possibly short (at least 1)."""
    return max(1, -(-n // batch_size))


def cycle(data: ImageData, split: Split, batch_size: int, generator: torch.Generator):
    """Shuffled batches of ``split`` without end, reshuffled at each pass."""
    while True:
        yield from data.batches(split, batch_size, shuffle=True, generator=generator)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher ‖ student) between the softened output distributions, times T² (Hinton et al., 2015)."""
    t = temperature
    return (
        F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), log_target=True, reduction="batchmean")
        * t
        * t
    )


def fine_tune(
    model: nn.Module,
    data: ImageData,
    indices: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    labels: torch.Tensor | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    trainable: list[nn.Module] | None = None,
    mask: dict[str, torch.Tensor] | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    batch_statistics: bool = True,
    schedule: str = "cosine",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    seed: int = 0,
    desc: str = "fine-tuning",
    progress: bool = True,
) -> nn.Module:
    """Train ``model`` in place on ``loss(logits, labels)`` (plus ``penalty(model)``) over the training examples
    at ``indices``.

    ``labels`` replaces the examples' own labels (one per index); ``loss`` defaults to
    cross-entropy.  SGD over ``epochs`` passes; only ``trainable`` blocks when given;
    with ``mask`` (parameter name to a 0/1 tensor of its shape), every gradient is
    multiplied by its mask, so that with no weight decay a masked-out weight never
    moves.  With ``batch_statistics`` false the network trains in eval mode: batch norm
    keeps its trained statistics (batches of one class would corrupt them).  Returns
    ``model`` in eval mode.
    """
    check_counts(epochs=epochs, batch_size=batch_size)
    check_positive(lr=lr)
    seed = validate.seed("seed", seed)
    split = data.train.subset(indices)
    if labels is not None:
        split = Split(split.images, torch.as_tensor(labels, device=split.device))
    parameters = train_only(model, trainable)
    if not batch_statistics:
        model.eval()
    hooks = [
        parameter.register_hook(lambda gradient, keep=mask[name]: gradient * keep)
        for name, parameter in model.named_parameters()
        if mask is not None and name in mask
    ]
    stepper = Stepper(
        parameters,
        data.device,
        steps=batches_per_epoch(len(split), batch_size) * epochs,
        epochs=epochs,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        schedule=schedule,
    )
    generator = torch.Generator(device=data.device).manual_seed(seed)
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", disable=not progress, leave=False):
        for x, y in data.batches(split, batch_size, shuffle=True, generator=generator):
            with stepper.autocast():
                value = loss(model(x), y)
                if penalty is not None:
                    value = value + penalty(model)
            stepper.step(value)
    for hook in hooks:
        hook.remove()
    return model.eval()


def diagonal_fisher(model: nn.Module, data: ImageData, split: Split, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """The diagonal of the empirical Fisher information of ``model`` on ``split``: E[(∂ log p(y|x, θ) / ∂θ_i)²].

    Per-example gradients come from ``torch.func`` (``vmap`` of ``grad``), with the network in eval mode.
    """
    was_training = model.training
    model.eval()
    parameters = {name: p.detach() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def log_likelihood(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (params, buffers), (x[None],))
        return -F.cross_entropy(logits, y[None])

    per_example = vmap(grad(log_likelihood), in_dims=(None, 0, 0))
    fisher = {name: torch.zeros_like(p) for name, p in parameters.items()}
    for x, y in data.batches(split, batch_size):
        for name, g in per_example(parameters, x, y).items():
            fisher[name] += g.pow(2).sum(0)
    model.train(was_training)
    return {name: value / len(split) for name, value in fisher.items()}
